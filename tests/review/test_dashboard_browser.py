"""The dashboard in real Chromium at 1440×900: charts, trend cards and the breakdown table render
without console errors or horizontal scroll, and a breakdown bar opens exactly its turns."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.conversations.metrics_catalogue import OUTCOME_METRICS, TREND_METRICS
from tests.factories import make_conversation, make_turn
from tests.support.browser import browser_login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def turns(chatbot, other_chatbot):
    now = timezone.now()
    for day in range(20):
        for index, (bot, model) in enumerate([(chatbot, "gpt-4o-mini"), (chatbot, "claude-3-5-haiku"),
                                              (other_chatbot, "gpt-4o-mini")]):
            conversation = make_conversation(bot, channel="web", last_activity_at=now - timedelta(days=day))
            make_turn(conversation, timestamp=now - timedelta(days=day, hours=index), model=model, latency_ms=300 + day,
                      has_error=day % 4 == 0 and index == 1, judge_overall=7.0, total_cost_usd=Decimal("0.01"),
                      release="2.4" if day < 10 else "2.3")


@pytest.mark.parametrize("range_key", ["24h", "30d"])
def test_dashboard_renders_without_errors_or_horizontal_scroll(browser_page, live_server, alice, turns, range_key):
    page = browser_page
    page.set_viewport_size({"width": 1440, "height": 900})
    page.route("**/favicon.ico", lambda route: route.fulfill(status=204))  # no favicon yet (another branch)
    browser_login(page, live_server, alice)
    page.goto(f"{live_server.url}/admin/?range={range_key}")
    page.wait_for_function("document.querySelectorAll('canvas').length > 0 && window.Chart !== undefined")
    page.wait_for_timeout(300)
    assert page.errors == []
    drawn = page.evaluate("Array.from(document.querySelectorAll('canvas')).filter(c => window.Chart.getChart(c)).length")
    assert drawn == page.locator("canvas").count() >= 5 + 13  # 5 charts and a sparkline per trend card
    assert page.locator("#trend-cards .cm-trend").count() == len(TREND_METRICS) - len(OUTCOME_METRICS)
    assert page.locator("#outcome-cards .cm-trend").count() == 5
    # The engagement panel is fetched after the page: it fills in with the window's figures.
    page.wait_for_selector("#engagement .cm-engagement:not([hidden])")
    assert page.locator("#turns-per-conversation tbody tr").count() == 6
    assert page.locator("#breakdown-table tbody tr").count() == 2
    width = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert width[0] <= width[1], "horizontal scroll"
    cards = page.locator("#trend-cards").bounding_box()
    assert cards["width"] > 1200  # the full width, not Django's 600 px index column
    assert not page.locator("#app-list").get_attribute("open")  # the app list is folded away
    if range_key == "30d":
        bars = page.evaluate("window.Chart.getChart(document.getElementById('chart-volume')).data.labels.length")
        assert bars in (30, 31)  # daily bars, not 720 hourly ones


def test_a_breakdown_bar_opens_its_turns(browser_page, live_server, alice, turns):
    page = browser_page
    page.set_viewport_size({"width": 1440, "height": 900})
    page.route("**/favicon.ico", lambda route: route.fulfill(status=204))  # no favicon yet (another branch)
    browser_login(page, live_server, alice)
    page.goto(f"{live_server.url}/admin/?range=30d&by=model")
    row = page.locator("#breakdown-table tbody tr", has_text="claude-3-5-haiku")
    assert row.locator("td").nth(0).inner_text().strip() == "20"
    # Sorting by a column header reorders the rows.
    page.locator("#breakdown-table thead th", has_text="Turns").click()
    with page.expect_navigation():
        row.locator("td").nth(1).locator("a").click()  # the error-rate bar of that model
    assert "/admin/conversations/turn/" in page.url
    assert "model=claude-3-5-haiku" in page.url and "has_error__exact=1" in page.url
    assert page.locator("#result_list tbody tr").count() == 5  # days 0, 4, 8, 12, 16
    assert page.errors == []


def test_a_release_bar_opens_its_turns(browser_page, live_server, alice, turns):
    page = browser_page
    page.set_viewport_size({"width": 1440, "height": 900})
    page.route("**/favicon.ico", lambda route: route.fulfill(status=204))
    browser_login(page, live_server, alice)
    page.goto(f"{live_server.url}/admin/?range=30d&by=release")
    row = page.locator("#breakdown-table tbody tr", has_text="2.4")
    assert row.locator("td").nth(0).inner_text().strip() == "30"  # 10 days × 3 turns
    with page.expect_navigation():
        row.locator("td").nth(1).locator("a").click()  # its error-rate bar
    assert "/admin/conversations/turn/" in page.url
    assert "release=2.4" in page.url and "has_error__exact=1" in page.url
    assert page.locator("#result_list tbody tr").count() == 3  # days 0, 4, 8
    assert page.errors == []
