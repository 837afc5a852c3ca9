"""Rate limits: per client IP and per token, 429 with Retry-After."""

import pytest

from apps.feedback.models import Feedback
from apps.feedback.tokens import feedback_token_for
from tests.factories import make_turn

pytestmark = pytest.mark.django_db


def test_per_token_limit_gives_429_with_retry_after(post_feedback, token, settings):
    limit = int(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["feedback_token"].split("/")[0])
    ratings = ["up", "down"]
    for i in range(limit):
        assert post_feedback({"token": token, "rating": ratings[i % 2]}).status_code in (200, 201)

    response = post_feedback({"token": token, "rating": "up"}, origin="https://shop.example")

    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    # Readable by the widget on an allowed site, so it can say when to retry.
    assert response["Access-Control-Allow-Origin"] == "https://shop.example"
    # The throttled vote changed nothing: the last accepted vote stands.
    assert Feedback.objects.get().rating == ratings[(limit - 1) % 2]


def test_per_ip_limit_spans_tokens(post_feedback, conversation, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
            "feedback_ip": "3/min",
        },
    }
    tokens = []
    for i in range(4):
        turn = make_turn(conversation, external_id=f"ip-{i}")
        tokens.append(feedback_token_for(turn_id=turn.pk, chatbot_id=turn.chatbot_id))

    statuses = [post_feedback({"token": t, "rating": "up"}).status_code for t in tokens]
    other_ip = post_feedback({"token": tokens[3], "rating": "up"}, REMOTE_ADDR="10.9.8.7")

    assert statuses == [201, 201, 201, 429]
    assert other_ip.status_code == 201
    assert Feedback.objects.count() == 4
