"""CORS on the public endpoint: only the token's chatbot's allowed origins, preflight included."""

import pytest

from apps.feedback.models import Feedback
from tests.factories import make_chatbot

pytestmark = pytest.mark.django_db

URL = "/api/v1/feedback"
SHOP = "https://shop.example"
EVIL = "https://evil.example"


def _preflight(client, origin):
    return client.options(
        URL,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )


def test_preflight_from_an_allowed_origin(client, chatbot):
    response = _preflight(client, SHOP)

    assert response.status_code == 204
    assert response["Access-Control-Allow-Origin"] == SHOP
    assert "POST" in response["Access-Control-Allow-Methods"]
    assert response["Access-Control-Allow-Headers"].lower() == "content-type"
    assert int(response["Access-Control-Max-Age"]) > 0
    assert "Origin" in response["Vary"]
    # A browser may never send credentials (an API key) cross-origin.
    assert "Access-Control-Allow-Credentials" not in response
    assert "authorization" not in response["Access-Control-Allow-Headers"].lower()


def test_preflight_from_a_refused_origin(client, chatbot):
    response = _preflight(client, EVIL)

    assert response.status_code == 403
    assert "Access-Control-Allow-Origin" not in response
    assert "Access-Control-Allow-Methods" not in response


def test_preflight_is_not_rate_limited(client, chatbot, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
            "feedback_ip": "2/min",
        },
    }
    for _ in range(5):
        assert _preflight(client, SHOP).status_code == 204


def test_actual_request_from_an_allowed_origin(post_feedback, token):
    response = post_feedback({"token": token, "rating": "up"}, origin=SHOP)

    assert response.status_code == 201
    assert response["Access-Control-Allow-Origin"] == SHOP
    assert "Retry-After" in response["Access-Control-Expose-Headers"]
    assert "Origin" in response["Vary"]


def test_origin_matching_ignores_case_and_trailing_slash(post_feedback, chatbot, token):
    chatbot.allowed_origins = ["https://Shop.example/"]
    chatbot.save()

    response = post_feedback({"token": token, "rating": "up"}, origin=SHOP)

    assert response.status_code == 201
    assert response["Access-Control-Allow-Origin"] == SHOP


def test_actual_request_from_a_refused_origin_stores_nothing(post_feedback, token, turn):
    response = post_feedback({"token": token, "rating": "down"}, origin=EVIL)

    assert response.status_code == 403
    assert response.json()["code"] == "origin_not_allowed"
    assert "Access-Control-Allow-Origin" not in response
    assert not Feedback.objects.exists()
    turn.refresh_from_db()
    assert (turn.thumbs_down, turn.is_flagged) == (0, False)


def test_origin_allowed_for_another_chatbot_passes_preflight_but_not_the_post(
    client, post_feedback, token
):
    # The preflight cannot know the token; the POST enforces the token's own chatbot.
    make_chatbot(allowed_origins=[EVIL])

    assert _preflight(client, EVIL).status_code == 204
    response = post_feedback({"token": token, "rating": "down"}, origin=EVIL)

    assert response.status_code == 403
    assert "Access-Control-Allow-Origin" not in response
    assert not Feedback.objects.exists()


def test_wildcard_entry_allows_every_origin(post_feedback, chatbot, token):
    chatbot.allowed_origins = ["*"]
    chatbot.save()

    response = post_feedback({"token": token, "rating": "up"}, origin="https://anywhere.example")

    assert response.status_code == 201
    assert response["Access-Control-Allow-Origin"] == "https://anywhere.example"


def test_same_origin_page_is_allowed(post_feedback, token):
    # The demo page is served by chatmon itself (Django's test host is "testserver").
    response = post_feedback({"token": token, "rating": "up"}, origin="http://testserver")

    assert response.status_code == 201


def test_request_without_origin_is_not_cors_and_is_allowed(post_feedback, token):
    response = post_feedback({"token": token, "rating": "up"})

    assert response.status_code == 201
    assert "Access-Control-Allow-Origin" not in response


def test_errors_before_the_token_is_known_are_readable_by_allowed_origins(post_feedback, chatbot):
    allowed = post_feedback({"token": "garbage", "rating": "up"}, origin=SHOP)
    refused = post_feedback({"rating": "up"}, origin=EVIL)

    assert allowed.status_code == 403
    assert allowed["Access-Control-Allow-Origin"] == SHOP
    assert refused.status_code == 400
    assert "Access-Control-Allow-Origin" not in refused
