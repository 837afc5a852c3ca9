"""The hourly rollup: read where it is current, never stale, kept by triggers and the refresh.

The oracle is the live path: with the watermark cleared every figure is grouped from the turns,
so `figures(rolled) == figures(live)` after any change checks the rollup end to end.
"""

import threading
from datetime import UTC, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.db import connection, connections, transaction
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.conversations.models import Conversation, Turn
from apps.feedback.services import feedback_submit
from apps.privacy.services import conversations_erase
from apps.review import tasks
from apps.review.models import HourlyLatencyBucket, HourlyStatsState, HourlyTurnStats, StaleHour
from apps.review.rollup import (
    BATCH_HOURS,
    HOUR,
    SPANS_PER_STATEMENT,
    SUM_CHUNK,
    _batches,
    hourly_stats_refresh,
)
from apps.review.selectors import turn_figures
from tests.conftest import require_postgres
from tests.factories import make_conversation, make_turn

pytestmark = pytest.mark.django_db


def hour_of(moment):
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def live_figures(**kwargs):
    """The same figures with the rollup switched off: grouped from the turns alone."""
    watermark = HourlyStatsState.objects.values_list("materialized_until", flat=True).first()
    HourlyStatsState.objects.update(materialized_until=None)
    try:
        return turn_figures(**kwargs)
    finally:
        HourlyStatsState.objects.update(materialized_until=watermark)


@pytest.fixture
def now():
    return timezone.now()


def test_refresh_sums_every_past_hour_and_clears_its_marks(dataset, chatbot, other_chatbot, now):
    assert StaleHour.objects.count() >= 6  # the dataset's inserts, logged by the triggers
    result = hourly_stats_refresh(now=now)
    assert result["materialized_until"] == hour_of(now)
    assert HourlyStatsState.objects.get().materialized_until == hour_of(now)
    assert not StaleHour.objects.filter(hour__lt=hour_of(now)).exists()

    old = HourlyTurnStats.objects.get(chatbot=chatbot, hour=hour_of(dataset.t_old.timestamp))
    assert (old.turns, old.tokens, old.timed, old.latency_sum) == (1, 100, 1, 1000)
    first = HourlyTurnStats.objects.get(chatbot=chatbot, hour=hour_of(dataset.t1.timestamp))
    assert (first.turns, first.flagged, first.votes_down, first.rated_down, first.judged, first.judge_sum) == (1, 1, 1, 1, 1, 2.0)
    assert (first.hallucinations, first.risk_critical, float(first.cost)) == (1, 1, 0.01)
    assert HourlyLatencyBucket.objects.filter(chatbot=other_chatbot).values_list("turns", flat=True).first() == 1
    # Nothing changed: a second refresh sums nothing again.
    assert hourly_stats_refresh(now=now)["hours"] == 0


@pytest.mark.parametrize("hours", [24, 24 * 7])
@pytest.mark.parametrize("scope", ["all", "one chatbot"])
def test_rolled_up_figures_equal_the_live_ones(dataset, chatbot, now, hours, scope):
    chatbot_ids = None if scope == "all" else [chatbot.pk]
    before = turn_figures(chatbot_ids=chatbot_ids, hours=hours, now=now)
    hourly_stats_refresh(now=now)
    assert turn_figures(chatbot_ids=chatbot_ids, hours=hours, now=now) == before


def test_summed_hours_are_read_from_the_rollup(dataset, chatbot, now):
    hourly_stats_refresh(now=now)
    # Edit a rollup row behind the turns' back (no trigger fires): the overview must show it.
    HourlyTurnStats.objects.filter(chatbot=chatbot, hour=hour_of(dataset.t_old.timestamp)).update(turns=F("turns") + 100)
    assert turn_figures(chatbot_ids=[chatbot.pk], hours=24 * 7, now=now)["totals"]["turns"] == 5 + 100
    assert live_figures(chatbot_ids=[chatbot.pk], hours=24 * 7, now=now)["totals"]["turns"] == 5


def test_every_kind_of_change_shows_at_once_and_after_the_next_refresh(dataset, chatbot, post_json, now):
    hourly_stats_refresh(now=now)
    # A vote through the feedback service, a judge score written with update(), a late turn
    # for an hour already summed (through the ingest API), and an erasure (cascade delete).
    feedback_submit(turn_id=dataset.t2.pk, voter_key="v2", rating="down")
    Turn.objects.filter(pk=dataset.t3.pk).update(judge_overall=9.0, judge_hallucination=True)
    late = now - timedelta(hours=50)
    response = post_json("/api/v1/ingest/turns", {"conversation_id": "late", "turn_id": "late-1", "user_message": "hi",
                                                  "bot_response": "hello", "latency_ms": 700,
                                                  "timestamp": late.isoformat()})
    assert response.status_code == 201, response.content
    conversations_erase(conversation_ids=[dataset.old.pk])
    assert StaleHour.objects.filter(hour=hour_of(late)).exists()

    kwargs = {"chatbot_ids": [chatbot.pk], "hours": 24 * 7, "now": now}
    changed = turn_figures(**kwargs)
    assert changed == live_figures(**kwargs)
    assert changed["totals"]["turns"] == 5 - 1 + 1  # t_old erased, the late turn added
    assert changed["totals"]["judged_turns"] == 3
    assert changed["totals"]["rated_turns"] == 2 and changed["totals"]["thumbs_down"] == 2

    hourly_stats_refresh(now=now)
    assert not StaleHour.objects.filter(hour__lt=hour_of(now)).exists()
    assert turn_figures(**kwargs) == changed
    assert not HourlyTurnStats.objects.filter(hour=hour_of(dataset.t_old.timestamp)).exists()


def test_a_refresh_reads_the_turn_and_call_tables_once_per_batch(dataset, chatbot, now):
    """The batch's turns (and calls) are copied once into a scratch table, which the six turn
    groupings (two call groupings) read: the big tables are not scanned once per grouping."""
    hourly_stats_refresh(now=now)
    Turn.objects.filter(pk__in=[dataset.t_old.pk, dataset.t1.pk]).update(judge_overall=9.5)  # two stale hours
    with CaptureQueriesContext(connection) as captured:
        result = hourly_stats_refresh(now=now)
    assert result["hours"] == 2
    reads = lambda table: [q["sql"] for q in captured if f'FROM "{table}"' in q["sql"]]  # noqa: E731
    assert len(reads("conversations_turn")) == 1 and "CREATE TEMPORARY TABLE" in reads("conversations_turn")[0]
    assert len(reads("conversations_llmcall")) == 1
    assert len(reads("review_spanturn")) == 6 and len(reads("review_spanllmcall")) == 2
    assert turn_figures(chatbot_ids=[chatbot.pk], hours=24 * 7, now=now) == live_figures(
        chatbot_ids=[chatbot.pk], hours=24 * 7, now=now)


def test_triggers_log_inserts_updates_and_deletes(chatbot):
    conversation = make_conversation(chatbot)
    moment = timezone.now() - timedelta(days=3)
    StaleHour.objects.all().delete()

    turn = make_turn(conversation, timestamp=moment)
    assert list(StaleHour.objects.values_list("chatbot_id", "hour")) == [(chatbot.pk, hour_of(moment))]

    StaleHour.objects.all().delete()
    later = moment + timedelta(hours=5)
    Turn.objects.filter(pk=turn.pk).update(timestamp=later)  # both the old and the new hour
    assert set(StaleHour.objects.values_list("hour", flat=True)) == {hour_of(moment), hour_of(later)}

    StaleHour.objects.all().delete()
    with connection.cursor() as cursor:  # raw SQL too: the database does the bookkeeping
        cursor.execute("UPDATE conversations_turn SET thumbs_up = 1 WHERE id = %s", [turn.pk])
    assert list(StaleHour.objects.values_list("hour", flat=True)) == [hour_of(later)]

    StaleHour.objects.all().delete()
    Conversation.objects.filter(pk=conversation.pk).delete()
    assert list(StaleHour.objects.values_list("chatbot_id", "hour")) == [(chatbot.pk, hour_of(later))]


def test_a_time_zone_off_the_hour_reads_live(dataset, chatbot, now):
    hourly_stats_refresh(now=now)
    HourlyTurnStats.objects.filter(chatbot=chatbot).update(turns=F("turns") + 100)
    with timezone.override(ZoneInfo("Asia/Kolkata")):  # UTC+5:30: local hours straddle UTC hours
        figures = turn_figures(chatbot_ids=[chatbot.pk], hours=24 * 7, now=now)
    assert figures["totals"]["turns"] == 5


def test_a_long_history_is_summed_over_several_refreshes(chatbot, now):
    conversation = make_conversation(chatbot)
    make_turn(conversation, timestamp=now - timedelta(days=200), latency_ms=10)
    make_turn(conversation, timestamp=now - timedelta(days=2), latency_ms=20)
    first = hourly_stats_refresh(now=now)
    assert first["materialized_until"] < hour_of(now)  # moved at most MAX_ADVANCE
    while hourly_stats_refresh(now=now)["materialized_until"] < hour_of(now):
        pass
    assert sorted(HourlyTurnStats.objects.values_list("turns", flat=True)) == [1, 1]
    figures = turn_figures(chatbot_ids=None, hours=24 * 366, now=now)
    assert figures == live_figures(chatbot_ids=None, hours=24 * 366, now=now)
    assert figures["totals"]["turns"] == 2


def test_beat_runs_the_refresh_every_minute(dataset):
    entry = settings.CELERY_BEAT_SCHEDULE["review-hourly-stats-refresh"]
    assert entry["task"] == tasks.hourly_stats_refresh.name and entry["schedule"] == 60.0
    tasks.hourly_stats_refresh.delay()  # eager in tests
    assert HourlyStatsState.objects.get().materialized_until == hour_of(timezone.now())


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_refresh_already_running_makes_the_next_one_return():
    require_postgres("SKIP LOCKED")
    hourly_stats_refresh()
    locked, release = threading.Event(), threading.Event()

    def hold_the_lock():
        try:
            with transaction.atomic():
                HourlyStatsState.objects.select_for_update().get(pk=1)
                locked.set()
                release.wait(10)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    try:
        assert locked.wait(10)
        assert hourly_stats_refresh() == {"skipped": "another refresh is running"}
    finally:
        release.set()
        holder.join()
    assert "skipped" not in hourly_stats_refresh()


def test_metrics_show_how_far_behind_the_rollup_is(client, chatbot):
    def lag_samples() -> list[float]:
        text = client.get("/metrics").content.decode()
        return [float(line.split()[1]) for line in text.splitlines() if line.startswith("chatmon_dashboard_rollup_lag_seconds ")]

    assert lag_samples() == []  # never refreshed
    hourly_stats_refresh(now=timezone.now() - timedelta(hours=2))
    [lag] = lag_samples()
    assert 2 * 3600 <= lag < 3 * 3600


def test_refresh_batches_bound_the_scratch_table():
    start = hour_of(timezone.now()) - timedelta(days=30)
    spans = [(None, start + SUM_CHUNK * i, start + SUM_CHUNK * (i + 1)) for i in range(3)]
    spans += [(1 + i % 5, start + HOUR * i, start + HOUR * (i + 1)) for i in range(500)]
    batches = list(_batches(spans))
    assert [span for batch in batches for span in batch] == spans  # in order, nothing lost or repeated
    assert all(len(batch) <= SPANS_PER_STATEMENT for batch in batches)
    assert all(sum((end - begin for _, begin, end in batch), timedelta()) <= BATCH_HOURS for batch in batches)
    assert len(batches) == 3 + 500 * HOUR // BATCH_HOURS + 1
