"""Datasets (golden sets) of versioned items, experiment targets, runs and per-item results.

An item's content lives in DatasetItemVersion rows: editing an item writes version n+1 and
moves `DatasetItem.version`; a result points at the version it ran, so a run made before the
edit still compares against what it was graded on. An item made from a production turn keeps a
link to it (`source_turn`, CASCADE): erasing the end user or the retention purge deletes the
turn and, with it, the items (and their results) that copied its text.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from apps.core.encryption import EncryptedJSONField

from .choices import HttpMethod, ResultStatus, RunStatus, TargetKind


class Dataset(models.Model):
    chatbot = models.ForeignKey(
        "chatbots.Chatbot",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="datasets",
        help_text="Empty: shared between chatbots (only staff who see every chatbot manage it).",
    )
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name


class DatasetItem(models.Model):
    """The current state of one item (a copy of its latest version, for lists and filters)."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="items")
    version = models.PositiveIntegerField(default=1)
    external_id = models.CharField(
        max_length=200, blank=True, help_text="An id from the upload (answers files may key by it)."
    )
    input = models.TextField(help_text="The user message.")
    context = models.JSONField(
        default=list, blank=True, help_text='Earlier turns: [{"user": "…", "bot": "…"}].'
    )
    expected_answer = models.TextField(blank=True)
    expected_properties = models.JSONField(
        default=list, blank=True, help_text='e.g. ["must mention the 30-day window", "must refuse"]'
    )
    tags = models.JSONField(default=list, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    source_turn = models.ForeignKey(
        "conversations.Turn",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="dataset_items",
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("id",)
        constraints = [
            # A turn enters a dataset once (adding it again is a no-op, not a duplicate).
            models.UniqueConstraint(
                fields=["dataset", "source_turn"],
                condition=Q(source_turn__isnull=False),
                name="dataset_item_source_turn_once",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} v{self.version}: {self.input[:60]}"

    CONTENT_FIELDS = (
        "input",
        "context",
        "expected_answer",
        "expected_properties",
        "tags",
        "metadata",
    )

    def content(self) -> dict:
        return {name: getattr(self, name) for name in self.CONTENT_FIELDS}


class DatasetItemVersion(models.Model):
    item = models.ForeignKey(DatasetItem, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    input = models.TextField()
    context = models.JSONField(default=list, blank=True)
    expected_answer = models.TextField(blank=True)
    expected_properties = models.JSONField(default=list, blank=True)
    tags = models.JSONField(default=list, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("item_id", "number")
        constraints = [
            models.UniqueConstraint(fields=["item", "number"], name="dataset_item_version_once")
        ]

    def __str__(self) -> str:
        return f"item {self.item_id} v{self.number}"


class ExperimentTarget(models.Model):
    """What answers the dataset's inputs. `name` is what the CI gate passes (`prompt:v2`)."""

    name = models.CharField(max_length=100, unique=True)
    chatbot = models.ForeignKey(
        "chatbots.Chatbot",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="experiment_targets",
    )
    kind = models.CharField(max_length=16, choices=TargetKind.choices)
    # kind=model
    base_url = models.CharField(max_length=500, blank=True, help_text="Empty: OPENAI_BASE_URL.")
    model = models.CharField(max_length=100, blank=True)
    system_prompt = models.TextField(blank=True)
    temperature = models.FloatField(default=0.0)
    # kind=http
    url = models.CharField(max_length=500, blank=True)
    method = models.CharField(max_length=8, choices=HttpMethod.choices, default=HttpMethod.POST)
    body_template = models.TextField(
        blank=True,
        help_text='JSON with the placeholders "{{input}}" and "{{context}}", e.g. {"message": "{{input}}"}.',
    )
    answer_path = models.CharField(
        max_length=200,
        blank=True,
        help_text="Dotted path to the answer in the JSON reply, e.g. data.answer or choices.0.text.",
    )
    # Write-only: never shown back in the admin or the API; encrypted at rest (a key derived
    # from SECRET_KEY, apps.core.encryption; an UnreadableSecret after a key change without fallback).
    secret_headers = EncryptedJSONField(
        default=dict,
        blank=True,
        help_text='Headers sent to the endpoint, e.g. {"Authorization": "Bearer …"}.',
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name


class ExperimentRun(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="runs")
    target = models.ForeignKey(ExperimentTarget, on_delete=models.PROTECT, related_name="runs")
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.PENDING)
    grader = models.CharField(
        max_length=20, help_text="The judge backend that graded (openai / heuristic)."
    )
    grader_version = models.CharField(max_length=100, blank=True)
    is_baseline = models.BooleanField(default=False)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    average_score = models.FloatField(null=True, blank=True)
    note = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = [
            models.UniqueConstraint(
                fields=["dataset"],
                condition=Q(is_baseline=True),
                name="experiment_run_one_baseline",
            ),
        ]

    def __str__(self) -> str:
        return f"Run {self.pk} · {self.target.name}"

    @property
    def finished(self) -> int:
        return self.done + self.failed

    def eta(self, *, now=None) -> timedelta | None:
        """Time left at the pace so far (None before the first result or once finished)."""
        if (
            self.started_at is None
            or self.finished_at is not None
            or not self.finished
            or self.finished >= self.total
        ):
            return None
        elapsed = ((now or timezone.now()) - self.started_at).total_seconds()
        return timedelta(seconds=round(elapsed / self.finished * (self.total - self.finished)))


class ExperimentItemResult(models.Model):
    run = models.ForeignKey(ExperimentRun, on_delete=models.CASCADE, related_name="results")
    item = models.ForeignKey(DatasetItem, on_delete=models.CASCADE, related_name="results")
    item_version = models.ForeignKey(
        DatasetItemVersion, on_delete=models.CASCADE, related_name="results"
    )
    status = models.CharField(
        max_length=10, choices=ResultStatus.choices, default=ResultStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    claimed_until = models.DateTimeField(null=True, blank=True)
    # Which claim holds the result (a compare-and-set token): only that task may write it back.
    claim = models.UUIDField(null=True, blank=True, editable=False)
    output = models.TextField(blank=True)
    provided_output = models.BooleanField(
        default=False, help_text="The output came with the run (uploaded answers)."
    )
    scores = models.JSONField(
        default=dict, blank=True, help_text="criterion → 0–10 (the rubric and correctness)."
    )
    properties = models.JSONField(
        default=list, blank=True, help_text='[{"property", "passed", "reason"}]'
    )
    score = models.FloatField(
        null=True, blank=True, help_text="The item's overall 0–10 (what runs are compared on)."
    )
    reasoning = models.TextField(blank=True)
    reference_reasoning = models.TextField(blank=True)
    error = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("run_id", "item_id")
        constraints = [
            models.UniqueConstraint(fields=["run", "item"], name="experiment_result_once")
        ]
        indexes = [models.Index(fields=["run", "status"], name="experiment_result_run_status")]

    def __str__(self) -> str:
        return f"run {self.run_id} item {self.item_id}"
