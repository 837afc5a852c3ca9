"""chatmon's own model calls: one recorder times, prices and stores each, failed ones included."""

from decimal import Decimal

import pytest

from apps.conversations.choices import CallPurpose
from apps.conversations.llm_calls import llm_call_recorded, llm_calls_store
from apps.conversations.models import LLMCall
from apps.core.llm import ModelCall

pytestmark = pytest.mark.django_db


def test_a_call_is_priced_and_stored(chatbot):
    with llm_call_recorded(purpose=CallPurpose.LABELING, model="gpt-4o-mini", function_name="test.call",
                           chatbot=chatbot, input_text="hello") as call:
        call.input_tokens, call.output_tokens = 1_000_000, 1_000_000
        call.output_text = "world"

    row = LLMCall.objects.get()
    assert (row.chatbot, row.purpose, row.function_name, row.provider) == (chatbot, "labeling", "test.call", "openai")
    assert (row.input_text, row.output_text, row.success, row.error) == ("hello", "world", True, "")
    # gpt-4o-mini list price: $0.15 in / $0.60 out per 1M tokens.
    assert row.cost_usd == Decimal("0.75")
    assert row.duration_ms is not None


def test_a_failed_call_is_stored_and_the_error_goes_on(chatbot):
    with pytest.raises(TimeoutError), llm_call_recorded(
        purpose=CallPurpose.EMBEDDING, model="text-embedding-3-small", function_name="test.call", chatbot=chatbot,
    ):
        raise TimeoutError("no answer")

    row = LLMCall.objects.get()
    assert not row.success and row.error == "TimeoutError: no answer"
    assert row.cost_usd == 0


def test_calls_recorded_earlier_are_stored_in_one_query(chatbot, django_assert_num_queries):
    calls = [ModelCall(model="gpt-4o-mini", input_tokens=10), ModelCall(model="gpt-4o-mini", success=False, error="x")]
    llm_calls_store(calls=calls, purpose=CallPurpose.JUDGE, function_name="judge", chatbot_id=chatbot.pk)  # warm prices
    with django_assert_num_queries(1):
        rows = llm_calls_store(calls=calls, purpose=CallPurpose.JUDGE, function_name="judge", chatbot_id=chatbot.pk)
    assert [row.success for row in rows] == [True, False]
