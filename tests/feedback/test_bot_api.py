"""Bot-side feedback: the bot's own UI collected the vote and posts it with its API key."""

import pytest
from django.test import Client

from apps.chatbots.models import ApiKey
from apps.conversations.models import Conversation
from apps.feedback.models import Feedback
from apps.feedback.tokens import feedback_token_for
from apps.privacy.hashing import end_user_hash
from tests.factories import make_conversation, make_turn

pytestmark = pytest.mark.django_db

URL = "/api/v1/feedback"


def _post(client, body, **extra):
    return client.post(URL, body, content_type="application/json", **extra)


def test_bot_side_vote_with_key(bot_client, turn):
    response = _post(
        bot_client,
        {"conversation_id": "conv-1", "turn_id": "t-1", "rating": "down", "comment": "Rude"},
    )

    assert response.status_code == 201, response.content
    assert response.json()["source"] == "api"
    feedback = Feedback.objects.get()
    assert (feedback.turn_id, feedback.rating, feedback.comment, feedback.source) == (
        turn.pk,
        "down",
        "Rude",
        "api",
    )
    turn.refresh_from_db()
    assert (turn.thumbs_down, turn.is_flagged, turn.flag_reasons) == (1, True, ["thumbs_down"])
    assert Conversation.objects.get(pk=turn.conversation_id).thumbs_down == 1


def test_each_named_end_user_gets_one_vote(bot_client, turn, chatbot):
    body = {"conversation_id": "conv-1", "turn_id": "t-1"}
    assert _post(bot_client, {**body, "rating": "up", "user_id": "u-1"}).status_code == 201
    assert _post(bot_client, {**body, "rating": "up", "user_id": "u-2"}).status_code == 201
    changed = _post(bot_client, {**body, "rating": "down", "user_id": "u-1"})
    repeated = _post(bot_client, {**body, "rating": "down", "user_id": "u-1"})

    assert changed.status_code == 200 and changed.json()["status"] == "updated"
    assert repeated.json()["status"] == "unchanged"
    assert Feedback.objects.count() == 2
    keys = set(Feedback.objects.values_list("voter_key", flat=True))
    # Stored as keyed hashes, never raw ids.
    assert keys == {
        end_user_hash(chatbot_id=chatbot.pk, user_id="u-1"),
        end_user_hash(chatbot_id=chatbot.pk, user_id="u-2"),
    }
    turn.refresh_from_db()
    assert (turn.thumbs_up, turn.thumbs_down) == (1, 1)


def test_bot_vote_and_widget_vote_of_the_same_end_user_replace_each_other(bot_client, chatbot):
    browser = Client()  # `bot_client` is the `client` fixture with the key set
    conversation = make_conversation(
        chatbot,
        external_id="c-9",
        end_user_hash=end_user_hash(chatbot_id=chatbot.pk, user_id="alice@shop"),
    )
    turn = make_turn(conversation, external_id="t-9")
    token = feedback_token_for(turn_id=turn.pk, chatbot_id=chatbot.pk)

    assert (
        browser.post(
            URL, {"token": token, "rating": "up"}, content_type="application/json"
        ).status_code
        == 201
    )
    response = _post(
        bot_client,
        {"conversation_id": "c-9", "turn_id": "t-9", "rating": "down", "user_id": "alice@shop"},
    )

    assert response.status_code == 200
    assert Feedback.objects.count() == 1
    turn.refresh_from_db()
    assert (turn.thumbs_up, turn.thumbs_down) == (0, 1)


def test_unknown_turn_is_404(bot_client, turn):
    for body in (
        {"conversation_id": "conv-1", "turn_id": "nope", "rating": "up"},
        {"conversation_id": "nope", "turn_id": "t-1", "rating": "up"},
    ):
        response = _post(bot_client, body)
        assert response.status_code == 404
        assert response.json()["code"] == "turn_not_found"
    assert not Feedback.objects.exists()


def test_a_key_cannot_rate_another_chatbots_turn(client, other_api_key, turn):
    # `turn` belongs to `chatbot`; the key is `other_chatbot`'s.
    response = _post(
        client,
        {"conversation_id": "conv-1", "turn_id": "t-1", "rating": "down"},
        HTTP_AUTHORIZATION=f"Bearer {other_api_key}",
    )

    assert response.status_code == 404
    assert not Feedback.objects.exists()


def test_bad_and_revoked_keys_are_401(client, api_key, turn):
    body = {"conversation_id": "conv-1", "turn_id": "t-1", "rating": "up"}
    bad = _post(client, body, HTTP_AUTHORIZATION="Bearer cm_deadbeef_nope")
    ApiKey.objects.get().revoke()
    revoked = _post(client, body, HTTP_AUTHORIZATION=f"Bearer {api_key}")

    assert bad.status_code == 401
    assert revoked.status_code == 401
    assert not Feedback.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        {"turn_id": "t-1", "rating": "up"},
        {"conversation_id": "conv-1", "rating": "up"},
        {"conversation_id": "conv-1", "turn_id": "t-1", "rating": "sideways"},
        {"conversation_id": "conv-1", "turn_id": "t-1", "rating": "up", "user_id": "u" * 300},
        {"conversation_id": "conv-1", "turn_id": "t-1", "rating": "up", "comment": "x" * 5000},
    ],
)
def test_bad_bot_bodies_are_400(bot_client, turn, body):
    response = _post(bot_client, body)

    assert response.status_code == 400
    assert not Feedback.objects.exists()


def test_bot_answers_carry_no_cors_headers(bot_client, turn):
    response = _post(
        bot_client,
        {"conversation_id": "conv-1", "turn_id": "t-1", "rating": "up"},
        HTTP_ORIGIN="https://shop.example",
    )

    assert response.status_code == 201
    assert "Access-Control-Allow-Origin" not in response


def test_bots_are_not_limited_by_the_public_ip_limit(bot_client, conversation, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
            "feedback_ip": "2/min",
        },
    }
    for i in range(4):
        make_turn(conversation, external_id=f"b-{i}")
        response = _post(
            bot_client, {"conversation_id": "conv-1", "turn_id": f"b-{i}", "rating": "up"}
        )
        assert response.status_code == 201
