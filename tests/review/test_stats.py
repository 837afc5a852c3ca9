"""Dashboard and stats figures against values worked out by hand on the crafted dataset."""

import pytest

from apps.review.models import HourlyTurnStats
from apps.review.rollup import LLM_CALL_ACCURACY, hourly_stats_refresh
from apps.review.selectors import stats_llm_calls, stats_overview

pytestmark = pytest.mark.django_db

# Turn latency percentiles come from a log-bucket histogram: within 1 % of percentile_cont.
within_1_percent = lambda value: pytest.approx(value, rel=0.01)  # noqa: E731
# LLM-call durations: the same method at LLM_CALL_ACCURACY.
within_call_accuracy = lambda value: pytest.approx(value, rel=LLM_CALL_ACCURACY)  # noqa: E731


@pytest.fixture(autouse=True, params=["live", "rolled up"])
def figures_source(request):
    """Every figure is checked twice: grouped from the turns, and read from the hourly rollup
    (the past hours summed by the refresh; the current and first partial hours stay live)."""
    if request.param == "rolled up":
        dataset = request.getfixturevalue("dataset") if "dataset" in request.fixturenames else None
        request.getfixturevalue("db")
        hourly_stats_refresh()
        assert HourlyTurnStats.objects.exists() == (dataset is not None)
    return request.param


def test_overview_for_one_chatbot_matches_hand_computed_values(admin_client, dataset, chatbot):
    response = admin_client.get("/api/v1/stats/overview", {"hours": 24, "chatbot": chatbot.pk})
    assert response.status_code == 200
    body = response.json()
    # In the last 24 h: t1..t4 of the shop bot (t_old is 30 h old, t_other is another bot).
    assert body["totals"] == {
        "conversations": 2, "flagged_conversations": 1, "turns": 4, "tokens": 100, "cost_usd": 0.1,
        "thumbs_up": 1, "thumbs_down": 1, "rated_turns": 2, "errors": 1, "fallbacks": 1,
        "flagged_turns": 1, "judged_turns": 2, "hallucination_checked_turns": 2,
    }
    # Rates are percentages (0–100), as in the metric catalogue and alert rules.
    assert body["rates"] == {
        "error_rate": 25.0, "fallback_rate": 25.0, "thumbs_down_rate": 50.0, "flagged_rate": 25.0,
        "hallucination_rate": 50.0,
    }
    assert body["metrics"]["error_rate"]["value"] == 25.0 and body["metrics"]["error_rate"]["sample_size"] == 4
    # Latencies 100, 200, 300 (t4 has none): p50 = 200; p95 = 200 + 0.9 × (300 − 200) = 290.
    assert body["latency_ms"] == {"p50": within_1_percent(200), "p95": within_1_percent(290), "average": 200.0}
    assert body["judge"] == {"average": 5.0, "judged_turns": 2}
    assert body["risk_distribution"] == {"low": 1, "medium": 1, "high": 1, "critical": 1}
    assert sum(day["cost_usd"] for day in body["by_day"]) == pytest.approx(0.1)
    assert sum(hour["turns"] for hour in body["by_hour"]) == 4
    assert len(body["by_hour"]) in (24, 25)  # every hour of the window, zero-filled
    assert body["review_status_counts"] == {"new": 1, "in_review": 0, "resolved": 0, "false_positive": 0}


def test_overview_by_slug_and_longer_window(admin_client, dataset, chatbot):
    body = admin_client.get("/api/v1/stats/overview", {"hours": 24 * 7, "chatbot": chatbot.slug}).json()
    assert body["totals"]["turns"] == 5
    assert body["totals"]["cost_usd"] == 1.1
    assert body["totals"]["conversations"] == 3
    # 100, 200, 300, 1000: p50 = 200 + 0.5 × 100 = 250; p95 at rank 2.85 = 300 + 0.85 × 700 = 895.
    assert body["latency_ms"]["p50"] == within_1_percent(250)
    assert body["latency_ms"]["p95"] == within_1_percent(895)


def test_overview_all_chatbots_for_superuser(admin_client, dataset):
    body = admin_client.get("/api/v1/stats/overview").json()
    assert body["window"]["hours"] == 24
    assert body["totals"]["turns"] == 5
    assert body["totals"]["cost_usd"] == 5.1
    # 100, 200, 300, 5000: p50 = 250; p95 at rank 2.85 = 300 + 0.85 × 4700 = 4295.
    assert body["latency_ms"] == {"p50": within_1_percent(250), "p95": within_1_percent(4295), "average": 1400.0}
    assert body["review_status_counts"]["new"] == 2


def test_reviewer_overview_covers_only_assigned_chatbots(bob_client, dataset):
    body = bob_client.get("/api/v1/stats/overview").json()
    assert body["totals"]["turns"] == 4  # not other_chatbot's turn
    assert body["review_status_counts"]["new"] == 1


@pytest.mark.parametrize("query", [{"hours": "abc"}, {"hours": 0}, {"hours": 100000}])
def test_overview_rejects_bad_hours(admin_client, query):
    response = admin_client.get("/api/v1/stats/overview", query)
    assert response.status_code == 400
    assert "hours" in response.json()


def test_overview_unknown_chatbot_is_404(admin_client, db):
    assert admin_client.get("/api/v1/stats/overview", {"chatbot": "nope"}).status_code == 404
    assert admin_client.get("/api/v1/stats/overview", {"chatbot": "999999"}).status_code == 404


def test_overview_with_no_data(admin_client, chatbot):
    body = admin_client.get("/api/v1/stats/overview", {"chatbot": chatbot.pk}).json()
    assert body["totals"]["turns"] == 0
    assert body["rates"]["error_rate"] is None
    assert body["latency_ms"] == {"p50": None, "p95": None, "average": None}
    assert body["judge"]["average"] is None


def test_llm_call_stats_match_hand_computed_values(admin_client, dataset, chatbot):
    body = admin_client.get("/api/v1/stats/llm-calls", {"hours": 24, "chatbot": chatbot.pk}).json()
    assert body["totals"]["calls"] == 3
    assert body["totals"]["cost_usd"] == 0.0021
    assert body["totals"]["errors"] == 1
    groups = {(g["model"], g["function_name"]): g for g in body["groups"]}
    answer = groups[("gpt-4o", "answer")]
    assert answer["calls"] == 2
    assert answer["input_tokens"] == 200 and answer["output_tokens"] == 100 and answer["total_tokens"] == 300
    assert answer["error_rate"] == 0.5
    # Durations 100 and 300: p50 = 200, p95 = 100 + 0.95 × 200 = 290, p99 = 298.
    assert answer["duration_ms"] == {"average": 200.0, "p50": within_call_accuracy(200),
                                     "p95": within_call_accuracy(290), "p99": within_call_accuracy(298)}
    classify = groups[("gpt-4o-mini", "classify")]
    assert classify["calls"] == 1 and classify["error_rate"] == 0.0
    assert classify["duration_ms"]["p95"] == within_call_accuracy(50)
    # 100, 300 and 50 over both groups: p50 = 100.
    assert body["totals"]["duration_ms"]["p50"] == within_call_accuracy(100)
    assert body["totals"]["duration_ms"]["average"] == 150.0
    # Most expensive group first.
    assert body["groups"][0]["model"] == "gpt-4o"


def test_llm_call_stats_filters(admin_client, dataset):
    body = admin_client.get("/api/v1/stats/llm-calls", {"model": "gpt-4o", "function_name": "answer"}).json()
    assert body["filters"] == {"model": "gpt-4o", "function_name": "answer"}
    assert body["totals"]["calls"] == 3  # two of shop + one of the other bot, none older than 24 h
    assert [(g["model"], g["function_name"]) for g in body["groups"]] == [("gpt-4o", "answer")]
    body = admin_client.get("/api/v1/stats/llm-calls", {"model": "nothing"}).json()
    assert body["totals"]["calls"] == 0 and body["groups"] == []
    assert body["totals"]["error_rate"] is None


def test_dashboard_shows_the_same_numbers_as_the_api(admin_client, dataset, chatbot):
    api = admin_client.get("/api/v1/stats/overview", {"hours": 24, "chatbot": chatbot.pk}).json()
    page = admin_client.get("/admin/", {"chatbot": chatbot.pk, "range": "24h"})
    assert page.status_code == 200
    shown = page.context["dashboard"]
    for section in ("totals", "rates", "latency_ms", "judge", "risk_distribution", "review_status_counts"):
        assert shown[section] == api[section], section
    html = page.content.decode()
    cards = {card["name"]: card for card in page.context["dashboard_cards"]}
    assert cards["turn_volume"]["value"] == "4" and cards["error_rate"]["value"] == "25.0 %"
    latency = api["latency_ms"]
    assert latency["p50"] == within_1_percent(200) and latency["p95"] == within_1_percent(290)
    assert cards["latency_p95"]["value"] == f"{latency['p95']:,.0f} ms"
    assert cards["judge_average"]["value"] == "5.00"
    for name in ("turn_volume", "error_rate", "latency_p95", "judge_average"):
        assert f'id="kpi-{name}"' in html and f"<strong>{cards[name]['value']}</strong>" in html
    assert 'id="dashboard-charts"' in html and "vendor/chartjs/chart.umd.min.js" in html
    assert "<script>" not in html.replace('<script type="application/json"', "")  # no inline code


def test_dashboard_ranges_and_bad_input(admin_client, dataset, chatbot):
    seven_days = admin_client.get("/admin/", {"chatbot": chatbot.pk, "range": "7d"})
    assert seven_days.context["dashboard"]["totals"]["turns"] == 5
    assert len(seven_days.context["dashboard"]["by_day"]) in (7, 8)
    bad = admin_client.get("/admin/", {"chatbot": "nope", "range": "1y"})
    assert bad.status_code == 200
    assert bad.context["dashboard_range"] == "24h"
    assert bad.context["dashboard"]["totals"]["turns"] == 5  # falls back to every chatbot


def test_dashboard_lists_open_alerts_and_latest_clusters(admin_client, dataset, chatbot):
    from django.utils import timezone

    from apps.alerts.models import AlertEvent, AlertRule
    from apps.clustering.models import Cluster, ClusterRun

    rule = AlertRule.objects.create(name="Errors up", chatbot=chatbot, metric="error_rate", threshold=0.1)
    AlertEvent.objects.create(rule=rule, chatbot=chatbot, status="firing", metric="error_rate", value=0.25,
                              threshold=0.1, started_at=timezone.now())
    AlertEvent.objects.create(rule=None, chatbot=chatbot, status="resolved", started_at=timezone.now())
    now = timezone.now()
    old_run = ClusterRun.objects.create(chatbot=chatbot, status="done", window_start=now, window_end=now, backend="tfidf")
    Cluster.objects.create(run=old_run, index=0, label="Stale cluster", size=99)
    run = ClusterRun.objects.create(chatbot=chatbot, status="done", window_start=now, window_end=now, backend="tfidf")
    Cluster.objects.create(run=run, index=0, label="Refund delays", size=7, share=0.7, keywords=["refund"])
    Cluster.objects.create(run=run, index=-1, label="Other", size=3, share=0.3, is_noise=True)
    ClusterRun.objects.create(chatbot=chatbot, status="failed", window_start=now, window_end=now, backend="tfidf")

    overview = stats_overview(chatbot_ids=[chatbot.pk], hours=24)
    assert [c["label"] for c in overview["top_clusters"]] == ["Refund delays"]
    assert [e["rule"] for e in overview["open_alerts"]] == ["Errors up"]
    html = admin_client.get("/admin/", {"chatbot": chatbot.pk}).content.decode()
    assert "Refund delays" in html and "Errors up" in html and "Stale cluster" not in html


def test_selectors_direct_call_agrees_with_api(admin_client, dataset):
    direct = stats_llm_calls(chatbot_ids=None, hours=24)
    api = admin_client.get("/api/v1/stats/llm-calls").json()
    assert api["totals"] == direct["totals"]


def test_turn_figures_are_cached_but_review_counts_are_fresh(admin_client, settings, dataset, chatbot):
    from tests.factories import make_turn

    settings.REVIEW_STATS_CACHE_SECONDS = 60
    first = admin_client.get("/api/v1/stats/overview", {"chatbot": chatbot.pk}).json()
    make_turn(dataset.calm)
    admin_client.post(f"/api/v1/conversations/{dataset.flagged.pk}/review/", {"action": "set_status", "status": "resolved"},
                      content_type="application/json")
    second = admin_client.get("/api/v1/stats/overview", {"chatbot": chatbot.pk}).json()
    assert second["totals"] == first["totals"]  # cached for REVIEW_STATS_CACHE_SECONDS
    assert second["review_status_counts"]["resolved"] == 1  # always live
    settings.REVIEW_STATS_CACHE_SECONDS = 0
    live = admin_client.get("/api/v1/stats/overview", {"chatbot": chatbot.pk}).json()
    assert live["totals"]["turns"] == first["totals"]["turns"] + 1
