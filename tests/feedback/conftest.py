import pytest

from apps.feedback.tokens import feedback_token_for
from tests.factories import make_conversation, make_turn

FEEDBACK_URL = "/api/v1/feedback"


@pytest.fixture
def conversation(chatbot):
    return make_conversation(chatbot, external_id="conv-1")


@pytest.fixture
def turn(conversation):
    return make_turn(conversation, external_id="t-1", bot_response="Your order ships tomorrow.")


@pytest.fixture
def token(turn):
    return feedback_token_for(turn_id=turn.pk, chatbot_id=turn.chatbot_id)


@pytest.fixture
def post_feedback(client):
    """POST JSON to the public endpoint; `origin` sets the Origin header like a browser."""

    def post(body, *, origin: str | None = None, **extra):
        headers = {"Origin": origin} if origin else {}
        return client.post(
            FEEDBACK_URL, body, content_type="application/json", headers=headers, **extra
        )

    return post
