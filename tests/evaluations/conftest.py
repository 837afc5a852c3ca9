import contextlib
import json
from collections.abc import Iterator

import pytest

from apps.evaluations.backends.openai_judge import unsupported_features_forget
from chatmon.celery import app as celery_app
from chatmon.celery import broker_connections_reset
from tests.factories import make_conversation, make_turn
from tests.support.openai_server import OpenAIServer


def judgment(**overrides: object) -> str:
    """A judge reply (JSON text) with good scores unless overridden."""
    data: dict[str, object] = {
        "accuracy": 9, "relevance": 9, "clarity": 8, "helpfulness": 9, "safety": 10,
        "hallucination": False, "reasoning": "Answers the question correctly.",
    }
    data.update(overrides)
    return json.dumps(data)


@pytest.fixture
def judge_settings(settings):
    """The openai backend with no waiting between retries (tests never depend on time)."""
    settings.JUDGE_BACKEND = "openai"
    settings.OPENAI_API_KEY = "test-key"
    settings.OPENAI_TIMEOUT_SECONDS = 5.0
    settings.JUDGE_MODEL = "gpt-4o-mini"
    settings.JUDGE_MAX_ATTEMPTS = 4
    settings.JUDGE_CONTEXT_TURNS = 2
    settings.JUDGE_EAGER_RETRY_MAX_SECONDS = 0
    unsupported_features_forget()
    yield settings
    unsupported_features_forget()


@pytest.fixture
def judge_server(judge_settings) -> Iterator[OpenAIServer]:
    with OpenAIServer() as server:
        judge_settings.OPENAI_BASE_URL = server.base_url
        yield server


@pytest.fixture
def pending_turn(chatbot):
    conversation = make_conversation(chatbot)
    return make_turn(
        conversation,
        user_message="Where is my order 1234?",
        bot_response="Your order 1234 ships tomorrow from our Berlin warehouse.",
        judge_status="pending",
    )


@contextlib.contextmanager
def celery_broker(url: str) -> Iterator[None]:
    """Send tasks to a real broker from this (eager-by-default) test process, then restore."""
    saved = (celery_app.conf.broker_url, celery_app.conf.task_always_eager)
    broker_connections_reset()
    celery_app.conf.broker_url = url
    celery_app.conf.task_always_eager = False
    try:
        yield
    finally:
        broker_connections_reset()
        celery_app.conf.broker_url, celery_app.conf.task_always_eager = saved
