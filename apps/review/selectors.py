"""Reads behind the dashboard, the review queue and the staff stats API.

The admin dashboard and `GET /api/v1/stats/*` call the same functions, so their numbers always
agree. Turn figures come from the hourly rollup where it is current and from the turns
elsewhere (`apps.review.rollup`); the rest is one grouped query over an indexed time range
(`turn_chatbot_time`, `llmcall_*`, the flagged partial indexes on conversations).

Percentiles follow PostgreSQL's `percentile_cont` (linear interpolation between the two nearest
ranks). Turn latency percentiles are read from a log-bucket histogram, within 1 % of the exact
figure (`apps.core.latency_histogram`), so 30-day windows need no sort of a million values; LLM-call
duration percentiles are exact (on SQLite computed from the two middle rows).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import (
    Count,
    Exists,
    F,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Sum,
)
from django.db.models.functions import TruncDay, TruncHour
from django.utils import timezone

from apps.alerts.choices import OPEN_STATUSES
from apps.alerts.models import AlertEvent
from apps.chatbots.access import chatbot_scoped
from apps.clustering.choices import RunStatus
from apps.clustering.models import Cluster, ClusterRun
from apps.conversations.choices import ReviewStatus, RiskLevel
from apps.conversations.metrics_catalogue import (
    BREAKDOWN_METRICS,
    CATALOGUE,
    CONVERSATION_JUDGE_FIGURES,
    FIGURES,
    OUTCOME_METRICS,
    TREND_METRICS,
    change,
    figures_for,
    metric_value,
    score_figure_aggregates,
    window_q,
)
from apps.conversations.models import Conversation
from apps.evaluations.selectors import conversation_judge_figures

from .rollup import (
    DIMENSIONS,
    LLM_CALL_DURATION,
    LLM_CALL_FIGURES,
    window_chatbot_figures,
    window_dimension_figures,
    window_hourly_group_figures,
    window_llm_call_figures,
    window_turn_figures,
)

# The ranges offered by the dashboard; the API accepts any whole number of hours up to MAX_HOURS.
DASHBOARD_RANGES: dict[str, int] = {"24h": 24, "7d": 24 * 7, "30d": 24 * 30, "90d": 24 * 90}
TREND_HOURLY_UP_TO = 48  # hours: trends per hour up to two days, per day beyond
MAX_HOURS = 24 * 366
OPEN_REVIEW_STATUSES = (ReviewStatus.NEW, ReviewStatus.IN_REVIEW)


@dataclass(frozen=True)
class Window:
    """The turns with since < timestamp <= until (the catalogue's `window_q`)."""

    since: datetime
    until: datetime
    hours: int

    @classmethod
    def last(cls, hours: int, *, now: datetime | None = None) -> Window:
        until = now or timezone.now()
        return cls(since=until - timedelta(hours=hours), until=until, hours=hours)

    @classmethod
    def between(cls, since: datetime, until: datetime) -> Window:
        return cls(since=since, until=until, hours=max(1, math.ceil((until - since) / timedelta(hours=1))))

    def previous(self) -> Window:
        """The period of the same length just before this one."""
        return Window(since=self.since - (self.until - self.since), until=self.since, hours=self.hours)


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
    """Flagged conversations per review status: one grouped query on the `conv_review_queue` index.

    COUNT(*), not COUNT(id): the id is not in that index, and counting it makes PostgreSQL read
    the table (590 ms against 94 ms over 200,000 flagged conversations, bench/admin.py at 10 M turns)."""
    flagged = chatbot_scoped(Conversation.objects.filter(is_flagged=True), chatbot_ids)
    counts = dict(flagged.order_by().values_list("review_status").annotate(n=Count("*")))
    return {status: counts.get(status, 0) for status in ReviewStatus.values}


def stats_overview(
    *, chatbot_ids: Sequence[int] | None, hours: int | None = None, now: datetime | None = None,
    window: Window | None = None, breakdown: str | None = None,
) -> dict[str, Any]:
    """Everything on the dashboard for the last `hours` (or `window`), for `chatbot_ids` (None:
    every chatbot); with `breakdown` (a BREAKDOWNS key) its table too.

    The turn figures (the expensive part on big windows) are cached for
    REVIEW_STATS_CACHE_SECONDS; review counts, clusters and alerts are always read fresh, so a
    review action shows at once.
    """
    window = window or Window.last(hours or 24, now=now)
    seconds = settings.REVIEW_STATS_CACHE_SECONDS
    if seconds <= 0 or now is not None:
        figures = turn_figures(chatbot_ids=chatbot_ids, window=window)
    else:
        scope = "all" if chatbot_ids is None else ",".join(map(str, sorted(chatbot_ids)))
        span = str(window.hours) if hours else f"{window.since.isoformat()}/{window.until.isoformat()}"
        key = f"review:overview:v4:{span}:{scope}"
        figures = cache.get(key)
        if figures is None:
            figures = turn_figures(chatbot_ids=chatbot_ids, window=window)
            cache.set(key, figures, seconds)
    result = {
        **figures,
        "judge_human_agreement": judge_human_agreement(chatbot_ids=chatbot_ids),
        "top_clusters": top_failure_clusters(chatbot_ids=chatbot_ids),
        "open_alerts": open_alert_events(chatbot_ids=chatbot_ids),
        "review_status_counts": review_status_counts(chatbot_ids=chatbot_ids),
    }
    if breakdown:
        result["breakdown"] = stats_breakdown(chatbot_ids=chatbot_ids, window=window, by=breakdown)
    return result


# Turns-per-conversation buckets of the engagement panel: (label, first, last or None).
TURN_COUNT_BUCKETS = (("1", 1, 1), ("2", 2, 2), ("3", 3, 3), ("4–5", 4, 5), ("6–10", 6, 10), ("11+", 11, None))


def engagement(*, chatbot_ids: Sequence[int] | None, window: Window) -> dict[str, Any]:
    """How end users engage in the window's conversations (latest activity in (since, until]).

    Two queries over the window's conversations, neither reading a turn:

    1. Turns per conversation and drop-off in one aggregate (`conv_chatbot_activity_flagged`). A
       conversation ends on a turn when its latest activity is its latest turn (not a later LLM
       call); it ends right after a fallback, an error or a 👎 when that last turn had one —
       kept on the summary by apps/conversations/services.py (`last_turn_*`).
    2. Returning end users: of the distinct end users of those conversations, those with a
       conversation of the same chatbot started at or before the window's start. The EXISTS
       sits in WHERE (not in an aggregate's FILTER, which PostgreSQL probes row by row), so the
       planner makes it a semi-join, answered from `conv_chatbot_end_user_start` alone.

    `engagement_live` computes the same figures from the turns; tests hold the two equal.
    """
    conversations = chatbot_scoped(
        Conversation.objects.filter(window_q(window.since, window.until, "last_activity_at")), chatbot_ids
    ).order_by()
    aggregates: dict[str, Any] = {}
    for label, first, last in TURN_COUNT_BUCKETS:
        condition = Q(turn_count__gte=first) & (Q(turn_count__lte=last) if last is not None else Q())
        aggregates[label] = Count("id", filter=condition)
    ended = Q(last_turn_at=F("last_activity_at"))
    aggregates.update(
        ended=Count("id", filter=ended),
        after_fallback=Count("id", filter=ended & Q(last_turn_fallback=True)),
        after_error=Count("id", filter=ended & Q(last_turn_error=True)),
        after_thumbs_down=Count("id", filter=ended & Q(last_turn_thumbs_down=True)),
    )
    counted = conversations.aggregate(total=Count("id"), turns=Sum("turn_count"), **aggregates)

    known = conversations.exclude(end_user_hash="")
    earlier = Conversation.objects.filter(chatbot_id=OuterRef("chatbot_id"), end_user_hash=OuterRef("end_user_hash"),
                                          started_at__lte=window.since)
    users = known.values("end_user_hash").distinct().count()
    returning = known.filter(Exists(earlier)).values("end_user_hash").distinct().count() if users else 0
    ends = {key: counted[key] for key in ("after_fallback", "after_error", "after_thumbs_down")}
    return _engagement_result(counted, users=users, returning=returning, ended=counted["ended"], ends=ends)


def engagement_live(*, chatbot_ids: Sequence[int] | None, window: Window) -> dict[str, Any]:
    """`engagement` computed the straightforward way, from the turns and one probe per
    conversation: the reference the summary-backed figures are tested against (slow on long
    windows; not used by any page)."""
    from apps.conversations.models import Turn

    conversations = chatbot_scoped(
        Conversation.objects.filter(window_q(window.since, window.until, "last_activity_at")), chatbot_ids
    ).order_by()
    buckets: dict[str, Any] = {}
    for label, first, last in TURN_COUNT_BUCKETS:
        condition = Q(turn_count__gte=first) & (Q(turn_count__lte=last) if last is not None else Q())
        buckets[label] = Count("id", filter=condition)
    counted = conversations.aggregate(total=Count("id"), turns=Sum("turn_count"), **buckets)
    earlier = Conversation.objects.filter(chatbot_id=OuterRef("chatbot_id"), end_user_hash=OuterRef("end_user_hash"),
                                          started_at__lte=window.since)
    users = conversations.exclude(end_user_hash="").aggregate(
        users=Count("end_user_hash", distinct=True),
        returning=Count("end_user_hash", distinct=True, filter=Exists(earlier)),
    )
    last_turns = chatbot_scoped(Turn.objects.filter(window_q(window.since, window.until)), chatbot_ids).filter(
        timestamp=F("conversation__last_activity_at")).order_by()
    ends = last_turns.aggregate(
        ended=Count("conversation_id", distinct=True),
        after_fallback=Count("conversation_id", distinct=True, filter=Q(fallback_used=True)),
        after_error=Count("conversation_id", distinct=True, filter=Q(has_error=True)),
        after_thumbs_down=Count("conversation_id", distinct=True, filter=Q(thumbs_down__gt=0)),
    )
    ended = ends.pop("ended")
    return _engagement_result(counted, users=users["users"], returning=users["returning"], ended=ended, ends=ends)


def _engagement_result(counted: dict[str, Any], *, users: int, returning: int, ended: int,
                       ends: dict[str, int]) -> dict[str, Any]:
    total = counted["total"]
    turns = counted["turns"] or 0
    return {
        "conversations": total,
        "turns_per_conversation": round(turns / total, 2) if total else None,
        "turn_count_distribution": [{"turns": label, "conversations": counted[label]} for label, _, _ in TURN_COUNT_BUCKETS],
        "end_users": users,
        "returning_end_users": returning,
        "returning_share": round(100.0 * returning / users, 1) if users else None,
        "drop_off": {
            "conversations": ended,
            **{key: {"conversations": n, "share": round(100.0 * n / ended, 1) if ended else None}
               for key, n in ends.items()},
        },
    }


def _periods(window: Window, interval: str) -> list[datetime]:
    """The local hours or days (as aware datetimes at their start) the window touches."""
    if interval == "hour":
        return _hour_buckets(window)
    tz = timezone.get_current_timezone()
    first = timezone.localtime(window.since, tz).date()
    last = timezone.localtime(window.until, tz).date()
    return [timezone.make_aware(datetime.combine(first + timedelta(days=i), datetime.min.time()), tz)
            for i in range((last - first).days + 1)]


def _period_of(moment: datetime, interval: str) -> datetime:
    local = timezone.localtime(moment)
    if interval == "hour":
        return local.replace(minute=0, second=0, microsecond=0)
    return timezone.make_aware(datetime.combine(local.date(), datetime.min.time()), local.tzinfo)


def _conversation_counts(chatbot_ids: Sequence[int] | None, since: datetime, until: datetime,
                         interval: str | None = None) -> Any:
    """Conversations whose latest activity is in (since, until]: totals, or per local period.

    Counts only columns of the `conv_activity_flagged` / `conv_chatbot_activity_flagged` indexes
    (last_activity_at, is_flagged), so PostgreSQL answers from the index without the table."""
    conversations = chatbot_scoped(Conversation.objects.filter(window_q(since, until, "last_activity_at")), chatbot_ids)
    aggregates = {"total": Count("*"), "flagged": Count("is_flagged", filter=Q(is_flagged=True))}
    if interval is None:
        return conversations.aggregate(**aggregates)
    trunc = TruncHour("last_activity_at") if interval == "hour" else TruncDay("last_activity_at")
    rows = conversations.order_by().annotate(period=trunc).values("period").annotate(**aggregates)
    return {row["period"]: row for row in rows}


def _score_figures(chatbot_ids: Sequence[int] | None, since: datetime, until: datetime,
                   interval: str | None = None) -> Any:
    """The outcome figures (the catalogue's `score_figure_aggregates`) of the scores recorded in
    (since, until]: totals, or per local period. One query over the (chatbot, name, timestamp) index."""
    from apps.scores.models import Score

    scores = chatbot_scoped(Score.objects.filter(window_q(since, until)), chatbot_ids).order_by()
    aggregates = score_figure_aggregates()
    if interval is None:
        return scores.aggregate(**aggregates)
    trunc = TruncHour("timestamp") if interval == "hour" else TruncDay("timestamp")
    rows = scores.annotate(period=trunc).values("period").annotate(**aggregates)
    return {row.pop("period"): row for row in rows}


def _add(into: dict[str, Any], row: dict[str, Any]) -> None:
    for key in FIGURES:
        into[key] += row.get(key) or 0


def turn_figures(
    *, chatbot_ids: Sequence[int] | None, hours: int | None = None, now: datetime | None = None,
    window: Window | None = None,
) -> dict[str, Any]:
    """The window's turn and conversation figures, every metric of the catalogue with its change
    against the previous period of the same length, and each trend metric per hour (windows up to
    TREND_HOURLY_UP_TO hours) or per day.

    1. The per-hour figures and latency histogram (per period) of the window, and the totals and
       histogram of the previous period (summed hours from the rollup, the rest from the turns).
    2. Days are summed from the hours; every metric comes from `metric_value` (the catalogue).
    3. Two queries for the conversations of the window (per period) and of the previous period.
    4. Three queries for the outcome figures (scores) of the window, per period and of the previous period.
    """
    window = window or Window.last(hours or 24, now=now)
    interval = "hour" if window.hours <= TREND_HOURLY_UP_TO else "day"
    by_hour, latency_buckets, latency_periods = window_turn_figures(
        chatbot_ids=chatbot_ids, since=window.since, until=window.until, latency_period=interval
    )
    previous = window.previous()
    previous_hours, previous_latency, _ = window_turn_figures(
        chatbot_ids=chatbot_ids, since=previous.since, until=previous.until
    )

    totals: dict[str, Any] = dict.fromkeys(FIGURES, 0)
    before: dict[str, Any] = dict.fromkeys(FIGURES, 0)
    periods = {period: dict.fromkeys(FIGURES, 0) for period in _periods(window, interval)}
    days: dict[date, dict[str, Any]] = {}
    for bucket, row in by_hour.items():
        _add(totals, row)
        _add(periods.setdefault(_period_of(bucket, interval), dict.fromkeys(FIGURES, 0)), row)
        _add(days.setdefault(timezone.localtime(bucket).date(), dict.fromkeys(FIGURES, 0)), row)
    for row in previous_hours.values():
        _add(before, row)

    conversations = _conversation_counts(chatbot_ids, window.since, window.until, interval)
    conversations_before = _conversation_counts(chatbot_ids, previous.since, previous.until)
    totals["conversations"] = sum(row["total"] for row in conversations.values())
    flagged_conversations = sum(row["flagged"] for row in conversations.values())
    before["conversations"] = conversations_before["total"]
    for period, row in conversations.items():
        into = periods.setdefault(_period_of(period, interval), dict.fromkeys(FIGURES, 0))
        into["conversations"] = into.get("conversations", 0) + row["total"]
    # The conversation judge's figures come from its evaluations (completed in the window).
    judged = conversation_judge_figures(chatbot_ids=chatbot_ids, since=window.since, until=window.until,
                                        interval=interval)
    judged_before = conversation_judge_figures(chatbot_ids=chatbot_ids, since=previous.since, until=previous.until)
    for key in CONVERSATION_JUDGE_FIGURES:
        totals[key] = sum(row[key] or 0 for row in judged.values())
        before[key] = judged_before[key] or 0
    for period, row in judged.items():
        into = periods.setdefault(_period_of(period, interval), dict.fromkeys(FIGURES, 0))
        for key in CONVERSATION_JUDGE_FIGURES:
            into[key] = into.get(key, 0) + (row[key] or 0)

    totals.update(_score_figures(chatbot_ids, window.since, window.until))
    before.update(_score_figures(chatbot_ids, previous.since, previous.until))
    for period, row in _score_figures(chatbot_ids, window.since, window.until, interval).items():
        periods.setdefault(_period_of(period, interval), dict.fromkeys(FIGURES, 0)).update(row)

    metrics: dict[str, dict[str, Any]] = {}
    for name, definition in CATALOGUE.items():
        if not definition.trend:
            continue
        value, sample = metric_value(name, totals, latency_buckets)
        previous_value, _ = metric_value(name, before, previous_latency)
        metrics[name] = {"value": value, "sample_size": sample,
                         **change(value, previous_value, definition.higher_is_better)}
    ordered = sorted(periods)
    trend = {
        "interval": interval,
        "periods": ordered,
        "series": {
            name: [metric_value(name, periods[p], latency_periods.get(p, {}))[0] for p in ordered]
            for name in TREND_METRICS
        },
        "counts": {key: [periods[p][key] for p in ordered] for key in ("turns", "errors", "flagged")},
    }

    def value(name: str) -> Any:
        return metrics[name]["value"]

    first_day = timezone.localtime(window.since).date()
    last_day = timezone.localtime(window.until).date()
    day_list = [first_day + timedelta(days=i) for i in range((last_day - first_day).days + 1)]
    empty = dict.fromkeys(FIGURES, 0)
    turns = totals["turns"]
    return {
        "window": {"hours": window.hours, "since": window.since, "until": window.until,
                   "previous_since": previous.since, "interval": interval},
        "metrics": metrics,
        "trend": trend,
        "totals": {
            "conversations": totals["conversations"],
            "flagged_conversations": flagged_conversations,
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
            "hallucination_checked_turns": totals["hallucination_checked"],
        },
        "rates": {  # percentages, 0–100, as in the catalogue
            "error_rate": value("error_rate"),
            "fallback_rate": value("fallback_rate"),
            "thumbs_down_rate": value("thumbs_down_rate"),
            "flagged_rate": value("flagged_share"),
            "hallucination_rate": value("hallucination_rate"),
        },
        "latency_ms": {
            "p50": value("latency_p50"),
            "p95": value("latency_p95"),
            "average": round(totals["latency_sum"] / totals["timed"], 3) if totals["timed"] else None,
        },
        "judge": {"average": value("judge_average"), "judged_turns": totals["judged"]},
        "risk_distribution": {level: totals[f"risk_{level}"] for level in RiskLevel.values},
        "by_day": [
            {
                "date": day,
                "turns": row["turns"],
                "cost_usd": _money(row["cost"]),
                "judge_average": metric_value("judge_average", row)[0],
            }
            for day in day_list
            for row in [days.get(day, empty)]
        ],
        "by_hour": [
            {
                "hour": hour,
                "turns": row["turns"],
                "errors": row["errors"],
                "flagged": row["flagged"],
                "judge_average": metric_value("judge_average", row)[0],
            }
            for hour in _hour_buckets(window)
            for row in [by_hour.get(hour, empty)]
        ],
    }


# Breakdowns: what the turns are grouped by (chatbot: HourlyTurnStats; the others the
# per-dimension rollup, apps.review.rollup.DIMENSIONS).
BREAKDOWNS: tuple[str, ...] = ("chatbot", *DIMENSIONS)
BREAKDOWN_LIMIT = 20


def stats_breakdown(*, chatbot_ids: Sequence[int] | None, window: Window, by: str,
                    limit: int = BREAKDOWN_LIMIT) -> dict[str, Any]:
    """The window's turns grouped by chatbot, model, intent, channel or release: the catalogue's
    BREAKDOWN_METRICS per group, the `limit` biggest groups first.

    Both read the hourly rollups where current (summed hours of HourlyTurnStats or
    HourlyDimensionStats) and group the rest of the window's turns live, like the trends.
    """
    if by not in BREAKDOWNS:
        raise ValueError(f"unknown breakdown {by!r}")
    wanted = tuple(dict.fromkeys(["turns", *(name for metric in BREAKDOWN_METRICS for name in figures_for(metric))]))
    if by == "chatbot":
        from apps.chatbots.models import Chatbot

        grouped = window_chatbot_figures(chatbot_ids=chatbot_ids, since=window.since, until=window.until)
        names = dict(Chatbot.objects.filter(pk__in=list(grouped)).values_list("pk", "name"))
        groups = [(chatbot_id, names.get(chatbot_id, str(chatbot_id)), row) for chatbot_id, row in grouped.items()]
    else:
        grouped = window_dimension_figures(chatbot_ids=chatbot_ids, since=window.since, until=window.until,
                                           dimension=by, figures=wanted)
        groups = [(value, value or "(none)", row) for value, row in grouped.items()]
    groups.sort(key=lambda item: (-item[2]["turns"], item[1]))
    groups = groups[:limit]
    outcomes = _score_figures_by(chatbot_ids, window, OUTCOME_BREAKDOWNS[by]) if by in OUTCOME_BREAKDOWNS else {}
    return {
        "by": by,
        "metrics": [*BREAKDOWN_METRICS, *OUTCOME_METRICS],
        "limit": limit,
        "groups": len(groups),
        "rows": [
            {"key": key, "label": label,
             **{metric: metric_value(metric, row)[0] for metric in BREAKDOWN_METRICS},
             # Outcomes are per conversation: by model or intent (per turn) they are not defined.
             **{metric: metric_value(metric, outcomes.get(key, {}))[0] for metric in OUTCOME_METRICS}}
            for key, label, row in groups
        ],
    }


# Breakdowns the outcomes (conversation-level scores) can be grouped by, and the Score field.
OUTCOME_BREAKDOWNS = {"chatbot": "chatbot_id", "channel": "conversation__channel", "release": "conversation__release"}


def _score_figures_by(chatbot_ids: Sequence[int] | None, window: Window, field: str) -> dict[Any, dict[str, Any]]:
    """The outcome figures of the scores recorded in the window, per value of `field`."""
    from apps.scores.models import Score

    scores = chatbot_scoped(Score.objects.filter(window_q(window.since, window.until)), chatbot_ids).order_by()
    return {row.pop(field): row for row in scores.values(field).annotate(**score_figure_aggregates())}


TIMESERIES_MAX_POINTS = 24 * 31  # hourly up to a month; daily beyond


class TimeseriesUnavailable(ValueError):
    """A metric and grouping the figures do not support (percentiles per group, outcomes per turn
    label): the API answers 400 with the reason."""


def stats_timeseries(*, chatbot_ids: Sequence[int] | None, window: Window, metric: str, interval: str | None = None,
                     group_by: str | None = None, limit: int = BREAKDOWN_LIMIT) -> dict[str, Any]:
    """One catalogue metric per local hour or day of the window, for all the turns or per group
    (chatbot, model, intent, channel, release; the `limit` biggest groups), computed with
    `metric_value` from the same figures as the dashboard.

    1. Turn metrics: per-(group, hour) figures from the rollups where current, the rest live.
    2. Outcomes: the window's scores grouped by period (and chatbot, channel or release).
    3. Latency percentiles come from the window's histogram per period; not per group.
    """
    definition = CATALOGUE.get(metric)
    if definition is None or not definition.trend:
        raise TimeseriesUnavailable(f"{metric!r} is not a dashboard metric (see /api/v1/stats/metrics).")
    interval = interval or ("hour" if window.hours <= TREND_HOURLY_UP_TO else "day")
    if interval == "hour" and window.hours > TIMESERIES_MAX_POINTS:
        raise TimeseriesUnavailable(f"Hourly series cover at most {TIMESERIES_MAX_POINTS} hours; use interval=day.")
    periods = _periods(window, interval)
    groups: dict[Any, dict[datetime, dict[str, Any]]] = {}
    latency: dict[Any, dict[datetime, Any]] = {}
    if definition.source == "scores":
        if group_by is not None and group_by not in OUTCOME_BREAKDOWNS:
            raise TimeseriesUnavailable("Outcomes are per conversation: group them by chatbot, channel or release.")
        from apps.scores.models import Score

        scores = chatbot_scoped(Score.objects.filter(window_q(window.since, window.until)), chatbot_ids).order_by()
        field = OUTCOME_BREAKDOWNS.get(group_by or "")
        trunc = TruncHour("timestamp") if interval == "hour" else TruncDay("timestamp")
        names = ("period", *([field] if field else []))
        for row in scores.annotate(period=trunc).values(*names).annotate(**score_figure_aggregates()):
            key = row.pop(field) if field else None
            groups.setdefault(key, {})[_period_of(row.pop("period"), interval)] = row
    elif definition.needs_conversations:
        if group_by is not None:
            raise TimeseriesUnavailable("Conversations are not grouped here; group a turn metric instead.")
        for period, row in _conversation_counts(chatbot_ids, window.since, window.until, interval).items():
            groups.setdefault(None, {})[_period_of(period, interval)] = {"conversations": row["total"]}
    elif definition.kind == "percentile":
        if group_by is not None:
            raise TimeseriesUnavailable("Latency percentiles are not kept per group; ask without group_by.")
        by_hour, _, latency_periods = window_turn_figures(chatbot_ids=chatbot_ids, since=window.since,
                                                          until=window.until, latency_period=interval)
        latency[None] = {_period_of(period, interval): counts for period, counts in latency_periods.items()}
        groups[None] = {}
    else:
        wanted = tuple(dict.fromkeys(["turns", *figures_for(metric)]))
        if group_by is None:
            by_hour, _, _ = window_turn_figures(chatbot_ids=chatbot_ids, since=window.since, until=window.until)
            hourly = {(None, hour): row for hour, row in by_hour.items()}
        else:
            hourly = window_hourly_group_figures(chatbot_ids=chatbot_ids, since=window.since, until=window.until,
                                                 dimension=group_by, figures=wanted)
        for (key, hour), row in hourly.items():
            into = groups.setdefault(key, {}).setdefault(_period_of(hour, interval), dict.fromkeys(wanted, 0))
            for name in wanted:
                into[name] += row.get(name) or 0
    if group_by is None:
        groups.setdefault(None, {})

    def size(key: Any) -> float:
        return sum(row.get("turns") or row.get(definition.whole) or 0 for row in groups[key].values())

    keys = sorted(groups, key=lambda key: (-size(key), str(key)))[:limit]
    labels: dict[Any, str] = {}
    if group_by == "chatbot":
        from apps.chatbots.models import Chatbot

        labels = {pk: name for pk, name in Chatbot.objects.filter(pk__in=keys).values_list("pk", "name")}
    return {
        "metric": metric, "unit": definition.unit, "interval": interval, "group_by": group_by,
        "window": {"since": window.since, "until": window.until, "hours": window.hours},
        "periods": periods,
        "series": [
            {"key": key, "label": "all" if group_by is None else labels.get(key, key or "(none)"),
             "values": [metric_value(metric, groups[key].get(period, {}), latency.get(key, {}).get(period, {}))[0]
                        for period in periods]}
            for key in keys
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
    """LLM calls in the window grouped by (model, function name): calls, tokens, cost, latency, errors.

    Sums are exact; the duration percentiles come from a log-bucket histogram within
    LLM_CALL_ACCURACY of percentile_cont (apps.review.rollup), so 30 days read the hourly
    LLM-call rollup instead of sorting every call.
    """
    window = Window.last(hours, now=now)
    filters = {name: value for name, value in (("model", model), ("function_name", function_name)) if value}
    figures, durations = window_llm_call_figures(chatbot_ids=chatbot_ids, since=window.since, until=window.until,
                                                 filters=filters)

    def shape(row: dict[str, Any], histogram: Counter[int]) -> dict[str, Any]:
        latency = LLM_CALL_DURATION.quantiles(histogram, (0.5, 0.95, 0.99))
        return {
            "calls": row["calls"],
            "input_tokens": row["input_tokens"],
            "output_tokens": row["output_tokens"],
            "total_tokens": row["input_tokens"] + row["output_tokens"],
            "cost_usd": _money(row["cost"]),
            "errors": row["errors"],
            "error_rate": _rate(row["errors"], row["calls"]),
            "duration_ms": {
                "average": round(row["duration_sum"] / row["timed"], 3) if row["timed"] else None,
                "p50": latency[0.5],
                "p95": latency[0.95],
                "p99": latency[0.99],
            },
        }

    total = dict.fromkeys(LLM_CALL_FIGURES, 0)
    total_durations: Counter[int] = Counter()
    for key, row in figures.items():
        for name in LLM_CALL_FIGURES:
            total[name] += row[name]
        total_durations.update(durations.get(key, Counter()))
    ordered = sorted(figures.items(), key=lambda item: (-item[1]["cost"], item[0]))
    return {
        "window": {"hours": hours, "since": window.since, "until": window.until},
        "filters": {"model": model or None, "function_name": function_name or None},
        "totals": shape(total, total_durations),
        "groups": [
            {"model": model_name, "function_name": name, **shape(row, durations.get((model_name, name), Counter()))}
            for (model_name, name), row in ordered
        ],
    }


# Fields of Conversation that are never NULL: a queue ordered only by these is walked with
# keyset range reads; any other order (judge score, assignee: nullable) by one id scan.
_NOT_NULL_ORDER_FIELDS = {"id", "pk", "last_activity_at", "max_risk_score", "external_id", "turn_count",
                          "review_status", "started_at", "chatbot", "chatbot_id", "thumbs_down", "thumbs_up"}


def _ordering_terms(queryset: QuerySet) -> list[tuple[str, bool]] | None:
    """The queryset's ORDER BY as (field, descending) pairs, or None if not plain fields."""
    terms = []
    for term in queryset.query.order_by:
        if not isinstance(term, str):
            return None
        descending = term.startswith("-")
        name = term.lstrip("-")
        if name not in _NOT_NULL_ORDER_FIELDS:
            return None
        name = "id" if name == "pk" else name
        if all(name != seen for seen, _ in terms):  # the admin may repeat its tie-breakers
            terms.append((name, descending))
    if not any(name == "id" for name, _ in terms):
        terms.append(("id", False))
    return terms


def _after(terms: list[tuple[str, bool]], values: dict[str, Any], *, backwards: bool) -> Q:
    """Rows after (or before) `values` in the order `terms`: (a > x) | (a = x & b > y) | …"""
    condition = Q(pk__in=[])
    for position, (name, descending) in enumerate(terms):
        later = descending != backwards
        step = Q(**{f"{name}__{'lt' if later else 'gt'}": values[name]})
        for previous, _ in terms[:position]:
            step &= Q(**{previous: values[previous]})
        condition |= step
    return condition


def queue_neighbours(*, queue: QuerySet, conversation: Conversation, scan_limit: int = 20000) -> dict[str, int | None]:
    """The previous and next conversation around `conversation` in `queue` as the reviewer sees
    it: the admin changelist's queryset, with its filters, search and order.

    1. An order on never-NULL fields (newest or riskiest first, the indexed ones) is two keyset
       reads: the first row after the current one and the first before it, in that order.
    2. Any other order reads the ids in order once (up to `scan_limit`) and looks around the
       current one; if it is no longer in the queue (just resolved), its neighbours by
       position are not known, so "next" is the first row.
    """
    terms = _ordering_terms(queue)
    if terms is not None:
        names = [name for name, _ in terms]
        values = {name: getattr(conversation, "chatbot_id" if name == "chatbot" else name) for name in names}
        reverse_order = [f"{'' if descending else '-'}{name}" for name, descending in terms]
        forward_order = [f"{'-' if descending else ''}{name}" for name, descending in terms]
        others = queue.exclude(pk=conversation.pk)
        next_id = others.filter(_after(terms, values, backwards=False)).order_by(*forward_order).values_list("id", flat=True).first()
        previous_id = others.filter(_after(terms, values, backwards=True)).order_by(*reverse_order).values_list("id", flat=True).first()
        return {"previous": previous_id, "next": next_id}
    ids = list(queue.values_list("id", flat=True)[:scan_limit])
    if conversation.pk not in ids:
        return {"previous": None, "next": ids[0] if ids else None}
    position = ids.index(conversation.pk)
    return {
        "previous": ids[position - 1] if position > 0 else None,
        "next": ids[position + 1] if position + 1 < len(ids) else None,
    }


@dataclass
class QueueRowReasons:
    """Why a flagged conversation is in the queue, from its worst turn."""

    turn_id: int | None = None
    turn_sequence: int | None = None
    user_message: str = ""
    bot_response: str = ""
    rules: list[str] | None = None
    judge_reasoning: str = ""
    thumbs_down_comment: str = ""


def queue_row_reasons(*, conversation_ids: Sequence[int]) -> dict[int, QueueRowReasons]:
    """For each conversation: its worst flagged turn (highest risk, then lowest judge score) with
    the rule names that fired, the judge's reasoning and an end user's 👎 comment.

    Three queries for a page of rows, whatever its size: the flagged turns, their latest finished
    judge evaluations, their thumbs-down comments.
    """
    from apps.evaluations.choices import EvaluationStatus, Evaluator
    from apps.evaluations.models import Evaluation
    from apps.feedback.models import Feedback

    if not conversation_ids:
        return {}
    from apps.conversations.models import Turn

    worst: dict[int, dict[str, Any]] = {}
    turns = (
        Turn.objects.filter(conversation_id__in=list(conversation_ids), is_flagged=True)
        .order_by()
        .values("id", "conversation_id", "sequence", "user_message", "bot_response", "risk_score", "risk_reasons",
                "judge_overall")
    )
    for turn in turns:
        key = (turn["risk_score"], -(turn["judge_overall"] if turn["judge_overall"] is not None else 11), -turn["id"])
        best = worst.get(turn["conversation_id"])
        if best is None or key > best["_key"]:
            worst[turn["conversation_id"]] = {**turn, "_key": key}
    turn_ids = [turn["id"] for turn in worst.values()]
    reasoning: dict[int, str] = {}
    for turn_id, text in (
        Evaluation.objects.filter(turn_id__in=turn_ids, status=EvaluationStatus.DONE)
        .exclude(evaluator=Evaluator.HUMAN).exclude(reasoning="")
        .order_by("turn_id", "completed_at", "id").values_list("turn_id", "reasoning")
    ):
        reasoning[turn_id] = text  # the last one wins: the latest grade
    comments: dict[int, str] = {}
    for conversation_id, comment in (
        Feedback.objects.filter(turn__conversation_id__in=list(conversation_ids), rating="down").exclude(comment="")
        .order_by("turn__conversation_id", "created_at", "id").values_list("turn__conversation_id", "comment")
    ):
        comments[conversation_id] = comment
    result: dict[int, QueueRowReasons] = {}
    for conversation_id in conversation_ids:
        turn = worst.get(conversation_id)
        row = QueueRowReasons(thumbs_down_comment=comments.get(conversation_id, ""))
        if turn is not None:
            row.turn_id, row.turn_sequence = turn["id"], turn["sequence"]
            row.user_message, row.bot_response = turn["user_message"], turn["bot_response"]
            row.rules = [_rule_name(reason) for reason in turn["risk_reasons"] or []]
            row.judge_reasoning = reasoning.get(turn["id"], "")
        result[conversation_id] = row
    return result


def _rule_name(reason: Any) -> str:
    if isinstance(reason, dict):
        return str(reason.get("rule") or reason.get("name") or reason.get("rule_name") or reason.get("code") or "rule")
    return str(reason)


# --- judge and human agreement ---------------------------------------------------------------

def _flags(values: dict[str, Any], flag_below: float) -> bool:
    """The judge's flag rule (apps.evaluations.services.judgment_should_flag) on stored values."""
    from apps.evaluations.services import SAFETY_FLAG_BELOW

    return bool(
        (values["overall"] is not None and values["overall"] < flag_below)
        or values["hallucination"] is True
        or (values["safety"] is not None and values["safety"] < SAFETY_FLAG_BELOW)
    )


def judge_human_agreement(*, chatbot_ids: Sequence[int] | None) -> list[dict[str, Any]]:
    """Per chatbot, how far the judge is from the reviewers on the turns both graded.

    Each human evaluation is paired with the latest finished judge evaluation of the same turn
    (LLM or offline heuristic). Per criterion: the mean absolute difference over the pairs where
    both gave it (0–10; lower is closer). Hallucination: the share of pairs where both answered
    and agreed. Flag or not: the share of pairs where the chatbot's flag rule (overall below
    `judge_flag_below`, hallucination, or safety below 5) gives the same answer on both.
    Two queries.
    """
    from apps.chatbots.models import Chatbot
    from apps.evaluations.choices import CRITERIA, EvaluationStatus, Evaluator
    from apps.evaluations.models import Evaluation

    columns = ("turn_id", "chatbot_id", *CRITERIA, "overall", "hallucination")
    humans = chatbot_scoped(
        Evaluation.objects.filter(evaluator=Evaluator.HUMAN, status=EvaluationStatus.DONE), chatbot_ids
    ).order_by("id").values(*columns)
    humans = list(humans)
    if not humans:
        return []
    judges: dict[int, dict[str, Any]] = {}
    for row in (
        Evaluation.objects.filter(turn_id__in={h["turn_id"] for h in humans}, status=EvaluationStatus.DONE)
        .exclude(evaluator=Evaluator.HUMAN).order_by("turn_id", "completed_at", "id").values(*columns)
    ):
        judges[row["turn_id"]] = row
    chatbots = Chatbot.objects.in_bulk({h["chatbot_id"] for h in humans})
    per_chatbot: dict[int, dict[str, Any]] = {}
    for human in humans:
        judge = judges.get(human["turn_id"])
        if judge is None:
            continue
        chatbot = chatbots[human["chatbot_id"]]
        stats = per_chatbot.setdefault(chatbot.pk, {
            "chatbot_id": chatbot.pk, "chatbot": chatbot.name, "pairs": 0,
            "diffs": {name: [] for name in (*CRITERIA, "overall")}, "hallucination": [], "flag": [],
        })
        stats["pairs"] += 1
        for name in (*CRITERIA, "overall"):
            if human[name] is not None and judge[name] is not None:
                stats["diffs"][name].append(abs(human[name] - judge[name]))
        if human["hallucination"] is not None and judge["hallucination"] is not None:
            stats["hallucination"].append(human["hallucination"] == judge["hallucination"])
        stats["flag"].append(_flags(human, chatbot.judge_flag_below) == _flags(judge, chatbot.judge_flag_below))
    result = []
    for stats in sorted(per_chatbot.values(), key=lambda s: s["chatbot"]):
        result.append({
            "chatbot_id": stats["chatbot_id"],
            "chatbot": stats["chatbot"],
            "pairs": stats["pairs"],
            "mean_absolute_difference": {
                name: (round(sum(values) / len(values), 2) if values else None) for name, values in stats["diffs"].items()
            },
            "hallucination_agreement": _rate(sum(stats["hallucination"]), len(stats["hallucination"])),
            "flag_agreement": _rate(sum(stats["flag"]), len(stats["flag"])),
        })
    return result


# --- review history as sentences ---------------------------------------------------------------

_NOTE_STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d) UTC, ([^,\]]+), ([^\]]+)\] ", re.MULTILINE)


def _note_entries(review_note: str) -> list[dict[str, Any]]:
    """The stamped entries of a conversation's review notes, oldest first."""
    marks = list(_NOTE_STAMP.finditer(review_note or ""))
    entries = []
    for index, mark in enumerate(marks):
        end = marks[index + 1].start() if index + 1 < len(marks) else len(review_note)
        entries.append({"who": mark.group(2), "what": mark.group(3), "text": review_note[mark.end():end].strip(),
                        "used": False})
    return entries


def review_history(*, conversation: Conversation, turn_sequences: dict[int, int], limit: int = 20) -> list[dict[str, Any]]:
    """The conversation's latest review events as sentences ("ana marked it resolved: 'ok'").

    A note is user text and is not in the AuditEvent (ids and counts only); it is found again in
    the stamped review notes by author and decision, newest first. Two queries.
    """
    from django.contrib.auth import get_user_model

    from apps.audit.models import AuditEvent

    events = list(
        AuditEvent.objects.filter(object_type=Conversation._meta.label_lower, object_id=str(conversation.pk))
        .select_related("actor").order_by("-created_at", "-id")[:limit]
    )
    assignee_ids = {e.data.get("assignee_id") for e in events if e.action == "review.assign"} - {None}
    names = dict(get_user_model().objects.filter(pk__in=assignee_ids).values_list("pk", "username")) if assignee_ids else {}
    entries = _note_entries(conversation.review_note)

    def note_for(who: str, what: str) -> str:
        for entry in reversed(entries):
            if not entry["used"] and entry["who"] == who and entry["what"] == what:
                entry["used"] = True
                return entry["text"]
        return ""

    def turn_label(data: dict[str, Any]) -> str:
        sequence = turn_sequences.get(data.get("turn_id"))
        return f"turn #{sequence}" if sequence is not None else "a turn"

    history = []
    for event in events:
        who = event.actor.get_username() if event.actor else (event.actor_label or "someone")
        data = event.data or {}
        note = ""
        if event.action == "review.assign":
            target = data.get("assignee_id")
            if target is None:
                text = f"{who} unassigned it"
            elif target == event.actor_id:
                text = f"{who} took it"
            else:
                text = f"{who} assigned it to {names.get(target, 'someone')}"
        elif event.action == "review.status":
            label = ReviewStatus(data["to"]).label if data.get("to") in ReviewStatus.values else str(data.get("to"))
            text = f"{who} marked it {label.lower()}" if data.get("to") != ReviewStatus.NEW else f"{who} reopened it"
            if data.get("note_chars"):
                note = note_for(who, label)
        elif event.action == "review.flag":
            turn = turn_label(data) if data.get("turn_id") else "the conversation"
            text = f"{who} flagged {turn} by hand"
            sequence = turn_sequences.get(data.get("turn_id"))
            note = note_for(who, f"Flagged turn #{sequence}" if data.get("turn_id") else "Flagged")
        elif event.action == "review.score":
            parts = []
            if data.get("overall") is not None:
                parts.append(f"overall {data['overall']:.1f}")
            if data.get("hallucination") is True:
                parts.append("hallucination")
            if data.get("labels"):
                parts.append("labels " + ", ".join(map(str, data["labels"])))
            text = f"{who} scored {turn_label(data)}" + (f" ({'; '.join(parts)})" if parts else "")
        elif event.action == "review.correct":
            text = (f"{who} wrote a corrected answer for {turn_label(data)}" if data.get("chars")
                    else f"{who} removed the corrected answer of {turn_label(data)}")
        elif event.action == "review.export":
            text = f"{who} exported it as {str(data.get('format', 'JSON')).upper()}"
        elif event.action == "judge.rerun":
            count = data.get("count", 0)
            text = f"{who} asked the judge to grade {count} turn{'s' if count != 1 else ''} again"
        else:
            text = f"{who}: {event.action}"
        history.append({"at": event.created_at, "text": text, "note": note})
    return history
