from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from apps.chatbots.admin_mixins import ChatbotListFilter, ChatbotScopedAdminMixin
from apps.core.admin import LargeTableAdmin

from .choices import THEME_METRICS, DeliveryStatus, EventStatus, NotificationKind
from .deliveries import channel_test_send, delivery_resend
from .models import AlertEvent, AlertRule, Delivery, NotificationChannel
from .rules import alert_event_acknowledge, alert_rule_check


class ReadOnlyDeliveryInline(admin.TabularInline):
    """The event's notification timeline: every send, its attempts and outcome."""

    model = Delivery
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True
    fields = ("created_at", "kind", "channel", "status", "attempts", "response_code", "error", "sent_at")
    readonly_fields = fields
    ordering = ("created_at", "id")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Delivery]:
        return super().get_queryset(request).select_related("channel")


@admin.register(NotificationChannel)
class NotificationChannelAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "is_enabled", "rule_count", "updated_at")
    list_filter = ("kind", "is_enabled")
    search_fields = ("name",)
    filter_horizontal = ("chatbots",)
    actions = ["send_test_notification"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[NotificationChannel]:
        from django.db.models import Count

        return super().get_queryset(request).annotate(_rule_count=Count("rules", distinct=True))

    @admin.display(description="Rules", ordering="_rule_count")
    def rule_count(self, obj: NotificationChannel) -> int:
        return obj._rule_count

    @admin.action(description="Send test notification")
    def send_test_notification(self, request: HttpRequest, queryset: QuerySet[NotificationChannel]) -> None:
        deliveries = [channel_test_send(channel_id=channel.pk) for channel in queryset]
        sent = sum(d.status == DeliveryStatus.SENT for d in deliveries)
        failed = [d for d in deliveries if d.status == DeliveryStatus.FAILED]
        if failed:
            self.message_user(
                request,
                "; ".join(f"{d.channel.name}: {d.error}" for d in failed),
                messages.ERROR,
            )
        pending = len(deliveries) - sent - len(failed)
        if sent:
            self.message_user(request, f"Test notification sent to {sent} channel(s).", messages.SUCCESS)
        if pending:
            self.message_user(
                request, f"Test notification to {pending} channel(s) failed for now and will be retried; "
                "see Deliveries for the outcome.",
                messages.INFO,
            )


@admin.register(AlertRule)
class AlertRuleAdmin(ChatbotScopedAdminMixin, admin.ModelAdmin):
    list_display = (
        "name", "chatbot_or_all", "condition", "severity", "state", "last_value_display", "last_sample_size",
        "last_checked_at", "short_error", "is_enabled",
    )
    list_filter = ("state", "is_enabled", "metric", "severity", ChatbotListFilter)
    list_select_related = ("chatbot",)
    search_fields = ("name",)
    filter_horizontal = ("channels",)
    readonly_fields = ("state", "last_value", "last_sample_size", "last_checked_at", "last_error", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("name", "chatbot", "is_enabled", "severity")}),
        ("Condition", {
            "fields": ("metric", "comparison", "threshold", "window_minutes", "min_samples", "slow_ms", "score_name"),
            "description": "Rates are percentages (a threshold of 5 means 5 %). The minimum sample size "
                           "applies to rates, averages and p95; counts, cost and volume always count.",
        }),
        ("Notifications", {"fields": ("channels", "renotify_minutes")}),
        ("Last check", {"fields": ("state", "last_value", "last_sample_size", "last_checked_at", "last_error")}),
        (None, {"fields": ("created_at", "updated_at")}),
    )
    actions = ["check_now", "enable", "disable"]

    @admin.display(description="Chatbot", ordering="chatbot__name")
    def chatbot_or_all(self, obj: AlertRule) -> str:
        return obj.chatbot.name if obj.chatbot else "All chatbots"

    @admin.display(description="Condition")
    def condition(self, obj: AlertRule) -> str:
        return obj.describe_condition()

    @admin.display(description="Last value", ordering="last_value")
    def last_value_display(self, obj: AlertRule) -> str:
        return "—" if obj.last_value is None else f"{obj.last_value:.4g}{obj.unit}"

    @admin.display(description="Last error")
    def short_error(self, obj: AlertRule) -> str:
        return (obj.last_error[:80] + "…") if len(obj.last_error) > 80 else obj.last_error

    @admin.action(description="Check selected rules now")
    def check_now(self, request: HttpRequest, queryset: QuerySet[AlertRule]) -> None:
        now = timezone.now()
        if queryset.filter(metric__in=list(THEME_METRICS)).exists():
            self.message_user(request, "Theme rules are checked when a clustering run finishes, not here.",
                              messages.WARNING)
        for rule in queryset.filter(is_enabled=True).exclude(metric__in=list(THEME_METRICS)):
            outcome = alert_rule_check(rule_id=rule.pk, now=now)
            if outcome is None:
                continue
            if outcome.error:
                self.message_user(request, f"{rule.name}: error: {outcome.error}", messages.ERROR)
            elif outcome.skipped:
                self.message_user(request, f"{rule.name}: being checked by another run", messages.WARNING)
            else:
                value = "no data" if outcome.value is None else f"{outcome.value:.4g}{rule.unit}"
                self.message_user(request, f"{rule.name}: {value} → {outcome.state}", messages.INFO)
        if queryset.filter(is_enabled=False).exists():
            self.message_user(request, "Disabled rules were not checked.", messages.WARNING)

    @admin.action(description="Enable selected rules")
    def enable(self, request: HttpRequest, queryset: QuerySet[AlertRule]) -> None:
        self.message_user(request, f"Enabled {queryset.update(is_enabled=True)} rule(s).")

    @admin.action(description="Disable selected rules")
    def disable(self, request: HttpRequest, queryset: QuerySet[AlertRule]) -> None:
        self.message_user(request, f"Disabled {queryset.update(is_enabled=False)} rule(s).")


@admin.register(AlertEvent)
class AlertEventAdmin(ChatbotScopedAdminMixin, LargeTableAdmin):
    # When it was acknowledged and how often it was sent are on the event's page (its timeline):
    # with them the list was wider than the screen and the alert's name one word per line.
    list_display = (
        "id", "title_display", "chatbot", "status", "severity", "value_display", "threshold_display", "started_at",
        "resolved_at",
    )
    list_filter = ("status", "severity", ("rule", admin.EmptyFieldListFilter), ChatbotListFilter)
    list_select_related = ("rule", "chatbot")
    raw_id_fields = ("turn", "acknowledged_by", "rule", "chatbot")
    readonly_fields = (
        "rule", "chatbot", "turn", "status", "severity", "metric", "value", "threshold", "sample_size", "message",
        "started_at", "last_notified_at", "notify_count", "acknowledged_at", "acknowledged_by", "resolved_at",
        "timeline",
    )
    fields = readonly_fields
    inlines = [ReadOnlyDeliveryInline]
    actions = ["acknowledge"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # events come from checks and risky turns, never by hand

    def get_queryset(self, request: HttpRequest) -> QuerySet[AlertEvent]:
        return super().get_queryset(request).select_related("rule", "chatbot", "acknowledged_by")

    @admin.display(description="Alert")
    def title_display(self, obj: AlertEvent) -> str:
        return obj.title

    @admin.display(description="Value", ordering="value")
    def value_display(self, obj: AlertEvent) -> str:
        return self._with_unit(obj, obj.value)

    @admin.display(description="Threshold", ordering="threshold")
    def threshold_display(self, obj: AlertEvent) -> str:
        return self._with_unit(obj, obj.threshold)

    @staticmethod
    def _with_unit(obj: AlertEvent, number: float | None) -> str:
        # The value and its threshold in the rule's unit ("5.161%" against "5%", not "5.0").
        if number is None:
            return "—"
        return f"{number:.4g}{obj.rule.unit if obj.rule else ''}"

    @admin.display(description="Timeline")
    def timeline(self, obj: AlertEvent) -> str:
        """Started, each notification, acknowledged, resolved — in time order."""
        entries: list[tuple[Any, str]] = [(obj.started_at, f"Fired: {obj.message}")]
        kinds = dict(NotificationKind.choices)
        for delivery in obj.deliveries.select_related("channel").order_by("created_at", "id"):
            outcome = delivery.get_status_display() + (f" ({delivery.error})" if delivery.error else "")
            entries.append((delivery.created_at, f"{kinds.get(delivery.kind, delivery.kind)} → {delivery.channel.name}: {outcome}"))
        if obj.acknowledged_at:
            entries.append((obj.acknowledged_at, f"Acknowledged by {obj.acknowledged_by or 'someone'}"))
        if obj.resolved_at:
            entries.append((obj.resolved_at, "Resolved"))
        entries.sort(key=lambda entry: entry[0])
        return format_html(
            "<ul style='margin:0;padding-left:1em'>{}</ul>",
            format_html_join("", "<li><time>{}</time> — {}</li>", (
                (timezone.localtime(when).strftime("%Y-%m-%d %H:%M:%S"), text) for when, text in entries
            )),
        )

    @admin.action(description="Acknowledge selected events")
    def acknowledge(self, request: HttpRequest, queryset: QuerySet[AlertEvent]) -> None:
        done = sum(
            alert_event_acknowledge(event_id=pk, user=request.user)
            for pk in queryset.filter(status=EventStatus.FIRING).values_list("pk", flat=True)
        )
        self.message_user(request, f"Acknowledged {done} event(s).", messages.SUCCESS if done else messages.WARNING)


@admin.register(Delivery)
class DeliveryAdmin(ChatbotScopedAdminMixin, LargeTableAdmin):
    chatbot_scope_field = "event__chatbot"
    list_display = ("id", "created_at", "channel", "kind", "event", "status", "attempts", "response_code", "short_error", "sent_at")
    list_filter = ("status", "kind", "channel")
    list_select_related = ("channel", "event", "event__rule")
    raw_id_fields = ("event",)
    readonly_fields = (
        "channel", "event", "kind", "dedupe_key", "status", "attempts", "response_code", "error", "payload",
        "created_at", "sent_at",
    )
    fields = readonly_fields
    actions = ["resend"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Delivery | None = None) -> bool:
        return False  # a record of what was sent: read-only

    @admin.display(description="Error")
    def short_error(self, obj: Delivery) -> str:
        return (obj.error[:80] + "…") if len(obj.error) > 80 else obj.error

    @admin.action(description="Send failed deliveries again", permissions=["view"])
    def resend(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        resent = [
            delivery_resend(delivery_id=pk)
            for pk in queryset.filter(status=DeliveryStatus.FAILED).values_list("pk", flat=True)
        ]
        self.message_user(request, f"Queued {sum(d is not None for d in resent)} delivery(ies) again.")
