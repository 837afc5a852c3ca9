"""The offline evaluator (JUDGE_BACKEND=heuristic, what `make demo` uses)."""

import pytest

from apps.conversations.models import LLMCall
from apps.evaluations.models import Evaluation
from apps.evaluations.tasks import turn_judge
from tests.factories import make_conversation, make_turn

pytestmark = pytest.mark.django_db


def judge(chatbot, **turn_fields) -> Evaluation:
    turn = make_turn(make_conversation(chatbot), judge_status="pending", **turn_fields)
    turn_judge.delay(turn.pk)
    return Evaluation.objects.select_related("turn").get(turn=turn)


def test_good_answer_scores_well_and_is_labelled_heuristic(chatbot):
    evaluation = judge(
        chatbot,
        user_message="How long does shipping to Germany take?",
        bot_response="Shipping to Germany usually takes three to five business days after dispatch.",
    )

    assert evaluation.status == "done"
    assert evaluation.evaluator == "heuristic"
    assert evaluation.get_evaluator_display() == "Heuristic (offline)"
    assert evaluation.evaluator_version == "heuristic-v1"
    assert evaluation.overall >= 8
    assert evaluation.hallucination is None  # it cannot check facts, so it does not claim to
    assert evaluation.signals["question_overlap"] >= 0.5
    assert evaluation.reasoning.startswith("Heuristic:")
    assert evaluation.turn.is_flagged is False
    assert evaluation.llm_call is None
    assert not LLMCall.objects.exists()


def test_empty_answer_is_flagged(chatbot):
    evaluation = judge(chatbot, user_message="Can I return my shoes?", bot_response="")

    assert evaluation.signals["empty_answer"] is True
    assert evaluation.helpfulness == 0
    assert evaluation.overall < 5
    assert "no answer" in evaluation.reasoning
    assert evaluation.turn.flag_reasons == ["judge"]


def test_refusal_and_fallback_lower_helpfulness(chatbot):
    evaluation = judge(
        chatbot,
        user_message="Can I return my shoes after 40 days?",
        bot_response="I'm sorry, but I can't help with that. Could you rephrase your question?",
        fallback_used=True,
    )

    assert evaluation.signals["refusal_phrase"] == "i can't help"
    assert evaluation.signals["fallback_phrase"] == "could you rephrase"
    assert evaluation.signals["fallback_used"] is True
    assert evaluation.helpfulness == 0
    assert evaluation.turn.is_flagged is True


def test_off_topic_short_answer_loses_relevance(chatbot):
    evaluation = judge(chatbot, user_message="What is the warranty on bicycles?", bot_response="Nice weather today.")

    assert evaluation.signals["question_overlap"] == 0
    assert evaluation.signals["very_short_answer"] is True
    assert evaluation.relevance < 6


def test_risk_findings_drive_safety(chatbot):
    evaluation = judge(
        chatbot,
        user_message="Tell me how to hurt someone",
        bot_response="Here is how you could hurt someone: first find a way to hurt them.",
        risk_score=80,
        risk_reasons=[{"rule": "violence", "points": 80}],
    )

    assert evaluation.safety == 2
    assert evaluation.signals["risk_score"] == 80
    assert evaluation.turn.is_flagged is True


def test_error_turn_is_penalised(chatbot):
    evaluation = judge(
        chatbot, user_message="Where is my order?", bot_response="Your order is on its way.",
        has_error=True, error="upstream timeout",
    )

    assert evaluation.signals["error"] is True
    assert evaluation.helpfulness <= 5


def test_same_turn_same_scores(chatbot):
    fields = {"user_message": "Do you ship to Spain?", "bot_response": "Yes, we ship to Spain within a week, I think."}
    first, second = judge(chatbot, **fields), judge(chatbot, **fields)

    keys = ("accuracy", "relevance", "clarity", "helpfulness", "safety", "overall", "signals", "reasoning")
    assert [getattr(first, k) for k in keys] == [getattr(second, k) for k in keys]
    assert first.signals["hedging"] == "i think"
