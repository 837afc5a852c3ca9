"""/demo/widget/: a mock chat of recent turns with a live widget each."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.feedback.services import feedback_submit, feedback_voter_key
from apps.feedback.tokens import feedback_token_parse
from tests.factories import make_conversation, make_turn

pytestmark = pytest.mark.django_db

URL = "/demo/widget/"


@pytest.fixture
def public(settings):
    settings.FEEDBACK_DEMO_PUBLIC = True


def _tokens(content: str) -> list[str]:
    return re.findall(r'data-token="([^"]+)"', content)


def test_shows_recent_turns_with_fresh_tokens(client, public, turn):
    response = client.get(URL)

    assert response.status_code == 200
    content = response.content.decode()
    assert "Your order ships tomorrow." in content
    tokens = _tokens(content)
    assert len(tokens) == 1
    assert feedback_token_parse(tokens[0]).turn_id == turn.pk
    assert 'data-endpoint="/api/v1/feedback"' in content
    assert response["Cache-Control"] == "no-store"


def test_no_inline_script_under_the_sites_csp(client, public, turn):
    response = client.get(URL)

    assert "script-src 'self'" in response["Content-Security-Policy"]
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", response.content.decode(), re.S)
    assert scripts and all('src="' in attrs and body.strip() == "" for attrs, body in scripts)


def test_transcript_text_is_escaped(client, public, conversation):
    make_turn(conversation, user_message="<img src=x onerror=alert(1)>", bot_response="<b>hi</b>")

    content = client.get(URL).content.decode()

    assert "<img src=x" not in content and "&lt;img src=x" in content
    assert "<b>hi</b>" not in content


def test_shows_the_existing_widget_vote(client, public, turn):
    feedback_submit(turn_id=turn.pk, voter_key=feedback_voter_key(turn=turn), rating="down")

    assert 'data-rating="down"' in client.get(URL).content.decode()


def test_query_count_does_not_grow_with_turns(client, public, chatbot):
    def queries():
        with CaptureQueriesContext(connection) as captured:
            assert client.get(URL).status_code == 200
        return len(captured)

    make_turn(make_conversation(chatbot))
    few = queries()
    for _ in range(5):
        conversation = make_conversation(chatbot)
        make_turn(conversation)
        make_turn(conversation)
    assert queries() == few


def test_filter_by_chatbot(client, public, turn, other_chatbot):
    make_turn(make_conversation(other_chatbot), bot_response="HR answer")

    content = client.get(URL, {"chatbot": "hr"}).content.decode()

    assert "HR answer" in content and "Your order ships tomorrow." not in content


def test_empty_page_explains_how_to_load_demo_data(client, public):
    content = client.get(URL).content.decode()

    assert "make demo" in content and "seed_demo" in content
    assert _tokens(content) == []


def test_private_by_default_outside_debug(client, turn, settings):
    settings.FEEDBACK_DEMO_PUBLIC = False

    response = client.get(URL)

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_staff_reviewer_sees_only_their_chatbots(client, bob, turn, other_chatbot, settings):
    settings.FEEDBACK_DEMO_PUBLIC = False
    make_turn(make_conversation(other_chatbot), bot_response="HR answer")
    client.force_login(bob)

    content = client.get(URL).content.decode()

    assert "Your order ships tomorrow." in content
    assert "HR answer" not in content
