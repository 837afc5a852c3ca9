import operator
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from apps.core.models import TimestampedModel

from .choices import (
    METRIC_UNITS,
    OPEN_STATUSES,
    SAMPLED_METRICS,
    ChannelKind,
    Comparison,
    DeliveryStatus,
    EventStatus,
    Metric,
    NotificationKind,
    RuleState,
    Severity,
)


class NotificationChannel(TimestampedModel):
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=10, choices=ChannelKind.choices)
    config = models.JSONField(
        default=dict, blank=True,
        help_text='slack/discord: {"url": …}; webhook: {"url": …, "secret": …}; email: {"to": ["a@b.c"]}; '
                  "log: {} (writes to chatmon's log, sends nothing)",
    )
    chatbots = models.ManyToManyField(
        "chatbots.Chatbot", blank=True, related_name="notification_channels",
        help_text="Chatbots whose per-turn risk alerts go to this channel.",
    )
    is_enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    def clean(self) -> None:
        # The transport knows what its config needs (URL scheme, secret, recipients).
        from .transports import transport_for

        try:
            transport_for(self.kind).validate_config(self.config or {})
        except ValueError as exc:
            raise ValidationError({"config": str(exc)}) from exc


class AlertRule(TimestampedModel):
    name = models.CharField(max_length=200)
    chatbot = models.ForeignKey(
        "chatbots.Chatbot", null=True, blank=True, on_delete=models.CASCADE, related_name="alert_rules",
        help_text="Empty: all chatbots together.",
    )
    metric = models.CharField(max_length=32, choices=Metric.choices)
    comparison = models.CharField(max_length=4, choices=Comparison.choices, default=Comparison.GT)
    threshold = models.FloatField()
    window_minutes = models.PositiveIntegerField(default=60)
    min_samples = models.PositiveIntegerField(default=10, help_text="Below this many turns the rule stays quiet.")
    slow_ms = models.PositiveIntegerField(default=3000, help_text="For 'share of turns slower than N ms'.")
    score_name = models.CharField(max_length=100, blank=True,
                                  help_text="For 'average of a score': the score's name (faithfulness, csat, …).")
    renotify_minutes = models.PositiveIntegerField(default=60, help_text="Re-notify while firing; 0: never.")
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.WARNING)
    channels = models.ManyToManyField(NotificationChannel, blank=True, related_name="rules")
    is_enabled = models.BooleanField(default=True)

    state = models.CharField(max_length=8, choices=RuleState.choices, default=RuleState.OK)
    last_value = models.FloatField(null=True, blank=True)
    last_sample_size = models.PositiveIntegerField(null=True, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.metric == "score_average" and not self.score_name.strip():
            raise ValidationError({"score_name": "Name the score to average (e.g. faithfulness)."})

    _COMPARE: dict[str, Callable[[float, float], bool]] = {
        Comparison.GT: operator.gt,
        Comparison.GTE: operator.ge,
        Comparison.LT: operator.lt,
        Comparison.LTE: operator.le,
    }

    @property
    def uses_min_samples(self) -> bool:
        return self.metric in SAMPLED_METRICS

    @property
    def unit(self) -> str:
        return METRIC_UNITS.get(self.metric, "")

    def is_breaching(self, value: float | None, sample_size: int) -> bool:
        """True when the evaluated value crosses the threshold on enough turns.

        No value (no turns to average over) or too few turns never breaches, so an alert that
        was firing resolves when traffic stops; a turn-volume rule is how a silence alerts.
        """
        if value is None:
            return False
        if self.uses_min_samples and sample_size < self.min_samples:
            return False
        return self._COMPARE[self.comparison](value, self.threshold)

    def describe_condition(self) -> str:
        if self.metric == "new_failure_theme":
            return (f"A failure theme of {self.get_comparison_display()} {self.threshold:g} turns that matches no theme "
                    "of the previous clustering run")
        if self.metric == "theme_share_growth":
            return (f"A failure theme's share grew {self.get_comparison_display()} {self.threshold:g} points since the "
                    "previous clustering run")
        metric = self.get_metric_display()
        if self.metric == "slow_share":
            metric = f"Share of turns slower than {self.slow_ms} ms"
        elif self.metric == "score_average":
            metric = f"Average of score {self.score_name or '(no name)'}"
        return f"{metric} {self.get_comparison_display()} {self.threshold:g}{self.unit} over {self.window_minutes} min"


class AlertEvent(models.Model):
    rule = models.ForeignKey(AlertRule, null=True, blank=True, on_delete=models.CASCADE, related_name="events")
    chatbot = models.ForeignKey("chatbots.Chatbot", null=True, blank=True, on_delete=models.CASCADE, related_name="alert_events")
    turn = models.ForeignKey("conversations.Turn", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=14, choices=EventStatus.choices, default=EventStatus.FIRING)
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.WARNING)
    metric = models.CharField(max_length=32, blank=True)
    value = models.FloatField(null=True, blank=True)
    threshold = models.FloatField(null=True, blank=True)
    sample_size = models.PositiveIntegerField(null=True, blank=True)
    message = models.TextField(blank=True)
    started_at = models.DateTimeField()
    last_notified_at = models.DateTimeField(null=True, blank=True)
    notify_count = models.PositiveIntegerField(default=0)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    cluster_run = models.ForeignKey(
        "clustering.ClusterRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="Theme rules: the clustering run whose themes fired the rule.",
    )

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            # At most one open event per rule: the database, not the scheduler, guarantees it.
            models.UniqueConstraint(
                fields=["rule"], condition=Q(status__in=list(OPEN_STATUSES)), name="one_open_event_per_rule"
            ),
            # A risky turn raises one per-event alert however often ingest reports it.
            models.UniqueConstraint(fields=["turn"], condition=Q(rule__isnull=True), name="one_risk_event_per_turn"),
            # A theme rule fires at most once per clustering run, however often the run is checked.
            models.UniqueConstraint(
                fields=["rule", "cluster_run"], condition=Q(cluster_run__isnull=False), name="one_theme_event_per_run"
            ),
        ]
        indexes = [
            models.Index(fields=["status", "-started_at"], name="alertevent_status_time"),
            # Risk alerts waiting for the next digest, per chatbot (read every minute).
            models.Index(
                fields=["chatbot", "started_at"], name="alertevent_risk_pending",
                condition=Q(rule__isnull=True, last_notified_at__isnull=True),
            ),
            models.Index(fields=["chatbot", "-last_notified_at"], name="alertevent_risk_notified", condition=Q(rule__isnull=True)),
        ]

    def __str__(self) -> str:
        return f"{self.title} {self.status} at {self.started_at:%Y-%m-%d %H:%M}"

    @property
    def title(self) -> str:
        if self.rule_id:
            return self.rule.name if self.rule else f"rule {self.rule_id}"
        return f"Risky turn {self.turn_id}" if self.turn_id else "Risky turn"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


class Delivery(models.Model):
    """One notification to one channel; written before sending and updated after."""

    channel = models.ForeignKey(NotificationChannel, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey(AlertEvent, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries")
    kind = models.CharField(max_length=10, choices=NotificationKind.choices)
    dedupe_key = models.CharField(max_length=200, help_text="Same key, same send: stops double notifications.")
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    payload = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "deliveries"
        constraints = [models.UniqueConstraint(fields=["channel", "dedupe_key"], name="delivery_once_per_key")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} to {self.channel_id}: {self.status}"
