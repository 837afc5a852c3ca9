"""Reads behind the dashboard, the review queue and the staff stats API.

The admin dashboard and `GET /api/v1/stats/*` call the same functions, so their numbers always
agree. Turn figures come from the hourly rollup where it is current and from the turns
elsewhere (`apps.review.rollup`); the rest is one grouped query over an indexed time range
(`turn_chatbot_time`, `llmcall_*`, the flagged partial indexes on conversations).

Percentiles follow PostgreSQL's `percentile_cont` (linear interpolation between the two nearest
ranks). Turn latency percentiles are read from a log-bucket histogram, within 1 % of the exact
figure (`apps.review.latency_histogram`), so 30-day windows need no sort of a million values; LLM-call
duration percentiles are exact (on SQLite computed from the two middle rows).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import (
    Avg,
    Count,
    F,
    Max,
    Q,
    QuerySet,
    Sum,
)
from django.utils import timezone

from apps.alerts.choices import OPEN_STATUSES
from apps.alerts.models import AlertEvent
from apps.chatbots.access import chatbot_scoped
from apps.clustering.choices import RunStatus
from apps.clustering.models import Cluster, ClusterRun
from apps.conversations.choices import ReviewStatus, RiskLevel
from apps.conversations.models import Conversation, LLMCall
from apps.core.db import PercentileCont, percentile_cont_portable

from . import latency_histogram
from .rollup import FIGURES, window_turn_figures

# The ranges offered by the dashboard; the API accepts any whole number of hours up to MAX_HOURS.
DASHBOARD_RANGES: dict[str, int] = {"24h": 24, "7d": 24 * 7, "30d": 24 * 30}
MAX_HOURS = 24 * 366
OPEN_REVIEW_STATUSES = (ReviewStatus.NEW, ReviewStatus.IN_REVIEW)


@dataclass(frozen=True)
class Window:
    since: datetime
    until: datetime
    hours: int

    @classmethod
    def last(cls, hours: int, *, now: datetime | None = None) -> Window:
        until = now or timezone.now()
        return cls(since=until - timedelta(hours=hours), until=until, hours=hours)


def _rate(numerator: int | float, denominator: int | float) -> float | None:
    return round(numerator / denominator, 6) if denominator else None


def _money(value: Any) -> float:
    return round(float(value or 0), 6)


def _hour_buckets(window: Window) -> list[datetime]:
    tz = timezone.get_current_timezone()
    first = timezone.localtime(window.since, tz).replace(minute=0, second=0, microsecond=0)
    buckets, current = [], first
    while current <= window.until:
        buckets.append(current)
        current = timezone.localtime(current + timedelta(hours=1), tz)
    return buckets


def _latest_cluster_runs(chatbot_ids: Sequence[int] | None) -> list[int]:
    runs = chatbot_scoped(ClusterRun.objects.filter(status=RunStatus.DONE), chatbot_ids)
    return list(runs.order_by().values("chatbot_id").annotate(latest=Max("id")).values_list("latest", flat=True))


def top_failure_clusters(*, chatbot_ids: Sequence[int] | None, limit: int = 5) -> list[dict[str, Any]]:
    """The biggest clusters (not the 'other' bucket) of each chatbot's latest finished run."""
    run_ids = _latest_cluster_runs(chatbot_ids)
    if not run_ids:
        return []
    clusters = (
        Cluster.objects.filter(run_id__in=run_ids, is_noise=False)
        .select_related("run__chatbot")
        .order_by("-size", "id")[:limit]
    )
    return [
        {
            "id": cluster.pk,
            "label": cluster.label,
            "keywords": list(cluster.keywords or [])[:8],
            "size": cluster.size,
            "share": round(cluster.share, 4),
            "avg_judge_score": round(cluster.avg_judge_score, 2) if cluster.avg_judge_score is not None else None,
            "run_id": cluster.run_id,
            "chatbot": cluster.run.chatbot.slug,
            "run_finished_at": cluster.run.finished_at,
        }
        for cluster in clusters
    ]


def open_alert_events(*, chatbot_ids: Sequence[int] | None, limit: int = 10) -> list[dict[str, Any]]:
    """Firing (and acknowledged but unresolved) alert events; all-chatbot events only for those who see all."""
    events = chatbot_scoped(AlertEvent.objects.filter(status__in=OPEN_STATUSES), chatbot_ids)
    events = events.select_related("rule", "chatbot").order_by("-started_at")[:limit]
    return [
        {
            "id": event.pk,
            "rule": event.rule.name if event.rule else "risk alert",
            "chatbot": event.chatbot.slug if event.chatbot else None,
            "status": event.status,
            "severity": event.severity,
            "metric": event.metric,
            "value": event.value,
            "threshold": event.threshold,
            "started_at": event.started_at,
            "message": event.message,
        }
        for event in events
    ]


def review_status_counts(*, chatbot_ids: Sequence[int] | None) -> dict[str, int]:
    """Flagged conversations per review status: one grouped query on the `conv_review_queue` index."""
    flagged = chatbot_scoped(Conversation.objects.filter(is_flagged=True), chatbot_ids)
    counts = dict(flagged.order_by().values_list("review_status").annotate(n=Count("id")))
    return {status: counts.get(status, 0) for status in ReviewStatus.values}


def stats_overview(*, chatbot_ids: Sequence[int] | None, hours: int, now: datetime | None = None) -> dict[str, Any]:
    """Everything on the dashboard for the last `hours`, for `chatbot_ids` (None: every chatbot).

    The turn figures (the expensive part on big windows) are cached for
    REVIEW_STATS_CACHE_SECONDS; review counts, clusters and alerts are always read fresh, so a
    review action shows at once.
    """
    seconds = settings.REVIEW_STATS_CACHE_SECONDS
    if seconds <= 0 or now is not None:
        figures = turn_figures(chatbot_ids=chatbot_ids, hours=hours, now=now)
    else:
        scope = "all" if chatbot_ids is None else ",".join(map(str, sorted(chatbot_ids)))
        key = f"review:overview:v2:{hours}:{scope}"
        figures = cache.get(key)
        if figures is None:
            figures = turn_figures(chatbot_ids=chatbot_ids, hours=hours)
            cache.set(key, figures, seconds)
    return {
        **figures,
        "top_clusters": top_failure_clusters(chatbot_ids=chatbot_ids),
        "open_alerts": open_alert_events(chatbot_ids=chatbot_ids),
        "review_status_counts": review_status_counts(chatbot_ids=chatbot_ids),
    }


def turn_figures(*, chatbot_ids: Sequence[int] | None, hours: int, now: datetime | None = None) -> dict[str, Any]:
    """The window's turn and conversation figures.

    1. The per-hour figures and latency histogram of the window (summed hours from the rollup,
       the rest grouped from the turns), added up into totals, days and hours.
    2. Latency p50/p95 from the histogram.
    3. One query for the conversations active in the window.
    """
    window = Window.last(hours, now=now)
    by_hour, latency_buckets = window_turn_figures(chatbot_ids=chatbot_ids, since=window.since, until=window.until)

    totals: dict[str, Any] = dict.fromkeys(FIGURES, 0)
    days: dict[date, dict[str, Any]] = {}
    for bucket, row in by_hour.items():
        day = days.setdefault(timezone.localtime(bucket).date(), {"turns": 0, "cost": 0, "judged": 0, "judge_sum": 0.0})
        for key in FIGURES:
            totals[key] += row[key] or 0
        for key in day:
            day[key] += row[key] or 0

    latency = latency_histogram.quantiles(latency_buckets, (0.5, 0.95))
    conversations = chatbot_scoped(Conversation.objects.filter(last_activity_at__gte=window.since), chatbot_ids).aggregate(
        total=Count("id"), flagged=Count("id", filter=Q(is_flagged=True))
    )

    first_day = timezone.localtime(window.since).date()
    last_day = timezone.localtime(window.until).date()
    day_list = [first_day + timedelta(days=i) for i in range((last_day - first_day).days + 1)]
    empty_day = {"turns": 0, "cost": 0, "judged": 0, "judge_sum": 0.0}
    empty_hour = {"turns": 0, "errors": 0, "flagged": 0, "judged": 0, "judge_sum": 0.0}

    turns = totals["turns"]
    return {
        "window": {"hours": hours, "since": window.since, "until": window.until},
        "totals": {
            "conversations": conversations["total"],
            "flagged_conversations": conversations["flagged"],
            "turns": turns,
            "tokens": totals["tokens"],
            "cost_usd": _money(totals["cost"]),
            "thumbs_up": totals["votes_up"],
            "thumbs_down": totals["votes_down"],
            "rated_turns": totals["rated"],
            "errors": totals["errors"],
            "fallbacks": totals["fallbacks"],
            "flagged_turns": totals["flagged"],
            "judged_turns": totals["judged"],
        },
        "rates": {
            "error_rate": _rate(totals["errors"], turns),
            "fallback_rate": _rate(totals["fallbacks"], turns),
            "thumbs_down_rate": _rate(totals["rated_down"], totals["rated"]),
            "flagged_rate": _rate(totals["flagged"], turns),
            "hallucination_rate": _rate(totals["hallucinations"], totals["judged"]),
        },
        "latency_ms": {
            "p50": latency[0.5],
            "p95": latency[0.95],
            "average": round(totals["latency_sum"] / totals["timed"], 3) if totals["timed"] else None,
        },
        "judge": {
            "average": round(totals["judge_sum"] / totals["judged"], 4) if totals["judged"] else None,
            "judged_turns": totals["judged"],
        },
        "risk_distribution": {level: totals[f"risk_{level}"] for level in RiskLevel.values},
        "by_day": [
            {
                "date": day,
                "turns": row["turns"],
                "cost_usd": _money(row["cost"]),
                "judge_average": round(row["judge_sum"] / row["judged"], 4) if row["judged"] else None,
            }
            for day in day_list
            for row in [days.get(day, empty_day)]
        ],
        "by_hour": [
            {
                "hour": hour,
                "turns": row["turns"],
                "errors": row["errors"],
                "flagged": row["flagged"],
                "judge_average": round(row["judge_sum"] / row["judged"], 4) if row["judged"] else None,
            }
            for hour in _hour_buckets(window)
            for row in [by_hour.get(hour, empty_hour)]
        ],
    }


def stats_llm_calls(
    *,
    chatbot_ids: Sequence[int] | None,
    hours: int,
    model: str | None = None,
    function_name: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """LLM calls in the window grouped by (model, function name): calls, tokens, cost, latency, errors."""
    window = Window.last(hours, now=now)
    calls = chatbot_scoped(LLMCall.objects.filter(timestamp__gte=window.since, timestamp__lte=window.until), chatbot_ids)
    if model:
        calls = calls.filter(model=model)
    if function_name:
        calls = calls.filter(function_name=function_name)

    aggregates: dict[str, Any] = {
        "calls": Count("id"),
        "input_tokens": Sum("input_tokens"),
        "output_tokens": Sum("output_tokens"),
        "cost": Sum("cost_usd"),
        "errors": Count("id", filter=Q(success=False)),
        "timed": Count("duration_ms"),
        "duration_avg": Avg("duration_ms"),
    }
    postgres = connection.vendor == "postgresql"
    if postgres:
        aggregates |= {
            "p50": PercentileCont("duration_ms", percentile=0.5, filter=Q(duration_ms__isnull=False)),
            "p95": PercentileCont("duration_ms", percentile=0.95, filter=Q(duration_ms__isnull=False)),
            "p99": PercentileCont("duration_ms", percentile=0.99, filter=Q(duration_ms__isnull=False)),
        }

    def shape(row: dict[str, Any], group: QuerySet) -> dict[str, Any]:
        if postgres:
            latency = {p: (round(row[f"p{int(p * 100)}"], 3) if row[f"p{int(p * 100)}"] is not None else None)
                       for p in (0.5, 0.95, 0.99)}
        else:
            portable = percentile_cont_portable(group, "duration_ms", (0.5, 0.95, 0.99), count=row["timed"])
            latency = {p: (round(v, 3) if v is not None else None) for p, v in portable.items()}
        return {
            "calls": row["calls"],
            "input_tokens": row["input_tokens"] or 0,
            "output_tokens": row["output_tokens"] or 0,
            "total_tokens": (row["input_tokens"] or 0) + (row["output_tokens"] or 0),
            "cost_usd": _money(row["cost"]),
            "errors": row["errors"],
            "error_rate": _rate(row["errors"], row["calls"]),
            "duration_ms": {
                "average": round(row["duration_avg"], 3) if row["duration_avg"] is not None else None,
                "p50": latency[0.5],
                "p95": latency[0.95],
                "p99": latency[0.99],
            },
        }

    groups = (
        calls.order_by()
        .values("model", "function_name")
        .annotate(**aggregates)
        .order_by(F("cost").desc(nulls_last=True), "model", "function_name")
    )
    total = calls.aggregate(**aggregates)
    return {
        "window": {"hours": hours, "since": window.since, "until": window.until},
        "filters": {"model": model or None, "function_name": function_name or None},
        "totals": shape(total, calls),
        "groups": [
            {"model": row["model"], "function_name": row["function_name"],
             **shape(row, calls.filter(model=row["model"], function_name=row["function_name"]))}
            for row in groups
        ],
    }


def queue_neighbours(*, conversation: Conversation, chatbot_ids: Sequence[int] | None) -> dict[str, int | None]:
    """The previous and next open flagged conversation around `conversation`, newest first.

    Two index range reads on `conv_review_queue` order (last activity, then id as tie-breaker).
    """
    queue = chatbot_scoped(
        Conversation.objects.filter(is_flagged=True, review_status__in=OPEN_REVIEW_STATUSES), chatbot_ids
    ).exclude(pk=conversation.pk)
    at, pk = conversation.last_activity_at, conversation.pk
    older = Q(last_activity_at__lt=at) | Q(last_activity_at=at, id__lt=pk)
    newer = Q(last_activity_at__gt=at) | Q(last_activity_at=at, id__gt=pk)
    next_id = queue.filter(older).order_by("-last_activity_at", "-id").values_list("id", flat=True).first()
    previous_id = queue.filter(newer).order_by("last_activity_at", "id").values_list("id", flat=True).first()
    return {"previous": previous_id, "next": next_id}
