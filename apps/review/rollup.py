"""The hourly rollup behind the dashboard and `GET /api/v1/stats/overview` on long windows.

Grouping a million turns takes seconds; adding up 720 hourly rows per chatbot does not. The
rollup is exact, never approximately fresh: an hour is read from it only while no turn of that
hour has changed since it was summed, and everything else is grouped live from the turns.

Reading (`window_turn_figures`), for a window (since, until]:
1. Full UTC hours from the first hour starting after `since` up to `materialized_until` (at most
   the hour `until` falls in), minus the hours logged in StaleHour, come from HourlyTurnStats
   and HourlyLatencyBucket.
2. The rest (the partial first hour, the stale hours, everything from the watermark on, which
   includes the current hour) is grouped from the turns with the same aggregates.
3. Both parts give rows per hour with the same keys, and latency bucket counts that add up.
The breakdowns by model, intent, channel and release (`window_dimension_figures`) follow the same
plan over HourlyDimensionStats: one row per (chatbot, UTC hour, dimension, value). LLM calls
(`window_llm_call_figures`, the LLM-call stats) too, over HourlyLLMCallStats and
HourlyLLMCallLatencyBucket: one row per (chatbot or none, UTC hour, model, function name).
The rollup is skipped when the time zone has a UTC offset that is not a whole hour in the window
(the rollup's hours are UTC hours; local hours would straddle them).

Refreshing (`hourly_stats_refresh`, every minute from beat):
1. Lock the state row; a refresh already running makes this one return at once.
2. Read the stale marks of hours before the current hour (up to STALE_BATCH).
3. Re-sum from the turns (HourlyTurnStats, HourlyLatencyBucket and HourlyDimensionStats) and the
   LLM calls (HourlyLLMCallStats, HourlyLLMCallLatencyBucket): each chatbot's stale hours before the old watermark, and every hour
   from the old watermark (on the first run, from the first turn) up to the current hour.
4. Delete exactly the marks read in 2 (marks committed meanwhile stay for the next run), drop the
   marks of hours not yet materialized (they will be summed whole), move the watermark.
The triggers that write StaleHour are in migration 0004: every insert, update and delete of a
turn is logged in the same transaction, whichever code path made it; migration 0008 adds the
hours of a conversation's turns when its channel (a breakdown dimension) changes, and 0010 the
hours of every LLM call inserted, updated or deleted. A mark re-sums both the turns and the
calls of its chatbot and hour.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import CharField, Count, F, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce, TruncDay, TruncHour
from django.utils import timezone

from apps.chatbots.access import chatbot_scoped
from apps.conversations.metrics_catalogue import FIGURES as CATALOGUE_FIGURES
from apps.conversations.metrics_catalogue import figure_aggregates, window_q
from apps.conversations.models import LLMCall, Turn
from apps.core.latency_histogram import LogHistogram, bucket_expression

from .models import (
    NO_CHATBOT,
    HourlyDimensionStats,
    HourlyLatencyBucket,
    HourlyLLMCallLatencyBucket,
    HourlyLLMCallStats,
    HourlyStatsState,
    HourlyTurnStats,
    SpanLLMCall,
    SpanTurn,
    StaleHour,
)

# The breakdown dimensions HourlyDimensionStats holds, and the Turn field each groups by. A
# channel is its conversation's: migration 0008 marks a conversation's hours stale when it changes.
DIMENSIONS: dict[str, str] = {"model": "model", "intent": "intent", "channel": "conversation__channel",
                              "release": "release"}
HOUR = timedelta(hours=1)
STALE_BATCH = 50_000  # stale marks read per refresh
SUM_CHUNK = timedelta(days=1)  # most hours summed per span
SPANS_PER_STATEMENT = 200  # spans re-summed per batch (one DELETE / INSERT … SELECT per table)
# And at most this many hours of spans per batch, which bounds the scratch table: a day of every
# chatbot's turns at the first refresh (10 M rows at 10 M turns a day), a day of one chatbot's after.
BATCH_HOURS = SUM_CHUNK
MAX_ADVANCE = timedelta(days=92)  # how far one refresh moves the watermark


# LLM calls are summed per (chatbot, hour, model, function name), and so is their duration
# histogram: a group has as many bucket rows as distinct buckets its calls hit, so 30 days of a
# busy fleet are hundreds of thousands of rows at 1 % and a quarter of that at 4 %.
# LLM_CALL_ACCURACY trades that read for precision (docs/BENCHMARKS.md, "At 10,000,000 turns").
LLM_CALL_ACCURACY = 0.04
LLM_CALL_DURATION = LogHistogram(LLM_CALL_ACCURACY)
LLM_CALL_GROUP = ("model", "function_name")


def llm_call_aggregates() -> dict[str, Any]:
    """HourlyLLMCallStats' columns, as aggregates over LLMCall rows."""
    return {
        "calls": Count("id"),
        "input_tokens": Sum("input_tokens"),
        "output_tokens": Sum("output_tokens"),
        "cost": Sum("cost_usd"),
        "errors": Count("id", filter=Q(success=False)),
        "timed": Count("duration_ms"),
        "duration_sum": Coalesce(Sum("duration_ms"), 0),  # NULL when no call of the group is timed
    }


LLM_CALL_FIGURES = tuple(llm_call_aggregates())


def turn_aggregates() -> dict[str, Any]:
    """The catalogue's figures (apps.conversations.metrics_catalogue): HourlyTurnStats' columns."""
    return figure_aggregates()


FIGURES = CATALOGUE_FIGURES


def _floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _next_hour(moment: datetime) -> datetime:
    """The first hour starting after `moment`: the window is (since, until], so a turn exactly
    on `since` is not in it, and an hour starting on `since` cannot be read whole."""
    return _floor_hour(moment) + HOUR


def _intervals(hours: Iterable[datetime]) -> list[tuple[datetime, datetime]]:
    """Sorted hours merged into half-open [start, end) runs."""
    runs: list[list[datetime]] = []
    for hour in sorted(set(hours)):
        if runs and runs[-1][1] == hour:
            runs[-1][1] = hour + HOUR
        else:
            runs.append([hour, hour + HOUR])
    return [(start, end) for start, end in runs]


def _whole_hour_offsets(since: datetime, until: datetime) -> bool:
    tz = timezone.get_current_timezone()
    moment = _floor_hour(since)
    while moment <= until:
        offset = moment.astimezone(tz).utcoffset()
        if offset is not None and offset.total_seconds() % 3600:
            return False
        moment += HOUR
    return True


@dataclass
class WindowPlan:
    """Where the figures of a window come from: `live` turns, and the rollup rows `rolled(model)`."""

    live: QuerySet
    rolled: Callable[[type], QuerySet] | None


def window_plan(
    *, chatbot_ids: Sequence[int] | None, since: datetime, until: datetime, source: type = Turn
) -> WindowPlan:
    """The plan for the rows of `source` (Turn or LLMCall, both timed by `timestamp`)."""
    first_full_hour = _next_hour(since)
    watermark = HourlyStatsState.objects.filter(pk=1).values_list("materialized_until", flat=True).first()
    rolled_until = min(watermark, _floor_hour(until)) if watermark else None
    if rolled_until is None or rolled_until <= first_full_hour or not _whole_hour_offsets(since, until):
        return WindowPlan(chatbot_scoped(source.objects.filter(window_q(since, until)), chatbot_ids).order_by(), None)

    stale = set(
        chatbot_scoped(StaleHour.objects.filter(hour__gte=first_full_hour, hour__lt=rolled_until), chatbot_ids)
        .values_list("hour", flat=True)
        .distinct()
    )
    live = Q(timestamp__gt=since, timestamp__lt=first_full_hour) | Q(timestamp__gte=rolled_until, timestamp__lte=until)
    for start, end in _intervals(stale):
        live |= Q(timestamp__gte=start, timestamp__lt=end)

    def rolled(model: type) -> QuerySet:
        rows = model.objects.filter(hour__gte=first_full_hour, hour__lt=rolled_until).exclude(hour__in=stale)
        return chatbot_scoped(rows, chatbot_ids).order_by()

    return WindowPlan(chatbot_scoped(source.objects.filter(live), chatbot_ids).order_by(), rolled)


def window_turn_figures(
    *, chatbot_ids: Sequence[int] | None, since: datetime, until: datetime, latency_period: str | None = None
) -> tuple[dict[datetime, dict[str, Any]], Counter[int], dict[datetime, Counter[int]]]:
    """Per local hour of (since, until]: the catalogue's figures; the window's latency bucket
    counts; and with `latency_period` ("hour" or "day") the bucket counts per local period."""
    plan = window_plan(chatbot_ids=chatbot_ids, since=since, until=until)
    by_hour, latency, periods = _live_figures(plan.live, latency_period)
    if plan.rolled is None:
        return by_hour, latency, periods
    summed = plan.rolled(HourlyTurnStats).values("hour").annotate(**{f"sum_{name}": Sum(name) for name in FIGURES})
    for row in summed:
        by_hour[row["hour"]] = {name: row[f"sum_{name}"] for name in FIGURES}
    buckets = plan.rolled(HourlyLatencyBucket)
    if latency_period is None:
        latency.update(dict(buckets.values("bucket").annotate(n=Sum("turns")).values_list("bucket", "n")))
    else:
        rows = buckets.annotate(period=_trunc(latency_period, "hour")).values("period", "bucket").annotate(n=Sum("turns"))
        for period, bucket, n in rows.values_list("period", "bucket", "n"):
            periods.setdefault(period, Counter())[bucket] += n
            latency[bucket] += n
    return by_hour, latency, periods


def window_chatbot_figures(
    *, chatbot_ids: Sequence[int] | None, since: datetime, until: datetime
) -> dict[int, dict[str, Any]]:
    """Per chatbot: the catalogue's figures over (since, until], from the rollup where current."""
    plan = window_plan(chatbot_ids=chatbot_ids, since=since, until=until)
    found: dict[int, dict[str, Any]] = {}

    def add(chatbot_id: int, row: dict[str, Any]) -> None:
        into = found.setdefault(chatbot_id, dict.fromkeys(FIGURES, 0))
        for name in FIGURES:
            into[name] += row[name] or 0

    for row in plan.live.values("chatbot_id").annotate(**turn_aggregates()):
        add(row["chatbot_id"], row)
    if plan.rolled is not None:
        for row in plan.rolled(HourlyTurnStats).values("chatbot_id").annotate(**{name: Sum(name) for name in FIGURES}):
            add(row["chatbot_id"], row)
    return found


def window_dimension_figures(
    *, chatbot_ids: Sequence[int] | None, since: datetime, until: datetime, dimension: str,
    figures: Sequence[str] = FIGURES,
) -> dict[str, dict[str, Any]]:
    """Per value of `dimension` (model, intent, channel, release): `figures` over (since, until],
    from HourlyDimensionStats where current and from the turns elsewhere (the same plan as
    `window_turn_figures`, so the same exactness)."""
    field = DIMENSIONS[dimension]
    aggregates = turn_aggregates()
    plan = window_plan(chatbot_ids=chatbot_ids, since=since, until=until)
    found: dict[str, dict[str, Any]] = {}

    def add(value: str, row: dict[str, Any]) -> None:
        into = found.setdefault(value, dict.fromkeys(figures, 0))
        for name in figures:
            into[name] += row[name] or 0

    for row in plan.live.values(field).annotate(**{name: aggregates[name] for name in figures}):
        add(row[field] or "", row)
    if plan.rolled is not None:
        rows = plan.rolled(HourlyDimensionStats).filter(dimension=dimension).values("value")
        for row in rows.annotate(**{name: Sum(name) for name in figures}):
            add(row["value"], row)
    return found


def window_hourly_group_figures(
    *, chatbot_ids: Sequence[int] | None, since: datetime, until: datetime, dimension: str,
    figures: Sequence[str] = FIGURES,
) -> dict[tuple[Any, datetime], dict[str, Any]]:
    """Per (group, hour) of (since, until]: `figures`, grouped by chatbot or by a breakdown
    dimension, from the rollups where current and from the turns elsewhere (the timeseries API)."""
    field = "chatbot_id" if dimension == "chatbot" else DIMENSIONS[dimension]
    aggregates = turn_aggregates()
    plan = window_plan(chatbot_ids=chatbot_ids, since=since, until=until)
    found: dict[tuple[Any, datetime], dict[str, Any]] = {}

    def add(key: tuple[Any, datetime], row: dict[str, Any]) -> None:
        into = found.setdefault(key, dict.fromkeys(figures, 0))
        for name in figures:
            into[name] += row[name] or 0

    live = plan.live.annotate(bucket=TruncHour("timestamp")).values(field, "bucket")
    for row in live.annotate(**{name: aggregates[name] for name in figures}):
        add((row[field] if dimension == "chatbot" else row[field] or "", row["bucket"]), row)
    if plan.rolled is not None:
        if dimension == "chatbot":
            rows = plan.rolled(HourlyTurnStats).values("chatbot_id", "hour")
        else:
            rows = plan.rolled(HourlyDimensionStats).filter(dimension=dimension).values("value", "hour")
        for row in rows.annotate(**{name: Sum(name) for name in figures}):
            add((row["chatbot_id" if dimension == "chatbot" else "value"], row["hour"]), row)
    return found


def window_llm_call_figures(
    *, chatbot_ids: Sequence[int] | None, since: datetime, until: datetime, filters: dict[str, str]
) -> tuple[dict[tuple[str, str], dict[str, Any]], dict[tuple[str, str], Counter[int]]]:
    """Per (model, function name) of the LLM calls over (since, until] matching `filters` (on
    model, function_name): LLM_CALL_FIGURES and the duration histogram at LLM_CALL_ACCURACY, from
    the LLM-call rollup where current and from the calls elsewhere (the same plan as the turns)."""
    plan = window_plan(chatbot_ids=chatbot_ids, since=since, until=until, source=LLMCall)
    figures: dict[tuple[str, str], dict[str, Any]] = {}
    durations: dict[tuple[str, str], Counter[int]] = {}

    def add(row: dict[str, Any]) -> None:
        into = figures.setdefault((row["model"], row["function_name"]), dict.fromkeys(LLM_CALL_FIGURES, 0))
        for name in LLM_CALL_FIGURES:
            into[name] += row[name] or 0

    def add_buckets(rows: QuerySet) -> None:
        for model, function_name, bucket, n in rows.values_list(*LLM_CALL_GROUP, "bucket", "n"):
            durations.setdefault((model, function_name), Counter())[bucket] += n

    live = plan.live.filter(**filters)
    for row in live.values(*LLM_CALL_GROUP).annotate(**llm_call_aggregates()):
        add(row)
    timed = live.filter(duration_ms__isnull=False).annotate(bucket=LLM_CALL_DURATION.bucket_expression("duration_ms"))
    add_buckets(timed.values(*LLM_CALL_GROUP, "bucket").annotate(n=Count("id")))
    if plan.rolled is not None:
        rows = plan.rolled(HourlyLLMCallStats).filter(**filters).values(*LLM_CALL_GROUP)
        for row in rows.annotate(**{name: Sum(name) for name in LLM_CALL_FIGURES}):
            add(row)
        add_buckets(plan.rolled(HourlyLLMCallLatencyBucket).filter(**filters).values(*LLM_CALL_GROUP, "bucket")
                    .annotate(n=Sum("calls")))
    return figures, durations


def _trunc(period: str, field: str) -> TruncHour | TruncDay:
    return TruncHour(field) if period == "hour" else TruncDay(field)


def _live_figures(
    turns: QuerySet, latency_period: str | None = None
) -> tuple[dict[datetime, dict[str, Any]], Counter[int], dict[datetime, Counter[int]]]:
    rows = turns.annotate(bucket=TruncHour("timestamp")).order_by().values("bucket").annotate(**turn_aggregates())
    by_hour = {row.pop("bucket"): row for row in rows}
    timed = turns.filter(latency_ms__isnull=False).annotate(bucket=bucket_expression("latency_ms")).order_by()
    periods: dict[datetime, Counter[int]] = {}
    if latency_period is None:
        latency = Counter(dict(timed.values("bucket").annotate(n=Count("id")).values_list("bucket", "n")))
        return by_hour, latency, periods
    latency = Counter()
    rows = timed.annotate(period=_trunc(latency_period, "timestamp")).values("period", "bucket").annotate(n=Count("id"))
    for period, bucket, n in rows.values_list("period", "bucket", "n"):
        periods.setdefault(period, Counter())[bucket] += n
        latency[bucket] += n
    return by_hour, latency, periods


def hourly_stats_refresh(*, now: datetime | None = None) -> dict[str, Any]:
    """Bring the rollup up to the current hour (see the module docstring); returns what it did.

    A first run over a long history moves the watermark at most MAX_ADVANCE per call, so every
    call fits well inside the task time limit; beat's next minute carries on.
    """
    current_hour = _floor_hour(now or timezone.now())
    with transaction.atomic():
        HourlyStatsState.objects.get_or_create(pk=1)
        state = HourlyStatsState.objects.select_for_update(skip_locked=True).filter(pk=1).first()
        if state is None:
            return {"skipped": "another refresh is running"}
        old_watermark = state.materialized_until
        marks = list(
            StaleHour.objects.filter(hour__lt=current_hour).order_by("id").values_list("id", "chatbot_id", "hour")[:STALE_BATCH]
        )

        # Changed hours are re-summed per chatbot (a vote re-sums one bot's hour, not every bot's);
        # the hours the watermark moves over are summed for every chatbot.
        stale: dict[int, set[datetime]] = {}
        for _, chatbot_id, hour in marks:
            if old_watermark and hour < old_watermark:
                stale.setdefault(chatbot_id, set()).add(hour)
        start = old_watermark or _first_turn_hour() or current_hour
        watermark = max(start, min(current_hour, start + MAX_ADVANCE))
        new_hours = [start + HOUR * i for i in range(int((watermark - start) / HOUR))]
        spans = [
            (chatbot_id, chunk, min(chunk + SUM_CHUNK, run_end))
            for chatbot_id, hours in [(None, new_hours), *stale.items()]
            for run_start, run_end in _intervals(hours)
            for chunk in _steps(run_start, run_end, SUM_CHUNK)
        ]
        for batch in _batches(spans):
            _resum(batch)

        mark_ids = [mark[0] for mark in marks]
        for offset in range(0, len(mark_ids), 5000):
            StaleHour.objects.filter(id__in=mark_ids[offset : offset + 5000]).delete()
        # Hours from the new watermark on are summed whole when it reaches them.
        StaleHour.objects.filter(hour__gte=watermark).delete()
        state.materialized_until = watermark
        state.refreshed_at = timezone.now()
        state.save(update_fields=["materialized_until", "refreshed_at"])
    resummed = len(new_hours) + sum(len(hours) for hours in stale.values())
    return {"hours": resummed, "stale_marks": len(marks), "materialized_until": watermark}


def _first_turn_hour() -> datetime | None:
    """The hour of the first turn or LLM call (a call sent on its own may come before any turn)."""
    firsts = [source.objects.order_by("timestamp").values_list("timestamp", flat=True).first() for source in (Turn, LLMCall)]
    found = [moment for moment in firsts if moment is not None]
    return _floor_hour(min(found)) if found else None


def _steps(start: datetime, end: datetime, step: timedelta) -> list[datetime]:
    return [start + step * i for i in range(math.ceil((end - start) / step))]


def _batches(spans: list[tuple[int | None, datetime, datetime]]) -> Iterator[list[tuple[int | None, datetime, datetime]]]:
    """The spans in order, cut into batches of at most SPANS_PER_STATEMENT spans and BATCH_HOURS."""
    batch: list[tuple[int | None, datetime, datetime]] = []
    hours = timedelta()
    for span in spans:
        if batch and (len(batch) == SPANS_PER_STATEMENT or hours + (span[2] - span[1]) > BATCH_HOURS):
            yield batch
            batch, hours = [], timedelta()
        batch.append(span)
        hours += span[2] - span[1]
    if batch:
        yield batch


def _resum(spans: list[tuple[int | None, datetime, datetime]]) -> None:
    """Replace the rollup rows of each span (a chatbot, or every one with None, and UTC hours
    [start, end)) with sums of their turns and LLM calls: one DELETE and one INSERT … SELECT per
    table. NO_CHATBOT stands for the LLM calls of no chatbot (and matches no turn)."""

    def where(time_field: str) -> Q:
        where = Q(pk__in=[])
        for chatbot_id, start, end in spans:
            span = Q(**{f"{time_field}__gte": start, f"{time_field}__lt": end})
            if chatbot_id is not None:
                span &= Q(chatbot_id__isnull=True) if chatbot_id == NO_CHATBOT else Q(chatbot_id=chatbot_id)
            where |= span
        return where

    for model in (HourlyTurnStats, HourlyLatencyBucket, HourlyDimensionStats, HourlyLLMCallStats, HourlyLLMCallLatencyBucket):
        model.objects.filter(where("hour")).delete()
    in_hours = where("timestamp")
    hour = TruncHour("timestamp", tzinfo=UTC)

    _scratch_fill(SpanTurn, Turn.objects.filter(in_hours).annotate(hour=hour, channel=F("conversation__channel")))
    turns = SpanTurn.objects.order_by()
    stats = turns.values("chatbot_id", "hour").annotate(**turn_aggregates())
    _insert_select(HourlyTurnStats, {"chatbot_id": "chatbot_id", "hour": "hour", **{name: name for name in FIGURES}}, stats)
    buckets = (
        turns.filter(latency_ms__isnull=False)
        .annotate(bucket=bucket_expression("latency_ms"))
        .values("chatbot_id", "hour", "bucket")
        .annotate(n=Count("id"))
    )
    _insert_select(HourlyLatencyBucket, {"chatbot_id": "chatbot_id", "hour": "hour", "bucket": "bucket", "turns": "n"}, buckets)
    for dimension in DIMENSIONS:  # SpanTurn has a column of each dimension's name (channel: its conversation's)
        grouped = (
            turns.annotate(dimension=Value(dimension, output_field=CharField()), dimension_value=F(dimension))
            .values("chatbot_id", "hour", "dimension", "dimension_value").annotate(**turn_aggregates())
        )
        _insert_select(HourlyDimensionStats, {"chatbot_id": "chatbot_id", "hour": "hour", "dimension": "dimension",
                                              "value": "dimension_value", **{name: name for name in FIGURES}}, grouped)
    _scratch_drop(SpanTurn)

    _scratch_fill(SpanLLMCall, LLMCall.objects.filter(in_hours).annotate(hour=hour))
    calls = SpanLLMCall.objects.order_by()
    keys = {"chatbot_id": "chatbot_id", "hour": "hour", **{name: name for name in LLM_CALL_GROUP}}
    _insert_select(HourlyLLMCallStats, {**keys, **{name: name for name in LLM_CALL_FIGURES}},
                   calls.values(*keys).annotate(**llm_call_aggregates()))
    timed = calls.filter(duration_ms__isnull=False).annotate(bucket=LLM_CALL_DURATION.bucket_expression("duration_ms"))
    _insert_select(HourlyLLMCallLatencyBucket, {**keys, "bucket": "bucket", "calls": "n"},
                   timed.values(*keys, "bucket").annotate(n=Count("id")))
    _scratch_drop(SpanLLMCall)


def _scratch_fill(model: type, rows: QuerySet) -> None:
    """CREATE TEMPORARY TABLE for the unmanaged `model` AS the `rows` (a queryset with a value of
    each of its columns): the batch's rows, read once from the big table. Inside the refresh's
    transaction: a failure rolls the table away with the rest."""
    assert connection.in_atomic_block, "the scratch table lives in the refresh's transaction"
    columns = [field.column for field in model._meta.concrete_fields]
    sql, params = rows.order_by().values(*columns).query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMPORARY TABLE {connection.ops.quote_name(model._meta.db_table)} AS {sql}", params)


def _scratch_drop(model: type) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {connection.ops.quote_name(model._meta.db_table)}")


def _insert_select(model: type, columns: dict[str, str], queryset: QuerySet) -> None:
    """INSERT INTO model (columns) SELECT … FROM (queryset): the grouping runs in the database and
    no rows travel. `columns` maps each of the model's columns to the queryset's value of that name."""
    sql, params = queryset.query.sql_with_params()
    quote = connection.ops.quote_name
    targets = ", ".join(quote(column) for column in columns)
    sources = ", ".join(f"grouped.{quote(source)}" for source in columns.values())
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {quote(model._meta.db_table)} ({targets}) SELECT {sources} FROM ({sql}) grouped", params)
