"""Each metric on crafted turns: turns in the window count, turns outside it do not."""

from datetime import timedelta
from decimal import Decimal

import pytest

from apps.alerts.selectors import metric_compute
from tests.factories import make_conversation, make_turn

WINDOW = timedelta(minutes=10)


@pytest.fixture
def crafted(chatbot, other_chatbot, now):
    conversation = make_conversation(chatbot)
    inside = now - timedelta(minutes=5)
    common = {"conversation": conversation, "timestamp": inside}
    make_turn(latency_ms=100, has_error=True, fallback_used=True, thumbs_down=1, judge_overall=2.0,
              judge_hallucination=True, is_flagged=True, total_cost_usd=Decimal("0.10"), **common)
    make_turn(latency_ms=200, thumbs_up=1, judge_overall=8.0, judge_hallucination=False,
              total_cost_usd=Decimal("0.20"), **common)
    make_turn(latency_ms=4000, has_error=True, total_cost_usd=Decimal("0.30"), **common)
    make_turn(latency_ms=None, fallback_used=True, thumbs_down=1, judge_overall=6.0, judge_hallucination=False,
              is_flagged=True, **common)
    # Outside the window: older than it, exactly on its start (exclusive), and in the future.
    bad = {"has_error": True, "fallback_used": True, "latency_ms": 10000, "thumbs_down": 1, "judge_overall": 0.0,
           "judge_hallucination": True, "is_flagged": True, "total_cost_usd": Decimal("5")}
    for when in (now - timedelta(minutes=20), now - WINDOW, now + timedelta(minutes=1)):
        make_turn(conversation=conversation, timestamp=when, **bad)
    # Another chatbot inside the window: only rules for all chatbots see it.
    make_turn(chatbot=other_chatbot, timestamp=inside, latency_ms=300, total_cost_usd=Decimal("1"))
    return chatbot


@pytest.mark.parametrize(
    ("metric", "expected", "samples"),
    [
        ("turn_volume", 4, 4),
        ("error_rate", 50.0, 4),
        ("fallback_rate", 50.0, 4),
        ("fallback_count", 2, 4),
        # percentile_cont over [100, 200, 4000]: position 0.95 × 2 = 1.9 → 200 + 0.9 × 3800, read
        # from the latency histogram (the catalogue's definition): within 1 %
        ("latency_p95", 3620.0, 3),
        ("slow_share", 100 / 3, 3),
        ("thumbs_down_rate", 200 / 3, 3),
        ("judge_average", 16 / 3, 3),
        ("hallucination_rate", 100 / 3, 3),
        ("flagged_turns", 2, 4),
        ("cost_usd", 0.6, 4),
    ],
)
def test_metric_on_one_chatbot(crafted, now, metric, expected, samples):
    result = metric_compute(metric=metric, chatbot_id=crafted.pk, since=now - WINDOW, until=now, slow_ms=3000)
    # Rates and averages are rounded to 4 decimals, percentiles within 1 % (the catalogue's precision).
    assert result.value == pytest.approx(expected, rel=0.01 if metric.startswith("latency") else 1e-5)
    assert result.sample_size == samples


@pytest.mark.parametrize(
    ("metric", "expected", "samples"),
    [("turn_volume", 5, 5), ("error_rate", 40.0, 5), ("cost_usd", 1.6, 5), ("slow_share", 25.0, 4)],
)
def test_metric_over_all_chatbots(crafted, now, metric, expected, samples):
    result = metric_compute(metric=metric, chatbot_id=None, since=now - WINDOW, until=now, slow_ms=3000)
    assert result.value == pytest.approx(expected)
    assert result.sample_size == samples


def test_slow_share_uses_the_rules_threshold(crafted, now):
    result = metric_compute(metric="slow_share", chatbot_id=crafted.pk, since=now - WINDOW, until=now, slow_ms=150)
    assert result.value == pytest.approx(200 / 3)


@pytest.mark.parametrize("metric", ["error_rate", "latency_p95", "thumbs_down_rate", "judge_average", "hallucination_rate"])
def test_rates_and_averages_have_no_value_without_turns(chatbot, now, metric):
    result = metric_compute(metric=metric, chatbot_id=chatbot.pk, since=now - WINDOW, until=now)
    assert result.value is None
    assert result.sample_size == 0


@pytest.mark.parametrize("metric", ["turn_volume", "fallback_count", "flagged_turns", "cost_usd"])
def test_totals_are_zero_without_turns(chatbot, now, metric):
    result = metric_compute(metric=metric, chatbot_id=chatbot.pk, since=now - WINDOW, until=now)
    assert result.value == 0


def test_p95_of_one_turn_is_its_latency(chatbot, now):
    make_turn(chatbot=chatbot, timestamp=now - timedelta(minutes=1), latency_ms=777)
    result = metric_compute(metric="latency_p95", chatbot_id=chatbot.pk, since=now - WINDOW, until=now)
    assert result.value == pytest.approx(777, rel=0.01)


def test_each_metric_is_one_query(crafted, now, django_assert_max_num_queries):
    for metric in ("error_rate", "fallback_rate", "slow_share", "thumbs_down_rate", "judge_average",
                   "hallucination_rate", "flagged_turns", "cost_usd", "turn_volume", "fallback_count"):
        with django_assert_max_num_queries(1):
            metric_compute(metric=metric, chatbot_id=crafted.pk, since=now - WINDOW, until=now)
    # p95: one grouped query over the latency histogram's buckets, on every database.
    with django_assert_max_num_queries(1):
        metric_compute(metric="latency_p95", chatbot_id=crafted.pk, since=now - WINDOW, until=now)


def test_unknown_metric_is_an_error(chatbot, now):
    with pytest.raises(ValueError, match="unknown metric"):
        metric_compute(metric="bogus", chatbot_id=chatbot.pk, since=now - WINDOW, until=now)
