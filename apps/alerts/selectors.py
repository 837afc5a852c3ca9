"""Alert metrics: one aggregate query over conversations.Turn per (metric, chatbot, window).

Every metric is computed by the database over the turns with `since < timestamp <= until`,
filtered by chatbot when given, which the (chatbot, timestamp) and (timestamp) indexes serve.
Rates come back as percentages (0–100). The dashboard may reuse `metric_compute`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Avg, Count, Exists, OuterRef, Q, QuerySet, Sum
from django.utils import timezone

from apps.conversations.choices import RiskLevel
from apps.conversations.models import Turn
from apps.core.db import PercentileCont, percentile_cont_portable

from .choices import OPEN_STATUSES, Metric
from .models import AlertEvent, AlertRule


@dataclass(frozen=True)
class MetricResult:
    value: float | None  # None: nothing to compute over (e.g. no rated turns)
    sample_size: int  # the turns the value is a share/average/percentile of


def turns_in_window(*, chatbot_id: int | None, since: datetime, until: datetime) -> QuerySet[Turn]:
    turns = Turn.objects.filter(timestamp__gt=since, timestamp__lte=until)
    if chatbot_id is not None:
        turns = turns.filter(chatbot_id=chatbot_id)
    # No default ordering: it would only slow the aggregate down.
    return turns.order_by()


def _share(part: int | None, whole: int | None) -> float | None:
    return (part or 0) * 100.0 / whole if whole else None


def metric_compute(
    *, metric: str, chatbot_id: int | None, since: datetime, until: datetime, slow_ms: int = 3000
) -> MetricResult:
    """The value of `metric` over the window: one aggregate query (two for p95 on SQLite)."""
    turns = turns_in_window(chatbot_id=chatbot_id, since=since, until=until)
    if metric == Metric.ERROR_RATE:
        row = turns.aggregate(total=Count("id"), part=Count("id", filter=Q(has_error=True)))
        return MetricResult(_share(row["part"], row["total"]), row["total"])
    if metric == Metric.FALLBACK_RATE:
        row = turns.aggregate(total=Count("id"), part=Count("id", filter=Q(fallback_used=True)))
        return MetricResult(_share(row["part"], row["total"]), row["total"])
    if metric == Metric.FALLBACK_COUNT:
        row = turns.aggregate(total=Count("id"), part=Count("id", filter=Q(fallback_used=True)))
        return MetricResult(float(row["part"]), row["total"])
    if metric == Metric.LATENCY_P95:
        if connection.vendor == "postgresql":
            row = turns.aggregate(total=Count("latency_ms"), value=PercentileCont("latency_ms", percentile=0.95))
            return MetricResult(row["value"], row["total"])
        total = turns.aggregate(total=Count("latency_ms"))["total"]
        return MetricResult(percentile_cont_portable(turns, "latency_ms", (0.95,), count=total)[0.95], total)
    if metric == Metric.SLOW_SHARE:
        row = turns.aggregate(total=Count("latency_ms"), part=Count("id", filter=Q(latency_ms__gt=slow_ms)))
        return MetricResult(_share(row["part"], row["total"]), row["total"])
    if metric == Metric.THUMBS_DOWN_RATE:
        # Of rated turns only: unrated turns say nothing about satisfaction.
        row = turns.aggregate(
            total=Count("id", filter=Q(thumbs_up__gt=0) | Q(thumbs_down__gt=0)),
            part=Count("id", filter=Q(thumbs_down__gt=0)),
        )
        return MetricResult(_share(row["part"], row["total"]), row["total"])
    if metric == Metric.JUDGE_AVERAGE:
        row = turns.aggregate(total=Count("judge_overall"), value=Avg("judge_overall"))
        return MetricResult(row["value"], row["total"])
    if metric == Metric.HALLUCINATION_RATE:
        row = turns.aggregate(
            total=Count("judge_hallucination"), part=Count("id", filter=Q(judge_hallucination=True))
        )
        return MetricResult(_share(row["part"], row["total"]), row["total"])
    if metric == Metric.FLAGGED_TURNS:
        row = turns.aggregate(total=Count("id"), part=Count("id", filter=Q(is_flagged=True)))
        return MetricResult(float(row["part"]), row["total"])
    if metric == Metric.COST_USD:
        row = turns.aggregate(total=Count("id"), value=Sum("total_cost_usd"))
        return MetricResult(float(row["value"] or 0), row["total"])
    if metric == Metric.TURN_VOLUME:
        total = turns.aggregate(total=Count("id"))["total"]
        return MetricResult(float(total), total)
    raise ValueError(f"unknown metric {metric!r}")


def rule_metric_compute(*, rule: AlertRule, now: datetime | None = None) -> MetricResult:
    until = now or timezone.now()
    return metric_compute(
        metric=rule.metric,
        chatbot_id=rule.chatbot_id,
        since=until - timedelta(minutes=rule.window_minutes),
        until=until,
        slow_ms=rule.slow_ms,
    )


def rules_to_check() -> QuerySet[AlertRule]:
    return AlertRule.objects.filter(is_enabled=True).select_related("chatbot").order_by("id")


def rule_open_event(*, rule_id: int) -> AlertEvent | None:
    return AlertEvent.objects.filter(rule_id=rule_id, status__in=OPEN_STATUSES).first()


def risky_turns_for_alert(*, turn_ids: list[int]) -> QuerySet[Turn]:
    """Of `turn_ids`, the flagged high/critical turns whose chatbot wants per-event alerts."""
    return Turn.objects.filter(
        pk__in=turn_ids,
        is_flagged=True,
        risk_level__in=[RiskLevel.HIGH, RiskLevel.CRITICAL],
        chatbot__alert_on_risk=True,
    ).order_by("id")


def risky_turns_unreported(*, created_after: datetime, created_before: datetime) -> QuerySet[Turn]:
    """Turns `risky_turns_for_alert` would take that were stored in the window and have no risk
    event: their ingest-time report never ran (broker down at commit, a lost task).

    Served by the partial index turn_risky_created (flagged high/critical turns only).
    """
    return Turn.objects.filter(
        created_at__gt=created_after,
        created_at__lte=created_before,
        is_flagged=True,
        risk_level__in=[RiskLevel.HIGH, RiskLevel.CRITICAL],
        chatbot__alert_on_risk=True,
    ).filter(~Exists(AlertEvent.objects.filter(rule__isnull=True, turn_id=OuterRef("pk")))).order_by("id")


def risk_events_pending_chatbot_ids() -> list[int]:
    return list(
        AlertEvent.objects.filter(rule__isnull=True, last_notified_at__isnull=True, chatbot__isnull=False)
        .order_by().values_list("chatbot_id", flat=True).distinct()
    )


def risk_last_notified_at(*, chatbot_id: int) -> datetime | None:
    return (
        AlertEvent.objects.filter(rule__isnull=True, chatbot_id=chatbot_id, last_notified_at__isnull=False)
        .order_by("-last_notified_at").values_list("last_notified_at", flat=True).first()
    )
