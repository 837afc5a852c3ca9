"""`GET /api/v1/stats/timeseries` and `/stats/breakdown`: the dashboard's figures over the API,
per period and per group, equal to grouping the turns by hand; live and from the rollups."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.conversations.models import Turn
from apps.review.rollup import hourly_stats_refresh
from apps.review.selectors import Window, stats_breakdown, turn_figures
from apps.scores.models import Score
from tests.factories import make_conversation, make_turn

pytestmark = pytest.mark.django_db


@pytest.fixture
def now():
    return (timezone.now() - timedelta(hours=1)).replace(minute=30, second=0, microsecond=0)


@pytest.fixture
def turns(chatbot, other_chatbot, now):
    for day in range(4):
        for index, (bot, release) in enumerate([(chatbot, "2.3"), (chatbot, "2.4"), (other_chatbot, "2.4")]):
            conversation = make_conversation(bot, channel="web" if index else "whatsapp", release=release)
            for minute in (5, 20):
                make_turn(conversation, timestamp=now - timedelta(days=day, hours=index + 1, minutes=minute),
                          release=release, model="gpt-4o-mini" if index < 2 else "claude-3-5-haiku",
                          has_error=release == "2.4" and minute == 5 and day % 2 == 0, latency_ms=100 * (index + 1))
            Score.objects.create(chatbot=bot, conversation=conversation, name="converted", data_type="boolean",
                                 value=float(index == 0), timestamp=now - timedelta(days=day, hours=index))


@pytest.mark.parametrize("source", ["live", "rolled up"])
def test_timeseries_per_release_matches_a_count_by_hand(admin_client, turns, now, source):
    if source == "rolled up":
        hourly_stats_refresh()
    response = admin_client.get("/api/v1/stats/timeseries", {"metric": "error_rate", "group_by": "release",
                                                             "hours": 24 * 7, "interval": "day"})
    assert response.status_code == 200, response.content
    data = response.json()
    series = {row["label"]: row["values"] for row in data["series"]}
    assert set(series) == {"2.3", "2.4"} and data["interval"] == "day" and len(data["periods"]) == 8
    # By hand: per local day, release 2.4's errors over its turns.
    days = [timezone.localtime(timezone.datetime.fromisoformat(p)).date() for p in data["periods"]]
    for release, values in series.items():
        for day, value in zip(days, values, strict=True):
            turns_of_day = [t for t in Turn.objects.filter(release=release) if timezone.localtime(t.timestamp).date() == day]
            expected = round(100.0 * sum(t.has_error for t in turns_of_day) / len(turns_of_day), 4) if turns_of_day else None
            assert value == expected, (release, day)


def test_ungrouped_series_are_the_dashboard_trend(admin_client, turns, now):
    window = Window.last(48)
    trend = turn_figures(chatbot_ids=None, window=window)["trend"]
    for metric in ("turn_volume", "error_rate", "latency_p95", "conversion_rate"):
        response = admin_client.get("/api/v1/stats/timeseries", {
            "metric": metric, "since": window.since.isoformat(), "until": window.until.isoformat()})
        assert response.status_code == 200, response.content
        [series] = response.json()["series"]
        assert series["values"] == trend["series"][metric], metric


def test_outcomes_by_chatbot_and_the_breakdown_endpoint(admin_client, chatbot, turns):
    response = admin_client.get("/api/v1/stats/timeseries", {"metric": "conversion_rate", "group_by": "chatbot",
                                                             "hours": 24 * 7, "interval": "day"})
    assert response.status_code == 200, response.content
    data = response.json()
    series = {row["label"]: row["values"] for row in data["series"]}
    days = [timezone.localtime(timezone.datetime.fromisoformat(p)).date() for p in data["periods"]]
    expected = []
    for day in days:  # by hand: the chatbot's conversions over its converted outcomes of that day
        values = [s.value for s in Score.objects.filter(chatbot=chatbot) if timezone.localtime(s.timestamp).date() == day]
        expected.append(round(100.0 * sum(values) / len(values), 4) if values else None)
    assert series[chatbot.name] == expected and any(v is not None for v in expected)
    breakdown = admin_client.get("/api/v1/stats/breakdown", {"by": "release", "hours": 24 * 7})
    assert breakdown.status_code == 200
    assert breakdown.json() == _json(stats_breakdown(chatbot_ids=None, window=Window.last(24 * 7), by="release"))


def _json(value):
    import json

    from rest_framework.utils.encoders import JSONEncoder

    return json.loads(json.dumps(value, cls=JSONEncoder))


@pytest.mark.parametrize("query", [
    {"metric": "latency_p95", "group_by": "model"},  # percentiles are not kept per group
    {"metric": "conversion_rate", "group_by": "model"},  # outcomes are per conversation
    {"metric": "slow_share"},  # a rule parameter, not a dashboard metric
    {"metric": "nonsense"},
    {"metric": "error_rate", "interval": "hour", "hours": 24 * 40},
    {"metric": "error_rate", "group_by": "version"},
    {"metric": "error_rate", "breakdown": "model"},
])
def test_what_the_figures_cannot_answer_is_a_400(admin_client, turns, query):
    response = admin_client.get("/api/v1/stats/timeseries", query)
    assert response.status_code == 400, response.content
