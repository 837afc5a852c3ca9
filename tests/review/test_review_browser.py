"""A reviewer works a filtered, riskiest-first queue in real Chromium with the keyboard only."""

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from apps.conversations.models import Conversation, Turn
from apps.evaluations.models import Evaluation
from tests.factories import make_conversation, make_turn
from tests.support.browser import browser_login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
QUEUE = "/admin/review/flaggedconversation/"


@pytest.fixture
def queue(chatbot, other_chatbot):
    """Six open items of `chatbot` (risk 90 … 40), three of another chatbot in between, and a
    closed one at the top that the open queue must skip."""
    chatbot.review_labels = ["wrong price", "tone"]
    chatbot.risk_threshold = 70
    chatbot.save()
    now = timezone.now()
    made = {}
    rows = [(chatbot, 90), (other_chatbot, 85), (chatbot, 80), (other_chatbot, 75), (chatbot, 70), (chatbot, 60),
            (other_chatbot, 65), (chatbot, 50), (chatbot, 40)]
    for minutes, (bot, risk) in enumerate(rows):
        conversation = make_conversation(bot, external_id=f"{bot.slug}-{risk}", is_flagged=True, flag_reasons=["risk"],
                                         max_risk_score=risk, last_activity_at=now - timedelta(minutes=minutes))
        make_turn(conversation, sequence=1, user_message="Hi", bot_response="Hello!", risk_score=5)
        make_turn(conversation, sequence=2, user_message=f"How much is plan {risk}?",
                  bot_response=f"Plan {risk} is free forever.", risk_score=risk, is_flagged=True, flag_reasons=["risk"],
                  risk_reasons=[{"rule": "Price promise", "points": risk}])
        made[conversation.external_id] = conversation
    make_conversation(chatbot, external_id="shop-closed", is_flagged=True, flag_reasons=["risk"], max_risk_score=99,
                      review_status="resolved")
    return made


def current(page) -> Conversation:
    match = re.search(r"/flaggedconversation/(\d+)/change/", page.url)
    assert match, page.url
    assert "_changelist_filters=" in page.url, page.url
    return Conversation.objects.get(pk=int(match.group(1)))


def press_and_wait(page, key: str) -> None:
    with page.expect_navigation():
        page.keyboard.press(key)


def test_reviewer_walks_five_items_with_the_keyboard(live_server, browser_page, alice, chatbot, queue):
    page = browser_page
    page.set_viewport_size({"width": 1440, "height": 900})
    browser_login(page, live_server, alice)
    client = Client()
    client.force_login(alice)
    riskiest = client.get(QUEUE).context["riskiest_url"].lstrip("?")

    page.goto(f"{live_server.url}{QUEUE}?chatbot={chatbot.pk}&{riskiest}")
    assert page.title().startswith("Review queue")
    assert page.evaluate("document.scrollingElement.scrollWidth <= document.scrollingElement.clientWidth"), page.evaluate(
        "[document.scrollingElement.scrollWidth, document.scrollingElement.clientWidth]")
    # Nor inside the list: every column is visible beside the filters.
    assert page.evaluate("(() => { const r = document.querySelector('#changelist .results');"
                         " return r.scrollWidth <= r.clientWidth; })()"), page.evaluate(
        "(() => { const r = document.querySelector('#changelist .results'); return [r.scrollWidth, r.clientWidth,"
        " [...r.querySelectorAll('thead th')].map(th => th.className + ':' + Math.round(th.getBoundingClientRect().width))]; })()")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 6
    assert "below this chatbot's threshold 70" in rows.nth(3).inner_text()
    assert "Price promise" in rows.first.inner_text() and "Plan 90 is free forever." in rows.first.inner_text()

    page.keyboard.press("j")
    press_and_wait(page, "Enter")
    visited = [current(page).external_id]
    # The flagged turn is the one in focus, scrolled to and highlighted.
    worst = Turn.objects.get(conversation=current(page), sequence=2)
    assert page.locator(f"#turn-{worst.pk}.cm-focus.cm-current").count() == 1

    # 1. Scores and a label on the flagged turn: s, the criteria, hallucination, a label, Ctrl+Enter.
    page.keyboard.press("s")
    for value in ("3", "5", "7", "4", "9"):
        page.keyboard.type(value)
        page.keyboard.press("Tab")
    page.keyboard.press("y")  # the hallucination select: "yes"
    page.keyboard.press("Tab")
    page.keyboard.press("Space")  # the first label, "wrong price"
    with page.expect_navigation():
        page.keyboard.press("Control+Enter")
    mine = Evaluation.objects.get(evaluator="human", reviewer=alice, turn=worst)
    assert (mine.accuracy, mine.relevance, mine.clarity, mine.helpfulness, mine.safety) == (3, 5, 7, 4, 9)
    assert (mine.hallucination, mine.labels) == (True, ["wrong price"])
    assert page.locator(f'#turn-{worst.pk} .cm-human-evaluation[data-reviewer="alice"]').inner_text().count("wrong price") == 1
    assert current(page).external_id == visited[0]

    # 2. Next item; flag its flagged turn by hand with a reason.
    press_and_wait(page, "j")
    visited.append(current(page).external_id)
    page.keyboard.press("f")
    page.keyboard.type("quotes a price we never had")
    press_and_wait(page, "Enter")
    flagged = Turn.objects.get(conversation=current(page), sequence=2)
    assert "manual" in flagged.flag_reasons
    assert "quotes a price we never had" in page.locator("#review-history").inner_text()

    # 3. Next; write the corrected answer, then resolve (and open the next item).
    press_and_wait(page, "j")
    visited.append(current(page).external_id)
    page.keyboard.press("c")
    page.keyboard.press("Control+a")
    page.keyboard.type("Plan 70 costs $7 a month.")
    with page.expect_navigation():
        page.keyboard.press("Control+Enter")
    corrected = Turn.objects.get(conversation=current(page), sequence=2)
    assert corrected.corrected_answer == "Plan 70 costs $7 a month."
    assert page.locator(f"#corrected-{corrected.pk}").inner_text().endswith("Plan 70 costs $7 a month.")
    press_and_wait(page, "r")
    assert Conversation.objects.get(pk=corrected.conversation_id).review_status == "resolved"
    visited.append(current(page).external_id)

    # 4. False positive, then the next item opens.
    press_and_wait(page, "x")
    assert Conversation.objects.get(external_id=visited[-1]).review_status == "false_positive"
    visited.append(current(page).external_id)

    # Every "next" stayed inside the chatbot filter and the riskiest-first order.
    assert visited == ["shop-90", "shop-80", "shop-70", "shop-60", "shop-50"]
    # And the way back is the filtered, ordered list.
    press_and_wait(page, "u")
    assert f"chatbot={chatbot.pk}" in page.url and riskiest.split("=")[1] in page.url
    assert page.errors == []


def test_dashboard_panels_keep_their_width_with_alerts_and_clusters(live_server, browser_page, alice, chatbot):
    """Long alert names and cluster keywords once squeezed the review-queue panel to ~70 px
    ("In_review" one letter per line)."""
    from apps.alerts.models import AlertEvent, AlertRule
    from apps.clustering.models import Cluster, ClusterRun

    now = timezone.now()
    make_conversation(chatbot, external_id="c-1", is_flagged=True, review_status="in_review")
    rule = AlertRule.objects.create(name="Thumbs-down rate above fifteen percent over the whole week, all chatbots",
                                    metric="thumbs_down_rate", threshold=15)
    AlertEvent.objects.create(rule=rule, status="firing", metric="thumbs_down_rate", value=19.43, threshold=15,
                              started_at=now)
    run = ClusterRun.objects.create(chatbot=chatbot, status="done", window_start=now, window_end=now, backend="tfidf")
    Cluster.objects.create(run=run, index=0, label="refund, order, international-shipping-delays", size=7, share=0.7,
                           keywords=["refund", "order", "internationalshippingdelaysandcustoms", "tracking"])
    page = browser_page
    page.set_viewport_size({"width": 1440, "height": 900})
    browser_login(page, live_server, alice)
    page.goto(f"{live_server.url}/admin/")
    widths = page.evaluate("[...document.querySelectorAll('.cm-panels > .module')].map(m => m.getBoundingClientRect().width)")
    # Three panels (queue, alerts, clusters), then three (new themes, engagement, judge–human agreement).
    assert len(widths) == 6 and min(widths) > 380, widths
    label = page.locator("#review-counts th a", has_text="In review")
    assert label.count() == 1 and label.bounding_box()["height"] < 30
    assert "In_review" not in page.content()
    assert "Thumbs-down rate 19.4 %, threshold 15.0 %" in page.locator("#open-alerts").inner_text()
    assert page.evaluate("document.scrollingElement.scrollWidth <= document.scrollingElement.clientWidth")
    assert page.errors == []
