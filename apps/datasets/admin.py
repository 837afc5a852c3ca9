"""Admin: datasets (upload, export, run), items (edits are versions), targets, runs (progress,
re-run failed, baseline, compare) and the "Add to dataset" action for turns, the review queue
and failure clusters.

`add_turns_to_dataset_admin_action` and `add_conversations_to_dataset_admin_action` are listed in
the Turn and Conversation admins (apps/review/admin.py); the cluster action is appended to
ClusterAdmin.actions here (clustering is a sibling domain app).
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from apps.chatbots.access import chatbot_scoped, user_sees_all_chatbots
from apps.chatbots.admin_mixins import ChatbotListFilter, ChatbotScopedAdminMixin
from apps.clustering.admin import ClusterAdmin
from apps.conversations.models import Turn
from apps.core.admin import LargeTableAdmin
from apps.core.encryption import UnreadableSecret
from apps.core.replica import replica_reads

from . import experiments, selectors, services
from .models import Dataset, DatasetItem, ExperimentItemResult, ExperimentRun, ExperimentTarget
from .targets import target_config_check


def datasets_for(user: Any) -> QuerySet[Dataset]:
    return chatbot_scoped(Dataset.objects.all(), user)


# --- "Add to dataset" --------------------------------------------------------------------------


def _add_to_dataset(
    modeladmin: Any, request: HttpRequest, queryset: QuerySet, turns: QuerySet[Turn], action: str
) -> HttpResponse | None:
    """Ask which dataset (like delete_selected asks for confirmation), then add the turns."""
    choices = datasets_for(request.user)
    dataset_id = request.POST.get("dataset", "")
    if request.POST.get("post") == "yes" and dataset_id.isdigit():
        dataset = choices.filter(pk=int(dataset_id)).first()
        if dataset is None:
            raise PermissionDenied
        added = services.dataset_items_add_from_turns(
            dataset=dataset, turns=turns, actor=request.user
        )
        parts = [f"Added {added.added} item(s) to {dataset.name}"]
        if added.already_there:
            parts.append(f"{added.already_there} already there")
        if added.not_eligible:
            parts.append(f"{added.not_eligible} not eligible (privacy)")
        if added.other_chatbot:
            parts.append(f"{added.other_chatbot} of another chatbot")
        modeladmin.message_user(request, "; ".join(parts) + ".", messages.SUCCESS)
        return None
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": "Add to dataset",
        "opts": modeladmin.model._meta,
        "selected": list(queryset.values_list("pk", flat=True)),
        "turn_count": turns.count(),
        "corrected": turns.exclude(corrected_answer="").count(),
        "datasets": list(choices.select_related("chatbot")),
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "action": action,
        "add_url": reverse("admin:datasets_dataset_add"),
    }
    return TemplateResponse(request, "admin/datasets/add_to_dataset.html", context)


@admin.action(description="Add to dataset", permissions=["view"])
def add_turns_to_dataset_admin_action(
    modeladmin: Any, request: HttpRequest, queryset: QuerySet
) -> HttpResponse | None:
    return _add_to_dataset(
        modeladmin, request, queryset, queryset, "add_turns_to_dataset_admin_action"
    )


@admin.action(description="Add to dataset (flagged or corrected turns)", permissions=["view"])
def add_conversations_to_dataset_admin_action(
    modeladmin: Any, request: HttpRequest, queryset: QuerySet
) -> HttpResponse | None:
    ids = list(queryset.values_list("pk", flat=True))
    picked = Turn.objects.filter(conversation_id__in=ids).filter(
        Q(is_flagged=True) | ~Q(corrected_answer="")
    )
    # A conversation with no flagged or corrected turn contributes its last turn.
    without = set(ids) - set(picked.values_list("conversation_id", flat=True))
    last = [
        Turn.objects.filter(conversation_id=c)
        .order_by("-sequence", "-id")
        .values_list("pk", flat=True)
        .first()
        for c in without
    ]
    turns = Turn.objects.filter(Q(pk__in=picked.values("pk")) | Q(pk__in=[t for t in last if t]))
    return _add_to_dataset(
        modeladmin, request, queryset, turns, "add_conversations_to_dataset_admin_action"
    )


@admin.action(description="Add the cluster's turns to a dataset", permissions=["view"])
def add_clusters_to_dataset_admin_action(
    modeladmin: Any, request: HttpRequest, queryset: QuerySet
) -> HttpResponse | None:
    turns = Turn.objects.filter(cluster_memberships__cluster__in=queryset).distinct()
    return _add_to_dataset(
        modeladmin, request, queryset, turns, "add_clusters_to_dataset_admin_action"
    )


ClusterAdmin.actions = [*ClusterAdmin.actions, add_clusters_to_dataset_admin_action]


# --- datasets ------------------------------------------------------------------------------------


class UploadForm(forms.Form):
    file = forms.FileField(
        help_text="JSONL (one item a line) or CSV with a header row (input, expected_answer, "
        "expected_properties and tags separated by |, context and metadata as JSON)."
    )


class RunForm(forms.Form):
    target = forms.ModelChoiceField(queryset=ExperimentTarget.objects.none())
    answers = forms.FileField(
        required=False, help_text='Uploaded-answers targets: JSONL of {"id": …, "output": …}.'
    )
    note = forms.CharField(required=False, max_length=300)


def answers_parse(content: bytes) -> dict[str, str]:
    answers: dict[str, str] = {}
    try:
        lines = content.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError:
        raise ValueError("the answers file is not UTF-8 text") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise ValueError(f"line {number}: not JSON") from None
        if (
            not isinstance(row, dict)
            or not isinstance(row.get("output"), str)
            or row.get("id") in (None, "")
        ):
            raise ValueError(f'line {number}: needs "id" and a string "output"')
        answers[str(row["id"])] = row["output"]
    if not answers:
        raise ValueError("the answers file holds no answers")
    return answers


@admin.register(Dataset)
class DatasetAdmin(ChatbotScopedAdminMixin, admin.ModelAdmin):
    list_display = ("name", "slug", "chatbot_or_shared", "item_count", "run_count", "created_at")
    list_filter = (ChatbotListFilter,)
    list_select_related = ("chatbot",)
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    fields = ("chatbot", "name", "slug", "description")
    change_form_template = "admin/datasets/dataset_change_form.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .annotate(
                item_total=Count("items", distinct=True), run_total=Count("runs", distinct=True)
            )
        )

    @admin.display(description="chatbot")
    def chatbot_or_shared(self, obj: Dataset) -> str:
        return obj.chatbot.name if obj.chatbot else "shared"

    @admin.display(description="items", ordering="item_total")
    def item_count(self, obj: Dataset) -> int:
        return obj.item_total

    @admin.display(description="runs", ordering="run_total")
    def run_count(self, obj: Dataset) -> int:
        return obj.run_total

    def save_model(self, request: HttpRequest, obj: Dataset, form: Any, change: bool) -> None:
        if obj.chatbot_id is None and not user_sees_all_chatbots(request.user):
            raise PermissionDenied
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def get_urls(self) -> list:
        view = self.admin_site.admin_view
        return [
            path("<int:object_id>/upload/", view(self.upload_view), name="datasets_dataset_upload"),
            path("<int:object_id>/export/", view(self.export_view), name="datasets_dataset_export"),
            path("<int:object_id>/run/", view(self.run_view), name="datasets_dataset_run"),
            *super().get_urls(),
        ]

    def _dataset(self, request: HttpRequest, object_id: int, *, change: bool) -> Dataset:
        dataset = self.get_object(request, str(object_id))
        if dataset is None:
            raise Http404("No such dataset.")
        allowed = (
            self.has_change_permission(request, dataset)
            if change
            else self.has_view_permission(request, dataset)
        )
        if not allowed:
            raise PermissionDenied
        return dataset

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict | None = None,
    ) -> HttpResponse:
        dataset = self.get_object(request, object_id)
        extra = {}
        if dataset is not None:
            extra = {
                "items": list(dataset.items.order_by("-id")[:20]),
                "item_total": dataset.items.count(),
                "runs": list(selectors.runs_of(dataset)[:20]),
            }
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    def upload_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        dataset = self._dataset(request, object_id, change=True)
        form = UploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                created = services.dataset_items_import(
                    dataset=dataset, content=upload.read(), filename=upload.name, actor=request.user
                )
            except services.ItemInvalid as exc:
                form.add_error("file", str(exc))
            else:
                self.message_user(request, f"Added {created} item(s).", messages.SUCCESS)
                return HttpResponseRedirect(
                    reverse("admin:datasets_dataset_change", args=[dataset.pk])
                )
        return self._form_page(request, "admin/datasets/upload.html", f"Upload items to {dataset.name}", dataset, form)

    @replica_reads
    def export_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        dataset = self._dataset(request, object_id, change=False)
        response = StreamingHttpResponse(
            services.dataset_export_jsonl(dataset=dataset), content_type="application/jsonl"
        )
        response["Content-Disposition"] = f'attachment; filename="{dataset.slug}.jsonl"'
        return response

    def run_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        dataset = self._dataset(request, object_id, change=False)
        form = RunForm(request.POST or None, request.FILES or None)
        targets = chatbot_scoped(ExperimentTarget.objects.all(), request.user)
        if dataset.chatbot_id:
            targets = targets.filter(Q(chatbot__isnull=True) | Q(chatbot_id=dataset.chatbot_id))
        form.fields["target"].queryset = targets
        if request.method == "POST" and form.is_valid():
            answers = None
            try:
                if form.cleaned_data["answers"]:
                    answers = answers_parse(form.cleaned_data["answers"].read())
                run = experiments.experiment_run_create(
                    dataset=dataset,
                    target=form.cleaned_data["target"],
                    actor=request.user,
                    answers=answers,
                    note=form.cleaned_data["note"],
                )
            except (ValueError, experiments.ExperimentError) as exc:
                form.add_error(None, str(exc))
            else:
                self.message_user(
                    request, f"Run {run.pk} queued ({run.total} items).", messages.SUCCESS
                )
                return HttpResponseRedirect(
                    reverse("admin:datasets_experimentrun_change", args=[run.pk])
                )
        return self._form_page(request, "admin/datasets/run.html", f"Run {dataset.name} against a target", dataset, form)

    def _form_page(
        self, request: HttpRequest, template: str, title: str, dataset: Dataset, form: forms.Form
    ) -> TemplateResponse:
        """A dataset's form page in the admin; 400 while the form has errors."""
        context = {**self.admin_site.each_context(request), "title": title, "opts": self.opts,
                   "dataset": dataset, "form": form}
        return TemplateResponse(request, template, context, status=400 if form.errors else 200)


class DatasetItemForm(forms.ModelForm):
    """The API's and the upload's validation, so an item edited here is shaped the same."""

    class Meta:
        model = DatasetItem
        fields = (
            "dataset",
            "external_id",
            "input",
            "context",
            "expected_answer",
            "expected_properties",
            "tags",
            "metadata",
        )

    def clean(self) -> dict:
        data = super().clean()
        raw = {
            name: data.get(name)
            for name in (
                "input",
                "context",
                "expected_answer",
                "expected_properties",
                "tags",
                "metadata",
            )
        }
        try:
            cleaned = services.item_content_clean({**raw, "id": data.get("external_id") or ""})
        except services.ItemInvalid as exc:
            raise forms.ValidationError(str(exc)) from None
        data.update(cleaned)
        return data


@admin.register(DatasetItem)
class DatasetItemAdmin(ChatbotScopedAdminMixin, LargeTableAdmin):
    form = DatasetItemForm
    chatbot_scope_field = "dataset__chatbot"
    list_display = (
        "id",
        "dataset",
        "short_input",
        "version",
        "has_expected_answer",
        "tag_list",
        "source_turn_link",
        "updated_at",
    )
    list_filter = ("dataset",)
    list_select_related = ("dataset",)
    search_fields = ("=external_id", "input")
    raw_id_fields = ("source_turn",)
    readonly_fields = ("version", "source_turn", "created_at", "updated_at")
    fields = (
        "dataset",
        "external_id",
        "input",
        "context",
        "expected_answer",
        "expected_properties",
        "tags",
        "metadata",
        *readonly_fields,
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return chatbot_scoped(DatasetItem.objects.all(), request.user, field="dataset__chatbot")

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "dataset":
            kwargs["queryset"] = datasets_for(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.display(description="input")
    def short_input(self, obj: DatasetItem) -> str:
        return obj.input[:90]

    @admin.display(description="expected answer", boolean=True)
    def has_expected_answer(self, obj: DatasetItem) -> bool:
        return bool(obj.expected_answer)

    @admin.display(description="tags")
    def tag_list(self, obj: DatasetItem) -> str:
        return ", ".join(obj.tags or [])

    @admin.display(description="source turn")
    def source_turn_link(self, obj: DatasetItem) -> str:
        if not obj.source_turn_id:
            return "—"
        return format_html(
            '<a href="{}">turn {}</a>',
            reverse("admin:conversations_turn_change", args=[obj.source_turn_id]),
            obj.source_turn_id,
        )

    def save_model(self, request: HttpRequest, obj: DatasetItem, form: Any, change: bool) -> None:
        # The form saves the item; its version row follows (a new number when the content changed).
        super().save_model(request, obj, form, change)
        services.dataset_item_version_ensure(item=obj, actor=request.user)


# --- targets -------------------------------------------------------------------------------------


class ExperimentTargetForm(forms.ModelForm):
    secret_headers_text = forms.CharField(
        label="Secret headers",
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text='JSON object, e.g. {"Authorization": "Bearer …"}. Write-only: leave empty to keep the stored headers.',
    )

    class Meta:
        model = ExperimentTarget
        fields = (
            "name",
            "chatbot",
            "kind",
            "base_url",
            "model",
            "system_prompt",
            "temperature",
            "url",
            "method",
            "body_template",
            "answer_path",
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if isinstance(self.instance.secret_headers, UnreadableSecret):
            field = self.fields["secret_headers_text"]
            field.help_text = f"{field.help_text} Now: {UnreadableSecret.MESSAGE}."

    def clean(self) -> dict:
        data = super().clean()
        raw = data.get("secret_headers_text")
        if raw:
            try:
                headers = json.loads(raw)
            except ValueError:
                self.add_error("secret_headers_text", "Not JSON.")
                return data
            self.instance.secret_headers = headers
        for name in (
            "kind",
            "base_url",
            "model",
            "system_prompt",
            "temperature",
            "url",
            "method",
            "body_template",
            "answer_path",
        ):
            if name in data:
                setattr(self.instance, name, data[name])
        try:
            target_config_check(self.instance)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
        return data


@admin.register(ExperimentTarget)
class ExperimentTargetAdmin(ChatbotScopedAdminMixin, admin.ModelAdmin):
    form = ExperimentTargetForm
    list_display = ("name", "kind", "chatbot", "model", "url", "created_at")
    list_filter = ("kind", ChatbotListFilter)
    search_fields = ("name",)
    fieldsets = (
        (None, {"fields": ("name", "chatbot", "kind")}),
        (
            "Model + system prompt",
            {"fields": ("base_url", "model", "system_prompt", "temperature")},
        ),
        (
            "The bot's HTTP endpoint",
            {"fields": ("url", "method", "body_template", "answer_path", "secret_headers_text")},
        ),
    )


# --- runs ----------------------------------------------------------------------------------------


class ExperimentItemResultInline(admin.TabularInline):
    model = ExperimentItemResult
    fields = ("item", "version_number", "status", "score", "short_output", "error", "attempts")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False
    max_num = 0

    @admin.display(description="version")
    def version_number(self, obj: ExperimentItemResult) -> int:
        return obj.item_version.number

    @admin.display(description="output")
    def short_output(self, obj: ExperimentItemResult) -> str:
        return obj.output[:120]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("item_version", "item")


@admin.register(ExperimentRun)
class ExperimentRunAdmin(ChatbotScopedAdminMixin, admin.ModelAdmin):
    chatbot_scope_field = "dataset__chatbot"
    list_display = (
        "id",
        "dataset",
        "target",
        "status",
        "progress",
        "average_score",
        "grader_label",
        "baseline_mark",
        "created_at",
    )
    list_filter = ("status", "dataset", "target", "is_baseline")
    list_select_related = ("dataset", "target")
    actions = ("rerun_failed", "mark_baseline", "compare_two")
    readonly_fields = (
        "dataset",
        "target",
        "status",
        "grader_version",
        "is_baseline",
        "progress",
        "average_score",
        "note",
        "created_by",
        "created_at",
        "started_at",
        "finished_at",
    )
    # Grouped on a few lines so the results are on the first screen.
    fields = (
        ("dataset", "target", "status"),
        ("progress", "average_score", "is_baseline"),
        ("grader_version", "note"),
        ("created_by", "created_at", "started_at", "finished_at"),
    )
    inlines = (ExperimentItemResultInline,)
    change_form_template = "admin/datasets/experimentrun_change_form.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return (
            False  # runs start from a dataset ("Run against a target"), the API or run_experiment
        )

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="progress")
    def progress(self, obj: ExperimentRun) -> str:
        eta = obj.eta()
        parts = [f"{obj.done}/{obj.total} done"]
        if obj.failed:
            parts.append(f"{obj.failed} failed")
        if eta is not None:
            parts.append(f"ETA {int(eta.total_seconds())} s")
        return " · ".join(parts)

    @admin.display(description="graded by")
    def grader_label(self, obj: ExperimentRun) -> str:
        return "Heuristic (offline)" if obj.grader == "heuristic" else obj.grader_version

    @admin.display(description="baseline", boolean=True, ordering="is_baseline")
    def baseline_mark(self, obj: ExperimentRun) -> bool:
        return obj.is_baseline

    def get_urls(self) -> list:
        return [
            path(
                "compare/<int:base_id>/<int:candidate_id>/",
                self.admin_site.admin_view(self.compare_view),
                name="datasets_experimentrun_compare",
            ),
            *super().get_urls(),
        ]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict | None = None,
    ) -> HttpResponse:
        run = self.get_object(request, object_id)
        extra: dict[str, Any] = {}
        if run is not None:
            base = selectors.baseline_for(dataset=run.dataset, spec="latest", exclude=run.pk)
            if base is not None:
                extra["compare_url"] = reverse(
                    "admin:datasets_experimentrun_compare", args=[base.pk, run.pk]
                )
                extra["compare_base"] = base
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    def compare_view(self, request: HttpRequest, base_id: int, candidate_id: int) -> HttpResponse:
        runs = {
            r.pk: r
            for r in self.get_queryset(request)
            .filter(pk__in=[base_id, candidate_id])
            .select_related("dataset", "target")
        }
        if base_id not in runs or candidate_id not in runs:
            raise Http404("No such runs among the datasets you see.")
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            comparison = selectors.runs_compare(base=runs[base_id], candidate=runs[candidate_id])
        except ValueError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(reverse("admin:datasets_experimentrun_changelist"))
        changed = [i for i in comparison.items if i["delta"] not in (None, 0)]
        changed.sort(key=lambda i: i["delta"])
        context = {
            **self.admin_site.each_context(request),
            "title": f"Run {candidate_id} against run {base_id}",
            "opts": self.opts,
            "comparison": comparison,
            "base": runs[base_id],
            "candidate": runs[candidate_id],
            "changed_items": changed,
            "regressed_ids": {i["item"] for i in comparison.regressed},
            "improved_ids": {i["item"] for i in comparison.improved},
            "threshold": settings.EXPERIMENT_REGRESSION_DELTA,
        }
        return TemplateResponse(request, "admin/datasets/compare.html", context)

    @admin.action(description="Re-run failed items", permissions=["view"])
    def rerun_failed(self, request: HttpRequest, queryset: QuerySet) -> None:
        total = sum(experiments.experiment_failed_rerun(run=run) for run in queryset)
        self.message_user(request, f"Queued {total} item(s) again.")

    @admin.action(description="Mark as the dataset's baseline", permissions=["view"])
    def mark_baseline(self, request: HttpRequest, queryset: QuerySet) -> None:
        runs = list(queryset)
        if len({r.dataset_id for r in runs}) != len(runs):
            self.message_user(request, "Pick at most one run per dataset.", messages.ERROR)
            return
        for run in runs:
            experiments.experiment_baseline_set(run=run)
        self.message_user(request, f"{len(runs)} run(s) marked as baseline.")

    @admin.action(description="Compare two runs", permissions=["view"])
    def compare_two(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        runs = list(queryset.order_by("created_at", "id"))
        if len(runs) != 2 or runs[0].dataset_id != runs[1].dataset_id:
            self.message_user(request, "Select two runs of the same dataset.", messages.ERROR)
            return None
        return HttpResponseRedirect(
            reverse("admin:datasets_experimentrun_compare", args=[runs[0].pk, runs[1].pk])
        )
