"""The LLM-call rollup behind `GET /api/v1/stats/llm-calls`: read where current, never stale.

The oracle is the live path, as for the turns' rollup: with the watermark cleared every figure is
grouped from the calls, and both paths bucket durations with the same SQL, so rolled and live
answers must be equal, not merely close.
"""

import importlib
from datetime import UTC, timedelta
from decimal import Decimal

import pytest
from django.apps import apps as django_apps
from django.db import connection
from django.db.models import F
from django.utils import timezone

from apps.conversations.choices import CallPurpose
from apps.conversations.models import LLMCall
from apps.review.models import (
    NO_CHATBOT,
    HourlyLLMCallLatencyBucket,
    HourlyLLMCallStats,
    HourlyStatsState,
    StaleHour,
)
from apps.review.rollup import LLM_CALL_ACCURACY, hourly_stats_refresh
from apps.review.selectors import stats_llm_calls

pytestmark = pytest.mark.django_db


def hour_of(moment):
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def live_stats(**kwargs):
    """The same figures with the rollup switched off: grouped from the calls alone."""
    watermark = HourlyStatsState.objects.values_list("materialized_until", flat=True).first()
    HourlyStatsState.objects.update(materialized_until=None)
    try:
        return stats_llm_calls(**kwargs)
    finally:
        HourlyStatsState.objects.update(materialized_until=watermark)


@pytest.fixture
def now():
    return timezone.now()


def test_refresh_sums_calls_per_chatbot_hour_model_and_function(dataset, chatbot, now):
    hourly_stats_refresh(now=now)
    old = HourlyLLMCallStats.objects.get(chatbot=chatbot, hour=hour_of(dataset.t_old.timestamp))
    assert (old.model, old.function_name, old.calls, old.input_tokens, old.output_tokens) == ("gpt-4o", "answer", 1, 999, 999)
    assert (old.cost, old.errors, old.timed, old.duration_sum) == (Decimal("9"), 0, 1, 9999)
    assert HourlyLLMCallLatencyBucket.objects.get(chatbot=chatbot, hour=old.hour).calls == 1
    # One row per group and hour: the five calls fall in five (chatbot, hour) cells.
    assert HourlyLLMCallStats.objects.count() == 5
    assert sum(HourlyLLMCallStats.objects.values_list("calls", flat=True)) == LLMCall.objects.count()


@pytest.mark.parametrize("hours", [24, 24 * 7])
@pytest.mark.parametrize("scope", ["all", "one chatbot"])
@pytest.mark.parametrize("filters", [{}, {"model": "gpt-4o"}, {"model": "gpt-4o", "function_name": "answer"}])
def test_rolled_up_call_stats_equal_the_live_ones(dataset, chatbot, now, hours, scope, filters):
    query = {"chatbot_ids": None if scope == "all" else [chatbot.pk], "hours": hours, "now": now, **filters}
    before = stats_llm_calls(**query)
    hourly_stats_refresh(now=now)
    assert HourlyLLMCallStats.objects.exists()
    assert stats_llm_calls(**query) == before == live_stats(**query)


def test_summed_hours_are_read_from_the_call_rollup(dataset, chatbot, now):
    hourly_stats_refresh(now=now)
    # Edit rollup rows behind the calls' back (no trigger fires): the stats must show it.
    hour = hour_of(dataset.t_old.timestamp)
    HourlyLLMCallStats.objects.filter(chatbot=chatbot, hour=hour).update(calls=F("calls") + 100)
    HourlyLLMCallLatencyBucket.objects.filter(chatbot=chatbot, hour=hour).update(calls=F("calls") + 100)
    rolled = stats_llm_calls(chatbot_ids=[chatbot.pk], hours=24 * 7, now=now)
    assert rolled["totals"]["calls"] == 4 + 100
    assert rolled["totals"]["duration_ms"]["p50"] == pytest.approx(9999, rel=LLM_CALL_ACCURACY)  # the bucket of 9,999 ms
    assert live_stats(chatbot_ids=[chatbot.pk], hours=24 * 7, now=now)["totals"]["calls"] == 4


def test_every_change_to_a_call_shows_at_once_and_after_the_next_refresh(dataset, chatbot, now):
    hourly_stats_refresh(now=now)
    old_hour = hour_of(dataset.t_old.timestamp)

    def check(**query):
        query = {"chatbot_ids": None, "hours": 24 * 7, "now": now, **query}
        assert stats_llm_calls(**query) == live_stats(**query)  # at once: the changed hour is read live
        hourly_stats_refresh(now=now)
        assert not StaleHour.objects.filter(hour__lt=hour_of(now)).exists()
        assert stats_llm_calls(**query) == live_stats(**query)  # and from the rollup after the refresh

    # A call sent late, into an hour already summed.
    LLMCall.objects.create(chatbot=chatbot, conversation=dataset.old, model="gpt-4o", function_name="rewrite",
                           input_tokens=3, output_tokens=4, cost_usd=Decimal("0.25"), duration_ms=1234,
                           timestamp=dataset.t_old.timestamp + timedelta(minutes=1), purpose=CallPurpose.BOT)
    check()
    assert stats_llm_calls(chatbot_ids=None, hours=24 * 7, now=now)["totals"]["calls"] == 6
    # A bulk update (no signal, no save()) of a summed hour's call.
    LLMCall.objects.filter(timestamp__lt=old_hour + timedelta(hours=1), function_name="answer").update(cost_usd=Decimal("2"))
    check()
    # A call moved to another hour, and a call deleted.
    LLMCall.objects.filter(function_name="rewrite").update(timestamp=now - timedelta(hours=50))
    check()
    LLMCall.objects.filter(function_name="classify").delete()
    check(chatbot_ids=[chatbot.pk])
    # chatmon's own call of no chatbot: in the fleet's figures, in no chatbot's.
    LLMCall.objects.create(chatbot=None, model="text-embedding-3-small", function_name="embed", input_tokens=50,
                           duration_ms=80, timestamp=now - timedelta(hours=10), purpose=CallPurpose.EMBEDDING)
    check()
    fleet = stats_llm_calls(chatbot_ids=None, hours=24, now=now)
    assert ("text-embedding-3-small", "embed") in {(g["model"], g["function_name"]) for g in fleet["groups"]}
    assert HourlyLLMCallStats.objects.filter(chatbot=None, model="text-embedding-3-small").get().calls == 1
    scoped = stats_llm_calls(chatbot_ids=[chatbot.pk], hours=24, now=now)
    assert "text-embedding-3-small" not in {g["model"] for g in scoped["groups"]}


def test_triggers_log_call_inserts_updates_and_deletes(chatbot, now):
    past = now - timedelta(hours=5)
    StaleHour.objects.all().delete()
    call = LLMCall.objects.create(chatbot=chatbot, model="m", duration_ms=10, timestamp=past)
    mine = LLMCall.objects.create(chatbot=None, model="m", duration_ms=10, timestamp=past)
    marks = set(StaleHour.objects.values_list("chatbot_id", "hour"))
    assert marks == {(chatbot.pk, hour_of(past)), (NO_CHATBOT, hour_of(past))}

    StaleHour.objects.all().delete()
    LLMCall.objects.filter(pk=call.pk).update(timestamp=past - timedelta(hours=3))
    assert set(StaleHour.objects.values_list("chatbot_id", "hour")) == {
        (chatbot.pk, hour_of(past)), (chatbot.pk, hour_of(past - timedelta(hours=3)))}

    StaleHour.objects.all().delete()
    LLMCall.objects.filter(pk=mine.pk).delete()
    assert set(StaleHour.objects.values_list("chatbot_id", "hour")) == {(NO_CHATBOT, hour_of(past))}


class StatementsOnly:
    """What the migration's RunPython uses of a schema editor (SQLite's refuses to open inside
    the test's transaction)."""

    connection = connection

    def execute(self, sql, params=()):
        with connection.cursor() as cursor:
            cursor.execute(sql, params)


def test_the_migration_marks_summed_hours_that_have_calls(dataset, chatbot, now):
    """A deployment upgrading to the call rollup has hours summed without it: the migration
    marks them, and the next refresh adds their rows."""
    hourly_stats_refresh(now=now)
    HourlyLLMCallStats.objects.all().delete()
    HourlyLLMCallLatencyBucket.objects.all().delete()  # the state before migration review 0010
    migration = importlib.import_module("apps.review.migrations.0010_llm_call_rollup")
    migration.mark_summed_hours_with_calls(django_apps, StatementsOnly())
    past_calls = {(call.chatbot_id, hour_of(call.timestamp)) for call in LLMCall.objects.all()}
    assert set(StaleHour.objects.values_list("chatbot_id", "hour")) == past_calls
    query = {"chatbot_ids": None, "hours": 24 * 7, "now": now}
    assert stats_llm_calls(**query) == live_stats(**query)  # read live meanwhile
    hourly_stats_refresh(now=now)
    assert HourlyLLMCallStats.objects.count() == 5
    assert stats_llm_calls(**query) == live_stats(**query)


def test_untimed_calls_are_counted_and_have_no_duration(chatbot, now):
    LLMCall.objects.create(chatbot=chatbot, model="m", function_name="f", input_tokens=5, duration_ms=None,
                           timestamp=now - timedelta(hours=5))
    hourly_stats_refresh(now=now)
    assert HourlyLLMCallStats.objects.get().duration_sum == 0
    query = {"chatbot_ids": [chatbot.pk], "hours": 24, "now": now}
    (group,) = stats_llm_calls(**query)["groups"]
    assert group["calls"] == 1 and group["input_tokens"] == 5
    assert group["duration_ms"] == {"average": None, "p50": None, "p95": None, "p99": None}
    assert stats_llm_calls(**query) == live_stats(**query)
