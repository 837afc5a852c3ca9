"""The per-dimension rollup behind the breakdowns (model, intent, channel, release): the same
rows as grouping the window's turns live, before and after a refresh and after every kind of
change (a vote, a judge score, a late turn, an erasure, a conversation's channel set later)."""

import random
from datetime import UTC, timedelta
from decimal import Decimal

import pytest
from django.db.models import F
from django.utils import timezone

from apps.conversations.models import Conversation, Turn
from apps.feedback.services import feedback_submit
from apps.privacy.services import conversations_erase
from apps.review.models import HourlyDimensionStats, HourlyStatsState, StaleHour
from apps.review.rollup import DIMENSIONS, hourly_stats_refresh
from apps.review.selectors import BREAKDOWNS, Window, stats_breakdown
from tests.factories import make_conversation, make_turn

pytestmark = pytest.mark.django_db


def hour_of(moment):
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def live_breakdown(**kwargs):
    """The breakdown with the rollup switched off: grouped from the turns alone."""
    watermark = HourlyStatsState.objects.values_list("materialized_until", flat=True).first()
    HourlyStatsState.objects.update(materialized_until=None)
    try:
        return stats_breakdown(**kwargs)
    finally:
        HourlyStatsState.objects.update(materialized_until=watermark)


@pytest.fixture
def now():
    return timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=7)


@pytest.fixture
def turns(chatbot, other_chatbot, now):
    rng = random.Random(7)
    conversations = [make_conversation(rng.choice([chatbot, other_chatbot]), channel=rng.choice(["web", "whatsapp", ""]))
                     for _ in range(10)]
    made = []
    for _ in range(150):
        judged = rng.random() < 0.6
        made.append(make_turn(
            rng.choice(conversations), timestamp=now - timedelta(minutes=rng.randint(1, 60 * 24 * 9)),
            has_error=rng.random() < 0.2, thumbs_up=int(rng.random() < 0.2), thumbs_down=int(rng.random() < 0.2),
            judge_overall=round(rng.uniform(0, 10), 1) if judged else None,
            total_cost_usd=Decimal(rng.randint(0, 50_000)) / Decimal(1_000_000),
            model=rng.choice(["gpt-4o-mini", "claude-3-5-haiku", ""]), intent=rng.choice(["refund", "order_status", ""]),
            release=rng.choice(["2.3", "2.4", ""]),
        ))
    return made


def every_breakdown(chatbot_ids, window):
    return {by: stats_breakdown(chatbot_ids=chatbot_ids, window=window, by=by) for by in BREAKDOWNS}


@pytest.mark.parametrize("hours", [24, 24 * 7])
@pytest.mark.parametrize("scope", ["all", "one chatbot"])
def test_rolled_up_breakdowns_equal_the_live_ones(turns, chatbot, now, hours, scope):
    chatbot_ids = None if scope == "all" else [chatbot.pk]
    window = Window.last(hours, now=now)
    before = every_breakdown(chatbot_ids, window)
    assert sum(row["turn_volume"] for row in before["release"]["rows"]) == (
        Turn.objects.filter(timestamp__gt=window.since, timestamp__lte=window.until,
                            **({"chatbot_id": chatbot.pk} if chatbot_ids else {})).count())
    hourly_stats_refresh(now=now)
    assert HourlyDimensionStats.objects.filter(dimension="release").exists()
    assert every_breakdown(chatbot_ids, window) == before


def test_breakdowns_are_read_from_the_dimension_rollup(turns, chatbot, now):
    hourly_stats_refresh(now=now)
    window = Window.last(24 * 7, now=now)
    before = stats_breakdown(chatbot_ids=None, window=window, by="release")
    # Edit rollup rows behind the turns' back (no trigger fires): the breakdown must show it.
    HourlyDimensionStats.objects.filter(dimension="release", value="2.4").update(turns=F("turns") + 1000)
    after = stats_breakdown(chatbot_ids=None, window=window, by="release")
    assert after["rows"][0]["label"] == "2.4"
    assert after["rows"][0]["turn_volume"] > 1000 > before["rows"][0]["turn_volume"]
    assert live_breakdown(chatbot_ids=None, window=window, by="release") == before


def test_every_kind_of_change_shows_at_once_and_after_the_next_refresh(turns, chatbot, now, post_json):
    hourly_stats_refresh(now=now)
    window = Window.last(24 * 7, now=now)
    in_window = [t for t in turns if t.timestamp > window.since + timedelta(hours=2)]
    feedback_submit(turn_id=in_window[0].pk, voter_key="v9", rating="down")
    Turn.objects.filter(pk=in_window[1].pk).update(judge_overall=0.5, has_error=True, release="2.5")
    late = now - timedelta(hours=50)
    response = post_json("/api/v1/ingest/turns", {"conversation_id": "late", "turn_id": "late-1", "user_message": "hi",
                                                  "release": "2.6", "model": "mistral-small", "intent": "refund",
                                                  "timestamp": late.isoformat()})
    assert response.status_code == 201, response.content
    conversations_erase(conversation_ids=[in_window[2].conversation_id])
    # A conversation's channel named later moves every turn of it to another channel group.
    quiet = next(c for c in Conversation.objects.filter(channel="") if c.turns.filter(timestamp__gt=window.since).exists())
    marks = StaleHour.objects.count()
    Conversation.objects.filter(pk=quiet.pk).update(channel="slack")
    hours = {hour_of(t) for t in quiet.turns.values_list("timestamp", flat=True)}
    # The conversation trigger (migration review 0008, row-level since 0009) marks each hour of its turns.
    assert StaleHour.objects.count() - marks == len(hours)
    # ... and only when the channel changes: every summary update passes through it.
    Conversation.objects.filter(pk=quiet.pk).update(channel="slack", turn_count=F("turn_count"))
    assert StaleHour.objects.count() - marks == len(hours)

    changed = every_breakdown(None, window)
    live = {by: live_breakdown(chatbot_ids=None, window=window, by=by) for by in BREAKDOWNS}
    assert changed == live
    releases = {row["label"] for row in changed["release"]["rows"]}
    assert {"2.5", "2.6"} <= releases
    assert "slack" in {row["label"] for row in changed["channel"]["rows"]}

    hourly_stats_refresh(now=now)
    assert not StaleHour.objects.filter(hour__lt=hour_of(now)).exists()
    assert every_breakdown(None, window) == changed


def test_the_rollup_covers_every_breakdown_but_chatbot():
    assert set(BREAKDOWNS) == {"chatbot", *DIMENSIONS} == {"chatbot", "model", "intent", "channel", "release"}
