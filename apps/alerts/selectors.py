"""Alert metrics: one aggregate query over conversations.Turn per (metric, chatbot, window).

Every metric is defined in the metric catalogue (apps.conversations.metrics_catalogue), which the
dashboard and the stats API use too, and computed by the database over the turns with
`since < timestamp <= until`, filtered by chatbot when given, which the (chatbot, timestamp)
and (timestamp) indexes serve. Rates come back as percentages (0–100).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Exists, OuterRef, QuerySet
from django.utils import timezone

from apps.conversations.choices import RiskLevel
from apps.conversations.metrics_catalogue import (
    CATALOGUE,
    figure_aggregates,
    figures_for,
    metric_value,
    score_figure_aggregates,
    slow_aggregate,
    window_q,
)
from apps.conversations.models import Turn
from apps.core.latency_histogram import bucket_expression
from apps.scores.models import Score

from .choices import OPEN_STATUSES, THEME_METRICS, Metric
from .models import AlertEvent, AlertRule


@dataclass(frozen=True)
class MetricResult:
    value: float | None  # None: nothing to compute over (e.g. no rated turns)
    sample_size: int  # the turns the value is a share/average/percentile of


def turns_in_window(*, chatbot_id: int | None, since: datetime, until: datetime) -> QuerySet[Turn]:
    turns = Turn.objects.filter(window_q(since, until))
    if chatbot_id is not None:
        turns = turns.filter(chatbot_id=chatbot_id)
    # No default ordering: it would only slow the aggregate down.
    return turns.order_by()


def metric_compute(
    *, metric: str, chatbot_id: int | None, since: datetime, until: datetime, slow_ms: int = 3000,
    score_name: str = "",
) -> MetricResult:
    """The value of `metric` over the window, as the catalogue defines it: one query.

    Outcomes and scores are one aggregate over the window's scores (apps.scores).
    Percentiles read the window's latency histogram (one grouped query, the buckets the
    dashboard's rollup stores); every other metric is one aggregate of the catalogue's figures.
    """
    if metric not in Metric.values:
        raise ValueError(f"unknown metric {metric!r}")
    definition = CATALOGUE[metric]
    if definition.source == "conversation_judge":
        from apps.evaluations.selectors import conversation_judge_figures

        figures = conversation_judge_figures(
            chatbot_ids=[chatbot_id] if chatbot_id is not None else None, since=since, until=until
        )
        value, sample = metric_value(metric, figures)
        return MetricResult(float(value) if value is not None else None, sample)
    if definition.source == "scores":
        if metric == Metric.SCORE_AVERAGE and not score_name:
            raise ValueError("the score_average metric needs a score name")
        aggregates = score_figure_aggregates(score_name)
        scores = Score.objects.filter(window_q(since, until))
        if chatbot_id is not None:
            scores = scores.filter(chatbot_id=chatbot_id)
        figures = scores.order_by().aggregate(**{name: aggregates[name] for name in figures_for(metric)})
        value, sample = metric_value(metric, figures)
        return MetricResult(float(value) if value is not None else None, sample)
    turns = turns_in_window(chatbot_id=chatbot_id, since=since, until=until)
    if definition.kind == "percentile":
        latency = dict(
            turns.filter(latency_ms__isnull=False).annotate(bucket=bucket_expression("latency_ms"))
            .values("bucket").annotate(n=Count("id")).values_list("bucket", "n")
        )
        value, sample = metric_value(metric, {}, latency)
        return MetricResult(value, sample)
    aggregates = figure_aggregates()
    wanted = {name: aggregates[name] for name in figures_for(metric) if name != "slow"}
    if metric == Metric.SLOW_SHARE:
        wanted["slow"] = slow_aggregate(slow_ms)
    wanted.setdefault("turns", aggregates["turns"])
    value, sample = metric_value(metric, turns.aggregate(**wanted))
    return MetricResult(float(value) if value is not None else None, sample)


def rule_metric_compute(*, rule: AlertRule, now: datetime | None = None) -> MetricResult:
    until = now or timezone.now()
    return metric_compute(
        metric=rule.metric,
        chatbot_id=rule.chatbot_id,
        since=until - timedelta(minutes=rule.window_minutes),
        until=until,
        slow_ms=rule.slow_ms,
        score_name=rule.score_name,
    )


def rules_to_check() -> QuerySet[AlertRule]:
    """The rules the minute check evaluates: theme rules wait for a clustering run instead."""
    return (
        AlertRule.objects.filter(is_enabled=True).exclude(metric__in=list(THEME_METRICS))
        .select_related("chatbot").order_by("id")
    )


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
