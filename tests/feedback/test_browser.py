"""The widget in a real browser: headless Debian Chromium driven by Playwright, against a live
test server. Fails (not skips) in CI when Chromium is missing."""

import pytest

from apps.conversations.models import Turn
from apps.feedback.models import Feedback
from tests.factories import make_conversation, make_turn

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

@pytest.fixture
def demo_turn(chatbot, settings):
    settings.FEEDBACK_DEMO_PUBLIC = True
    conversation = make_conversation(chatbot, external_id="demo-1", channel="website")
    return make_turn(
        conversation,
        external_id="demo-t1",
        user_message="Can I return shoes after 60 days?",
        bot_response="Sure, returns are accepted for a year.",
    )


def test_thumbs_down_with_comment_from_the_demo_page(live_server, browser_page, demo_turn):
    page = browser_page
    page.goto(f"{live_server.url}/demo/widget/")
    widget = page.locator(f'li[data-turn="{demo_turn.pk}"] .chatmon-feedback')
    down = widget.get_by_role("button", name="Not helpful")
    assert down.get_attribute("aria-pressed") == "false"

    down.click()
    comment = widget.get_by_label("What went wrong? (optional)")
    comment.wait_for(state="visible")
    assert down.get_attribute("aria-pressed") == "true"
    # The comment box takes focus so a keyboard user can type at once.
    assert page.evaluate("document.activeElement.tagName") == "TEXTAREA"
    comment.fill("Our policy is 30 days <b>not</b> a year")
    widget.get_by_role("button", name="Send").click()
    widget.get_by_text("Thanks, your comment was sent.").wait_for()

    feedback = Feedback.objects.get(turn=demo_turn)
    assert feedback.rating == "down"
    assert feedback.comment == "Our policy is 30 days <b>not</b> a year"
    assert feedback.source == "widget"
    turn = Turn.objects.get(pk=demo_turn.pk)
    assert (turn.thumbs_down, turn.is_flagged, turn.flag_reasons) == (1, True, ["thumbs_down"])
    assert (
        widget.get_by_role("button", name="Helpful", exact=True).get_attribute("aria-pressed")
        == "false"
    )
    assert page.errors == []

    # A reload shows the vote already chosen.
    page.reload()
    widget = page.locator(f'li[data-turn="{demo_turn.pk}"] .chatmon-feedback')
    assert widget.get_by_role("button", name="Not helpful").get_attribute("aria-pressed") == "true"


def test_keyboard_only_vote(live_server, browser_page, demo_turn):
    page = browser_page
    page.goto(f"{live_server.url}/demo/widget/")
    widget = page.locator(f'li[data-turn="{demo_turn.pk}"] .chatmon-feedback')

    widget.get_by_role("button", name="Helpful", exact=True).focus()
    page.keyboard.press("Enter")
    widget.get_by_text("Thanks for your feedback!").wait_for()

    assert Feedback.objects.get(turn=demo_turn).rating == "up"
    assert (
        widget.get_by_role("button", name="Helpful", exact=True).get_attribute("aria-pressed")
        == "true"
    )
    # No comment box for a thumbs-up.
    assert widget.locator("textarea").is_hidden()


def test_endpoint_down_shows_an_error_and_retry_recovers(live_server, browser_page, demo_turn):
    page = browser_page
    page.goto(f"{live_server.url}/demo/widget/")
    widget = page.locator(f'li[data-turn="{demo_turn.pk}"] .chatmon-feedback')
    # The feedback endpoint is unreachable (connection refused at the network layer).
    page.route("**/api/v1/feedback", lambda route: route.abort("connectionrefused"))

    widget.get_by_role("button", name="Helpful", exact=True).click()
    alert = widget.get_by_role("alert")
    alert.wait_for(state="visible")

    assert "Couldn't send your feedback" in alert.inner_text()
    assert (
        widget.get_by_role("button", name="Helpful", exact=True).get_attribute("aria-pressed")
        == "false"
    )
    assert not Feedback.objects.exists()
    # The host page kept working: no uncaught exception escaped the widget.
    assert not [e for e in page.errors if "net::ERR" not in e and "Failed to load" not in e]

    page.unroute("**/api/v1/feedback")
    alert.get_by_role("button", name="Retry").click()
    widget.get_by_text("Thanks for your feedback!").wait_for()
    assert alert.is_hidden()
    assert Feedback.objects.get(turn=demo_turn).rating == "up"


def test_server_refusal_is_shown_without_retry(live_server, browser_page, demo_turn):
    page = browser_page
    page.goto(f"{live_server.url}/demo/widget/")
    widget = page.locator(f'li[data-turn="{demo_turn.pk}"] .chatmon-feedback')
    Turn.objects.filter(pk=demo_turn.pk).delete()  # gone (retention/erasure) since the render

    widget.get_by_role("button", name="Helpful", exact=True).click()
    alert = widget.get_by_role("alert")
    alert.wait_for(state="visible")

    assert "isn't available" in alert.inner_text()
    assert alert.get_by_role("button", name="Retry").is_hidden()


def test_empty_demo_page_says_how_to_load_data(live_server, browser_page, settings, db):
    settings.FEEDBACK_DEMO_PUBLIC = True
    page = browser_page
    page.goto(f"{live_server.url}/demo/widget/")

    assert "make demo" in page.get_by_role("status").inner_text()
