"""A shop chatbot's production turns, a local OpenAI-compatible server that plays the target
model, the judge and the reference grader, and two prompts it answers differently.

The server routes by the request's system message: the judge's rubric and the reference
prompt get grades computed from the answer they are shown; a target request gets the answer
of its prompt — "v1" answers every question well, "v2" (the worse prompt) refuses the refund
questions. So the second run regresses exactly the refund items.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from apps.datasets.grading import REFERENCE_PROMPT
from apps.datasets.models import Dataset, ExperimentTarget
from apps.evaluations.backends.openai_judge import unsupported_features_forget
from apps.evaluations.rubric import SYSTEM_PROMPT
from tests.factories import make_conversation, make_turn
from tests.support.openai_server import OpenAIServer

GOOD_PROMPT = "You are the shop assistant. Answer precisely. v1"
WORSE_PROMPT = "You are the shop assistant. Be brief and cautious. v2"

ANSWERS = {
    "Can I return shoes I bought last week?": "Yes, you can return shoes within the 30-day window for a full refund.",
    "How long does a refund take?": "A refund reaches your card within 5 business days of the return.",
    "Where is my order 1234?": "Order 1234 ships tomorrow from the Berlin warehouse.",
    "Do you ship to Austria?": "Yes, we ship to Austria in 3 to 4 days.",
}
REFUND_QUESTIONS = {"Can I return shoes I bought last week?", "How long does a refund take?"}
REFUSAL = "I'm sorry, but I can't help with refunds."


def _words(text: str) -> set[str]:
    return {w.strip(".,?!").lower() for w in text.split() if len(w.strip(".,?!")) > 3}


def shop_model(request: dict[str, Any]) -> str:
    messages = request.get("messages", [])
    system = next((m["content"] for m in messages if m["role"] == "system"), "")
    last = messages[-1]["content"] if messages else ""
    if system.startswith(SYSTEM_PROMPT[:40]):
        graded = json.loads(last.split("\n", 1)[1])["turn_to_grade"]
        bad = graded["bot"] == REFUSAL
        score = 2 if bad else 9
        return json.dumps(
            {
                "accuracy": score,
                "relevance": score,
                "clarity": 8,
                "helpfulness": score,
                "safety": 10,
                "hallucination": False,
                "reasoning": "Refuses a question it should answer."
                if bad
                else "Answers the question.",
            }
        )
    if system == REFERENCE_PROMPT:
        payload = json.loads(last)
        answer, expected = payload["answer"], payload["expected_answer"]
        shared = _words(answer) & _words(expected)
        correctness = None if not expected else (9 if len(shared) >= 3 else 1)
        properties = [
            {
                "property": p,
                "passed": any(w in answer.lower() for w in _words(p) - {"must", "mention"}),
                "reason": "checked by the test server",
            }
            for p in payload["properties"]
        ]
        return json.dumps(
            {
                "correctness": correctness,
                "correctness_reason": f"{len(shared)} shared words",
                "properties": properties,
            }
        )
    if system == WORSE_PROMPT and last in REFUND_QUESTIONS:
        return REFUSAL
    return ANSWERS.get(last, "I do not know that one.")


@pytest.fixture
def model_settings(settings):
    settings.JUDGE_BACKEND = "openai"
    settings.OPENAI_API_KEY = "test-key"
    settings.OPENAI_TIMEOUT_SECONDS = 5.0
    settings.JUDGE_MODEL = "gpt-4o-mini"
    settings.JUDGE_EAGER_RETRY_MAX_SECONDS = 0
    settings.JUDGE_RETRY_BACKOFF_SECONDS = 0.01
    settings.EXPERIMENT_CHUNK_SIZE = 3  # two chunks for four items: the fan-out is exercised
    settings.EXPERIMENT_CONCURRENCY = 4
    unsupported_features_forget()
    yield settings
    unsupported_features_forget()


@pytest.fixture
def shop_server(model_settings) -> Iterator[OpenAIServer]:
    with OpenAIServer(chat_handler=shop_model) as server:
        model_settings.OPENAI_BASE_URL = server.base_url
        yield server


@pytest.fixture
def production_turns(chatbot):
    """Four production turns; the bot's original answers are poor, so reviewers corrected them."""
    turns = []
    for question in ANSWERS:
        conversation = make_conversation(chatbot)
        make_turn(conversation, user_message="Hello", bot_response="Hi! How can I help?")
        turns.append(
            make_turn(
                conversation,
                user_message=question,
                bot_response="Please contact support.",
                is_flagged=True,
            )
        )
    return turns


@pytest.fixture
def targets(chatbot) -> dict[str, ExperimentTarget]:
    return {
        "v1": ExperimentTarget.objects.create(
            name="prompt:v1",
            chatbot=chatbot,
            kind="model",
            model="shop-model",
            system_prompt=GOOD_PROMPT,
        ),
        "v2": ExperimentTarget.objects.create(
            name="prompt:v2",
            chatbot=chatbot,
            kind="model",
            model="shop-model",
            system_prompt=WORSE_PROMPT,
        ),
    }


@pytest.fixture
def dataset(chatbot) -> Dataset:
    return Dataset.objects.create(chatbot=chatbot, name="Refunds golden", slug="refunds-golden")
