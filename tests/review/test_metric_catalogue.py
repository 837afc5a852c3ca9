"""One metric, one value: the dashboard selector, the staff stats API and alert rule evaluation
agree on every metric of the catalogue, over seeded random turns, live and from the rollup."""

import random
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.alerts.choices import PERCENT_METRICS, SAMPLED_METRICS, Metric
from apps.alerts.selectors import metric_compute
from apps.conversations.metrics_catalogue import (
    ALERT_METRICS,
    CATALOGUE,
    TREND_METRICS,
    WINDOW_ALERT_METRICS,
    change,
    metric_value,
)
from apps.conversations.models import Turn
from apps.evaluations.models import ConversationEvaluation
from apps.review.rollup import hourly_stats_refresh
from apps.review.selectors import Window, stats_breakdown, turn_figures
from apps.scores.models import Score
from tests.factories import make_conversation, make_turn

# Dashboard totals that stand for the count metrics alerts offer but the dashboard shows as totals.
TOTALS = {"fallback_count": "fallbacks", "flagged_turns": "flagged_turns"}


def _random_turns(seed: int, chatbots: list, now) -> None:
    rng = random.Random(seed)
    conversations = [make_conversation(rng.choice(chatbots), channel=rng.choice(["web", "whatsapp", ""]))
                     for _ in range(12)]
    for _ in range(160):
        conversation = rng.choice(conversations)
        judged = rng.random() < 0.6
        make_turn(
            conversation=conversation,
            timestamp=now - timedelta(minutes=rng.randint(1, 60 * 80)),
            latency_ms=rng.choice([None, 0, rng.randint(1, 20_000), rng.randint(50, 900)]),
            has_error=rng.random() < 0.15,
            fallback_used=rng.random() < 0.1,
            is_flagged=rng.random() < 0.2,
            thumbs_up=int(rng.random() < 0.2),
            thumbs_down=int(rng.random() < 0.15),
            judge_overall=round(rng.uniform(0, 10), 1) if judged else None,
            # A grade does not always assess hallucination: None must not count as "no".
            judge_hallucination=rng.choice([True, False, None]) if judged else None,
            total_cost_usd=Decimal(rng.randint(0, 50_000)) / Decimal(1_000_000),
            total_tokens=rng.randint(0, 4000),
            model=rng.choice(["gpt-4o-mini", "claude-3-5-haiku", ""]),
            intent=rng.choice(["refund", "order_status", ""]),
        )
    # Whole-conversation grades (the conversation judge's metrics), a criterion sometimes left
    # empty: an average is over the grades that scored it.
    for n in range(30):
        conversation = rng.choice(conversations)
        criteria = {name: (None if rng.random() < 0.15 else round(rng.uniform(0, 10), 1))
                    for name in ("goal_completion", "resolution", "user_frustration", "policy_adherence")}
        ConversationEvaluation.objects.create(
            conversation=conversation, chatbot=conversation.chatbot, evaluator="heuristic",
            evaluator_version=f"random-{n}", status=rng.choice(["done", "done", "done", "failed"]),
            overall=round(rng.uniform(0, 10), 1), handoff_needed=rng.random() < 0.3, **criteria,
            completed_at=now - timedelta(minutes=rng.randint(1, 60 * 80)),
        )
    # Outcomes and a custom score, some recorded twice for one conversation (a turn handoff and
    # the conversation's outcome): rates count a conversation once.
    for _ in range(90):
        conversation = rng.choice(conversations)
        name = rng.choice(["converted", "resolved", "handed_off", "csat", "nps", "faithfulness"])
        value = {"csat": rng.randint(1, 5), "nps": rng.randint(0, 10), "faithfulness": round(rng.random(), 3)}.get(
            name, float(rng.random() < 0.4))
        Score.objects.create(chatbot=conversation.chatbot, conversation=conversation, name=name, value=value,
                             data_type="numeric" if name in ("csat", "nps", "faithfulness") else "boolean",
                             timestamp=now - timedelta(minutes=rng.randint(1, 60 * 80)))


def test_alert_metrics_are_the_catalogues():
    assert set(Metric.values) == set(ALERT_METRICS)
    assert {m for m in Metric if CATALOGUE[m].unit == "%"} == PERCENT_METRICS
    assert {m for m in Metric if CATALOGUE[m].sampled} == SAMPLED_METRICS
    for metric in CATALOGUE.values():
        assert metric.label and metric.definition and metric.unit
        assert metric.kind in ("total", "share", "mean", "percentile", "net", "event")


def test_hallucination_rate_is_over_turns_that_assessed_it():
    figures = {"hallucinations": 1, "hallucination_checked": 2, "judged": 10}
    assert metric_value("hallucination_rate", figures) == (50.0, 2)
    assert metric_value("hallucination_rate", {"judged": 3}) == (None, 0)


def test_change_says_whether_it_is_good():
    assert change(12.0, 10.0, False) == {"previous": 10.0, "direction": "up", "percent": 20.0, "good": False}
    assert change(8.0, 10.0, True)["good"] is False
    assert change(5, 5, True) == {"previous": 5, "direction": "flat", "percent": 0.0, "good": None}
    assert change(3, 0, None)["percent"] is None and change(None, 3, True)["direction"] is None


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("source", ["live", "rolled up"])
@pytest.mark.parametrize("hours", [36, 72])
def test_every_metric_has_one_value_everywhere(admin_client, chatbot, other_chatbot, seed, source, hours):
    now = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=7)
    _random_turns(seed, [chatbot, other_chatbot], now)
    window = Window.last(hours, now=now)
    # A turn exactly on the window's start belongs to the period before (windows are (since, until]).
    make_turn(conversation=make_conversation(chatbot), timestamp=window.since, has_error=True, latency_ms=99_999)
    if source == "rolled up":
        hourly_stats_refresh()

    for chatbot_id in (chatbot.pk, None):
        dashboard = turn_figures(chatbot_ids=[chatbot_id] if chatbot_id else None, window=window)
        query = {"since": window.since.isoformat(), "until": window.until.isoformat()}
        if chatbot_id:
            query["chatbot"] = chatbot_id
        response = admin_client.get("/api/v1/stats/overview", query)
        assert response.status_code == 200, response.content
        api = response.json()
        for name in TREND_METRICS:
            assert api["metrics"][name]["value"] == dashboard["metrics"][name]["value"], name
            assert api["metrics"][name]["sample_size"] == dashboard["metrics"][name]["sample_size"], name
        for name in WINDOW_ALERT_METRICS:  # event metrics (themes) have no window value
            if name in ("slow_share", "score_average"):  # a parameter of the rule: not on the dashboard
                continue
            alert = metric_compute(metric=name, chatbot_id=chatbot_id, since=window.since, until=window.until)
            shown = dashboard["totals"][TOTALS[name]] if name in TOTALS else dashboard["metrics"][name]["value"]
            assert alert.value == shown, (name, chatbot_id, source)
            if name not in TOTALS:
                assert alert.sample_size == dashboard["metrics"][name]["sample_size"], name
        expected = Turn.objects.filter(timestamp__gt=window.since, timestamp__lte=window.until)
        if chatbot_id:
            expected = expected.filter(chatbot_id=chatbot_id)
        assert dashboard["metrics"]["turn_volume"]["value"] == expected.count()


@pytest.mark.parametrize("seed", [4, 5])
def test_outcome_metrics_match_a_count_by_hand(chatbot, other_chatbot, seed):
    now = timezone.now().replace(second=0, microsecond=0)
    _random_turns(seed, [chatbot, other_chatbot], now)
    window = Window.last(72, now=now)
    scores = list(Score.objects.filter(timestamp__gt=window.since, timestamp__lte=window.until))

    def conversations(name, value=None):
        return len({s.conversation_id for s in scores if s.name == name and (value is None or s.value == value)})

    def rate(name):
        whole = conversations(name)
        return (round(100.0 * conversations(name, 1.0) / whole, 4) if whole else None), whole

    csat = [s.value for s in scores if s.name == "csat"]
    nps = [s.value for s in scores if s.name == "nps"]
    faithfulness = [s.value for s in scores if s.name == "faithfulness"]
    expected = {
        "conversion_rate": rate("converted"), "resolution_rate": rate("resolved"), "handoff_rate": rate("handed_off"),
        "csat_average": (round(sum(csat) / len(csat), 4) if csat else None, len(csat)),
        "nps": (round(100.0 * (sum(v >= 9 for v in nps) - sum(v <= 6 for v in nps)) / len(nps), 1) if nps else None,
                len(nps)),
    }
    dashboard = turn_figures(chatbot_ids=None, window=window)["metrics"]
    for name, (value, sample) in expected.items():
        assert (dashboard[name]["value"], dashboard[name]["sample_size"]) == (value, sample), name
        alert = metric_compute(metric=name, chatbot_id=None, since=window.since, until=window.until)
        assert (alert.value, alert.sample_size) == (value, sample), name
    # Breakdown rows by chatbot carry the same outcome values as an alert rule of that chatbot.
    for row in stats_breakdown(chatbot_ids=None, window=window, by="chatbot")["rows"]:
        for name in expected:
            alert = metric_compute(metric=name, chatbot_id=row["key"], since=window.since, until=window.until)
            assert row[name] == alert.value, (name, row["label"])
    assert all(row["conversion_rate"] is None for row in stats_breakdown(chatbot_ids=None, window=window, by="model")["rows"])
    average = metric_compute(metric="score_average", chatbot_id=None, since=window.since, until=window.until,
                             score_name="faithfulness")
    assert average.sample_size == len(faithfulness)
    assert average.value == pytest.approx(sum(faithfulness) / len(faithfulness), abs=1e-4)
    with pytest.raises(ValueError, match="score name"):
        metric_compute(metric="score_average", chatbot_id=None, since=window.since, until=window.until)
