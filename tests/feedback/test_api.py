"""The public feedback endpoint: votes with a signed token, through the HTTP API."""

import time

import pytest
from django.core import signing

from apps.conversations.models import Conversation, Turn
from apps.feedback.models import Feedback
from apps.feedback.tokens import SALT, feedback_token_for
from tests.factories import make_conversation, make_turn

pytestmark = pytest.mark.django_db

SHOP = "https://shop.example"


def _counts(turn):
    turn = Turn.objects.get(pk=turn.pk)
    conversation = Conversation.objects.get(pk=turn.conversation_id)
    return (turn.thumbs_up, turn.thumbs_down, conversation.thumbs_up, conversation.thumbs_down)


def test_thumbs_up_is_stored_and_counted(post_feedback, token, turn):
    response = post_feedback({"token": token, "rating": "up"}, origin=SHOP)

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "created"
    assert body["rating"] == "up"
    assert body["source"] == "widget"
    feedback = Feedback.objects.get()
    assert (feedback.turn_id, feedback.chatbot_id, feedback.rating) == (
        turn.pk,
        turn.chatbot_id,
        "up",
    )
    assert len(feedback.voter_key) == 64
    assert _counts(turn) == (1, 0, 1, 0)
    turn.refresh_from_db()
    assert not turn.is_flagged


def test_thumbs_down_with_comment_flags_the_turn_and_conversation(post_feedback, token, turn):
    response = post_feedback(
        {"token": token, "rating": "down", "comment": "  Wrong price!  "}, origin=SHOP
    )

    assert response.status_code == 201
    assert Feedback.objects.get().comment == "Wrong price!"
    assert _counts(turn) == (0, 1, 0, 1)
    turn.refresh_from_db()
    conversation = Conversation.objects.get(pk=turn.conversation_id)
    assert turn.is_flagged and "thumbs_down" in turn.flag_reasons
    assert conversation.is_flagged and "thumbs_down" in conversation.flag_reasons
    assert conversation.flagged_at is not None


def test_vote_change_moves_the_counts_and_replaces_the_vote(post_feedback, token, turn):
    assert post_feedback({"token": token, "rating": "up"}).status_code == 201
    response = post_feedback({"token": token, "rating": "down", "comment": "Actually wrong"})

    assert response.status_code == 200
    assert response.json()["status"] == "updated"
    assert Feedback.objects.count() == 1
    assert Feedback.objects.get().rating == "down"
    assert _counts(turn) == (0, 1, 0, 1)
    turn.refresh_from_db()
    assert turn.flag_reasons == ["thumbs_down"]

    # And back: the thumbs-down flag is withdrawn, the comment (about the 👎) cleared.
    response = post_feedback({"token": token, "rating": "up"})
    assert response.status_code == 200
    assert _counts(turn) == (1, 0, 1, 0)
    turn.refresh_from_db()
    conversation = Conversation.objects.get(pk=turn.conversation_id)
    assert (turn.is_flagged, turn.flag_reasons) == (False, [])
    assert (conversation.is_flagged, conversation.flag_reasons, conversation.flagged_at) == (
        False,
        [],
        None,
    )
    assert Feedback.objects.get().comment == ""


def test_withdrawing_thumbs_down_keeps_other_flag_reasons(post_feedback, token, turn):
    Turn.objects.filter(pk=turn.pk).update(is_flagged=True, flag_reasons=["risk"])
    Conversation.objects.filter(pk=turn.conversation_id).update(
        is_flagged=True, flag_reasons=["risk"]
    )
    post_feedback({"token": token, "rating": "down"})
    post_feedback({"token": token, "rating": "up"})

    turn.refresh_from_db()
    conversation = Conversation.objects.get(pk=turn.conversation_id)
    assert (turn.is_flagged, turn.flag_reasons) == (True, ["risk"])
    assert (conversation.is_flagged, conversation.flag_reasons) == (True, ["risk"])


def test_duplicate_vote_is_a_no_op(post_feedback, token, turn):
    first = post_feedback({"token": token, "rating": "down", "comment": "Missing the size chart"})
    feedback = Feedback.objects.get()
    second = post_feedback({"token": token, "rating": "down"})

    assert first.status_code == 201
    assert second.status_code == 200
    assert second.json()["status"] == "unchanged"
    assert Feedback.objects.count() == 1
    # A repeated click without a comment keeps what the user wrote.
    assert Feedback.objects.get().comment == "Missing the size chart"
    assert Feedback.objects.get().updated_at == feedback.updated_at
    assert _counts(turn) == (0, 1, 0, 1)


def test_same_rating_with_new_comment_updates_only_the_comment(post_feedback, token, turn):
    post_feedback({"token": token, "rating": "down"})
    response = post_feedback(
        {"token": token, "rating": "down", "comment": "It said the wrong city"}
    )

    assert response.json()["status"] == "updated"
    assert Feedback.objects.get().comment == "It said the wrong city"
    assert _counts(turn) == (0, 1, 0, 1)


def test_votes_from_the_conversations_end_user_share_one_voter(post_feedback, chatbot):
    conversation = make_conversation(chatbot, end_user_hash="a" * 64)
    first = make_turn(conversation, external_id="a")
    second = make_turn(conversation, external_id="b")
    for turn in (first, second):
        token = feedback_token_for(turn_id=turn.pk, chatbot_id=chatbot.pk)
        assert post_feedback({"token": token, "rating": "down"}).status_code == 201

    assert set(Feedback.objects.values_list("voter_key", flat=True)) == {"a" * 64}
    conversation.refresh_from_db()
    assert (conversation.thumbs_up, conversation.thumbs_down) == (0, 2)


def test_tampered_token_is_refused(post_feedback, token, turn):
    other = make_turn(turn.conversation, external_id="t-2")
    payload, rest = token.split(":", 1)
    # Same signature, payload edited to point at another turn.
    forged_payload = signing.b64_encode(f"[{other.pk},{turn.chatbot_id}]".encode()).decode()
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")

    for bad in (f"{forged_payload}:{rest}", flipped, "not-a-token", payload):
        response = post_feedback({"token": bad, "rating": "up"})
        assert response.status_code == 403, bad
        assert response.json()["code"] == "token_invalid"
    assert not Feedback.objects.exists()
    assert _counts(turn) == (0, 0, 0, 0)


class _PastSigner(signing.TimestampSigner):
    def timestamp(self):
        return signing.b62_encode(int(time.time()) - 8 * 24 * 3600)


def test_expired_token_is_refused(post_feedback, turn, settings):
    settings.FEEDBACK_TOKEN_MAX_AGE_SECONDS = 7 * 24 * 3600
    old_token = _PastSigner(salt=SALT).sign_object([turn.pk, turn.chatbot_id])

    response = post_feedback({"token": old_token, "rating": "down"})

    assert response.status_code == 403
    assert response.json()["code"] == "token_expired"
    assert "expired" in response.json()["detail"]
    assert not Feedback.objects.exists()


def test_token_claiming_another_chatbots_turn_is_refused(post_feedback, turn, other_chatbot):
    # Correctly signed, but the turn does not belong to the chatbot named in the token.
    token = feedback_token_for(turn_id=turn.pk, chatbot_id=other_chatbot.pk)

    response = post_feedback({"token": token, "rating": "down"})

    assert response.status_code == 403
    assert response.json()["code"] == "token_invalid"
    assert not Feedback.objects.exists()


def test_token_of_another_chatbots_turn_from_this_chatbots_site_is_refused(
    post_feedback, other_chatbot
):
    # shop.example is allowed for `chatbot`, not for `other_chatbot`.
    other_turn = make_turn(make_conversation(other_chatbot))
    token = feedback_token_for(turn_id=other_turn.pk, chatbot_id=other_chatbot.pk)

    response = post_feedback({"token": token, "rating": "down"}, origin=SHOP)

    assert response.status_code == 403
    assert response.json()["code"] == "origin_not_allowed"
    assert "Access-Control-Allow-Origin" not in response
    assert not Feedback.objects.exists()


def test_token_of_a_deleted_turn_is_404(post_feedback, token, turn):
    Turn.objects.filter(pk=turn.pk).delete()

    response = post_feedback({"token": token, "rating": "up"})

    assert response.status_code == 404
    assert response.json()["code"] == "turn_not_found"


def test_comment_too_long_is_refused(post_feedback, token, settings):
    settings.FEEDBACK_MAX_COMMENT_CHARS = 50

    response = post_feedback({"token": token, "rating": "down", "comment": "x" * 51})

    assert response.status_code == 400
    assert "50" in response.json()["comment"][0]
    assert not Feedback.objects.exists()
    assert post_feedback({"token": token, "rating": "down", "comment": "x" * 50}).status_code == 201


@pytest.mark.parametrize("rating", ["meh", "UP", "", None, 1, ["up"]])
def test_bad_rating_value_is_refused(post_feedback, token, rating):
    response = post_feedback({"token": token, "rating": rating})

    assert response.status_code == 400
    assert "rating" in response.json()
    assert not Feedback.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        {"rating": "up"},
        {"token": "", "rating": "up"},
        {"token": 123, "rating": "up"},
        {"token": "x" * 5000, "rating": "up"},
        ["not", "an", "object"],
        "just a string",
    ],
)
def test_malformed_bodies_are_400(post_feedback, body):
    response = post_feedback(body)

    assert response.status_code == 400
    assert not Feedback.objects.exists()


def test_invalid_json_is_400_and_form_posts_are_415(client, token):
    response = client.post("/api/v1/feedback", "{not json", content_type="application/json")
    assert response.status_code == 400
    response = client.post("/api/v1/feedback", {"token": token, "rating": "up"})
    assert response.status_code == 415
    assert not Feedback.objects.exists()


@pytest.mark.parametrize("comment", ["nul\x00byte", "lone \ud800 surrogate"])
def test_comment_characters_the_database_cannot_store_are_400(post_feedback, token, comment):
    response = post_feedback({"token": token, "rating": "down", "comment": comment})

    assert response.status_code == 400
    assert not Feedback.objects.exists()


def test_lone_surrogate_anywhere_in_the_body_is_400(client):
    # Valid JSON escapes, but not text: the shared strict parser refuses them before any field.
    for body in ('{"token": "\\ud800", "rating": "up"}', '{"token": "t", "rating": "\\udfff"}'):
        response = client.post("/api/v1/feedback", body, content_type="application/json")
        assert response.status_code == 400, body
    assert not Feedback.objects.exists()


def test_deeply_nested_body_is_400(client):
    # The shared strict parser bounds nesting for every DRF endpoint, this public one included.
    for body in ("[" * 5000, '{"token": ' + '{"a": ' * 500 + "1" + "}" * 500 + ', "rating": "up"}'):
        response = client.post("/api/v1/feedback", body, content_type="application/json")
        assert response.status_code == 400, body[:20]
    assert not Feedback.objects.exists()


def test_comment_is_stored_as_plain_text(post_feedback, token):
    html = '<img src=x onerror="alert(1)"><b>bold</b>'

    response = post_feedback({"token": token, "rating": "down", "comment": html})

    assert response.status_code == 201
    assert Feedback.objects.get().comment == html
    assert response.json()["comment"] == html


def test_get_is_not_allowed(client):
    assert client.get("/api/v1/feedback").status_code == 405


def test_trailing_slash_works_too(client, token):
    response = client.post(
        "/api/v1/feedback/", {"token": token, "rating": "up"}, content_type="application/json"
    )
    assert response.status_code == 201


def test_no_cookie_or_csrf_needed(token, turn, django_user_model):
    # A logged-in staff browser on the same site: the session is ignored, no CSRF token needed.
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(django_user_model.objects.create_user("staff", is_staff=True))
    response = client.post(
        "/api/v1/feedback", {"token": token, "rating": "up"}, content_type="application/json"
    )
    assert response.status_code == 201


def test_endpoint_is_in_the_openapi_schema(admin_client):
    response = admin_client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = response.json()
    assert "post" in schema["paths"]["/api/v1/feedback"]
    assert "/api/v1/feedback/" not in schema["paths"]
    assert {"FeedbackTokenVoteRequest", "FeedbackBotVoteRequest"} <= set(
        schema["components"]["schemas"]
    )
