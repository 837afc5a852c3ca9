"""A small crafted dataset whose dashboard figures are worked out by hand in the tests."""

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.conversations.choices import CallPurpose
from apps.conversations.models import Conversation, LLMCall, Turn
from apps.evaluations.models import Evaluation
from apps.feedback.models import Feedback
from tests.factories import make_conversation, make_turn


@dataclass
class Dataset:
    flagged: Conversation  # A: flagged, riskiest, lowest judge score
    calm: Conversation  # B: not flagged
    old: Conversation  # C: only activity 30 hours ago
    other: Conversation  # D: on other_chatbot
    t1: Turn
    t2: Turn
    t3: Turn
    t4: Turn
    t_old: Turn
    t_other: Turn


@pytest.fixture
def dataset(chatbot, other_chatbot) -> Dataset:
    now = timezone.now()
    ago = lambda **kw: now - timedelta(**kw)  # noqa: E731

    a = make_conversation(chatbot, external_id="conv-a", last_activity_at=ago(hours=2), started_at=ago(hours=3),
                          is_flagged=True, flag_reasons=["risk"], max_risk_score=80, min_judge_score=2.0,
                          turn_count=2, thumbs_up=1, thumbs_down=1, flagged_at=ago(hours=3))
    b = make_conversation(chatbot, external_id="conv-b", last_activity_at=ago(minutes=30), started_at=ago(hours=1),
                          max_risk_score=55, turn_count=2)
    c = make_conversation(chatbot, external_id="conv-c", last_activity_at=ago(hours=30), started_at=ago(hours=30),
                          turn_count=1)
    d = make_conversation(other_chatbot, external_id="conv-d", last_activity_at=ago(hours=1), started_at=ago(hours=1),
                          is_flagged=True, flag_reasons=["judge"], max_risk_score=90, turn_count=1)

    t1 = make_turn(a, timestamp=ago(hours=3), sequence=1, latency_ms=100, total_tokens=10, prompt_tokens=6,
                   completion_tokens=4, cost_usd=Decimal("0.01"), total_cost_usd=Decimal("0.01"), risk_score=80,
                   is_flagged=True, flag_reasons=["risk"],
                   risk_reasons=[{"rule_id": 1, "rule": "Self-harm words", "points": 80, "severity": "critical", "field": "user"}],
                   judge_status="done", judge_overall=2.0, judge_hallucination=True, thumbs_down=1,
                   user_message="I want to <b>hurt</b> someone", bot_response="Please call the helpline.",
                   model="gpt-4o", intent="smalltalk")
    t2 = make_turn(a, timestamp=ago(hours=2), sequence=2, latency_ms=200, total_tokens=20,
                   cost_usd=Decimal("0.02"), total_cost_usd=Decimal("0.02"), risk_score=10, judge_status="done",
                   judge_overall=8.0, judge_hallucination=False, thumbs_up=1, has_error=True, error="upstream timeout")
    t3 = make_turn(b, timestamp=ago(hours=1), sequence=1, latency_ms=300, total_tokens=30,
                   cost_usd=Decimal("0.03"), total_cost_usd=Decimal("0.03"), risk_score=30, fallback_used=True)
    t4 = make_turn(b, timestamp=ago(minutes=30), sequence=2, latency_ms=None, total_tokens=40,
                   cost_usd=Decimal("0.04"), total_cost_usd=Decimal("0.04"), risk_score=55)
    t_old = make_turn(c, timestamp=ago(hours=30), sequence=1, latency_ms=1000, total_tokens=100,
                      cost_usd=Decimal("1"), total_cost_usd=Decimal("1"), risk_score=0)
    t_other = make_turn(d, timestamp=ago(hours=1), sequence=1, latency_ms=5000, total_tokens=500,
                        cost_usd=Decimal("5"), total_cost_usd=Decimal("5"), risk_score=90, is_flagged=True,
                        flag_reasons=["judge"], user_message="secret HR question", judge_overall=1.0)

    Evaluation.objects.create(
        turn=t1, chatbot=chatbot, evaluator="heuristic", evaluator_version="heuristic-v1", status="done",
        accuracy=1, relevance=2, clarity=3, helpfulness=2, safety=1, overall=2.0, hallucination=True,
        reasoning="Ignored the <script>alert(1)</script> risk.",
    )
    Feedback.objects.create(turn=t1, chatbot=chatbot, voter_key="v1", rating="down",
                            comment="<img src=x onerror=alert(1)> rude bot")
    Feedback.objects.create(turn=t2, chatbot=chatbot, voter_key="v1", rating="up")

    calls = [
        dict(chatbot=chatbot, conversation=a, turn=t1, model="gpt-4o", function_name="answer", input_tokens=100,
             output_tokens=50, cost_usd=Decimal("0.001"), duration_ms=100, timestamp=ago(hours=3),
             input_text="system: be nice", output_text="Please call the helpline."),
        dict(chatbot=chatbot, conversation=a, turn=t2, model="gpt-4o", function_name="answer", input_tokens=100,
             output_tokens=50, cost_usd=Decimal("0.001"), duration_ms=300, success=False, error="rate limited",
             timestamp=ago(hours=2)),
        dict(chatbot=chatbot, conversation=b, turn=t3, model="gpt-4o-mini", function_name="classify", input_tokens=10,
             output_tokens=5, cost_usd=Decimal("0.0001"), duration_ms=50, timestamp=ago(hours=1)),
        dict(chatbot=chatbot, conversation=c, turn=t_old, model="gpt-4o", function_name="answer", input_tokens=999,
             output_tokens=999, cost_usd=Decimal("9"), duration_ms=9999, timestamp=ago(hours=30)),
        dict(chatbot=other_chatbot, conversation=d, turn=t_other, model="gpt-4o", function_name="answer",
             input_tokens=7, output_tokens=7, cost_usd=Decimal("0.5"), duration_ms=7000, timestamp=ago(hours=1)),
    ]
    for call in calls:
        LLMCall.objects.create(purpose=CallPurpose.BOT, **call)
    return Dataset(a, b, c, d, t1, t2, t3, t4, t_old, t_other)
