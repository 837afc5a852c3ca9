"""apps.core.db.bulk_copy_insert: rows stored by COPY (or one INSERT … RETURNING) read back as
the ORM would have stored them, and every instance knows its id."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.conversations.choices import JudgeStatus, RiskLevel
from apps.conversations.models import LLMCall, Turn
from apps.core.db import COPY_MIN_ROWS, bulk_copy_insert
from tests.factories import make_chatbot, make_conversation

AWKWARD_JSON = {
    "nested": {"list": [1, 2.5, None, True, "ünïcødé ✓"], "empty": {}},
    "big": 2**70,  # past orjson's 64 bits: the standard library encodes it
    "quote": 'tab\tnew\nline "quoted" \\ backslash',
}


def _turns(conversation, count: int) -> list[Turn]:
    at = timezone.now() - timedelta(minutes=5)
    return [
        Turn(conversation=conversation, chatbot=conversation.chatbot, external_id=f"t-{i}", sequence=i + 1,
             timestamp=at + timedelta(seconds=i), user_message=f"message {i} with\ttab and \\N", bot_response="",
             latency_ms=None if i % 2 else 900, cost_usd=Decimal("0.000123"), total_cost_usd=Decimal("1.5"),
             risk_level=RiskLevel.HIGH, risk_reasons=[{"rule": "r", "score": 40}], judge_status=JudgeStatus.PENDING,
             metadata=AWKWARD_JSON, debug_info={}, pii_found={"EMAIL": 2}, created_at=at)
        for i in range(count)
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("count", [1, COPY_MIN_ROWS + 3])  # one INSERT … RETURNING, then COPY
def test_rows_read_back_as_given_with_their_ids(count):
    conversation = make_conversation(make_chatbot())
    turns = _turns(conversation, count)
    bulk_copy_insert(turns)
    assert all(t.pk for t in turns) and len({t.pk for t in turns}) == count
    stored = {t.pk: t for t in Turn.objects.filter(conversation=conversation)}
    assert set(stored) == {t.pk for t in turns}
    for turn in turns:
        row = stored[turn.pk]
        assert (row.external_id, row.sequence, row.user_message, row.latency_ms) == (
            turn.external_id, turn.sequence, turn.user_message, turn.latency_ms)
        assert row.metadata == AWKWARD_JSON and row.debug_info == {} and row.pii_found == {"EMAIL": 2}
        assert row.risk_level == "high" and row.judge_status == "pending"
        assert row.cost_usd == Decimal("0.000123") and row.total_cost_usd == Decimal("1.5")
        assert row.timestamp == turn.timestamp and row.created_at is not None
        assert not turn._state.adding


@pytest.mark.django_db
def test_rows_pointing_at_rows_inserted_just_before():
    """A turn's LLM calls point at the ids reserved for the turns."""
    conversation = make_conversation(make_chatbot())
    turns = _turns(conversation, COPY_MIN_ROWS)
    bulk_copy_insert(turns)
    calls = [LLMCall(chatbot=conversation.chatbot, conversation=conversation, turn=t, external_id=f"c-{t.pk}",
                     model="gpt-4o-mini", input_tokens=3, output_tokens=4, timestamp=t.timestamp) for t in turns]
    bulk_copy_insert(calls)
    assert {c.turn_id for c in LLMCall.objects.filter(conversation=conversation)} == {t.pk for t in turns}


@pytest.mark.django_db
def test_a_constraint_violation_raises_as_insert_would():
    from django.db import IntegrityError, transaction

    conversation = make_conversation(make_chatbot())
    bulk_copy_insert(_turns(conversation, 1))
    with pytest.raises(IntegrityError), transaction.atomic():
        bulk_copy_insert(_turns(conversation, 1))  # same (conversation, turn_id)


@pytest.mark.django_db
def test_an_expression_value_goes_through_the_orm():
    """A field holding SQL (a db_default another branch adds, a Value) cannot be COPYed: the ORM
    writes those rows, and they read back all the same."""
    from django.db.models import Value

    conversation = make_conversation(make_chatbot())
    turns = _turns(conversation, COPY_MIN_ROWS)
    for turn in turns:
        turn.latency_ms = Value(777)
    bulk_copy_insert(turns)
    assert set(Turn.objects.filter(conversation=conversation).values_list("latency_ms", flat=True)) == {777}
    assert all(t.pk for t in turns)
