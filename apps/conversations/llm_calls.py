"""chatmon's own model calls (judge, embeddings, cluster titles) stored as LLMCall rows, priced.

The one way to record them: code making a request fills in an apps.core.llm.ModelCall
(`model_call_timed` times it, `usage_read` reads its tokens); this module prices it from the
price list (apps.core.pricing) and writes the row. `llm_call_recorded` does both around one
request; `llm_calls_store` writes calls recorded earlier (the judge keeps its calls in memory
and stores them with its verdict, in one query). These rows are chatmon's spending, not the
bot's: they are never counted into a turn's or conversation's totals.
"""

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.utils import timezone

from apps.chatbots.models import Chatbot
from apps.core.llm import ModelCall, model_call_timed
from apps.core.pricing import cost_for

from .choices import CallPurpose
from .models import LLMCall


def llm_call_cost(call: ModelCall, *, at: datetime) -> Decimal:
    """USD cost of the call on the day it was made (no price lookup for a call without tokens)."""
    if not (call.input_tokens or call.output_tokens):
        return Decimal(0)
    return cost_for(call.model, call.input_tokens, call.output_tokens, at)


def llm_calls_store(
    *,
    calls: Iterable[ModelCall],
    purpose: CallPurpose,
    function_name: str,
    chatbot_id: int | None,
    conversation_id: int | None = None,
    turn_id: int | None = None,
    provider: str = "openai",
    at: datetime | None = None,
) -> list[LLMCall]:
    """Write the calls (failed ones included: they may cost) as LLMCall rows, in one query."""
    at = at or timezone.now()
    rows = [
        LLMCall(
            chatbot_id=chatbot_id,
            conversation_id=conversation_id,
            turn_id=turn_id,
            purpose=purpose,
            function_name=function_name,
            provider=provider,
            model=call.model,
            input_tokens=call.input_tokens,
            output_tokens=call.output_tokens,
            tokens_estimated=call.tokens_estimated,
            cost_usd=llm_call_cost(call, at=at),
            duration_ms=call.duration_ms,
            input_text=call.input_text,
            output_text=call.output_text,
            success=call.success,
            error=call.error,
            timestamp=at,
            metadata=call.metadata,
        )
        for call in calls
    ]
    if not rows:
        return []
    return LLMCall.objects.bulk_create(rows)


@contextmanager
def llm_call_recorded(
    *,
    purpose: CallPurpose,
    model: str,
    function_name: str,
    chatbot: Chatbot | None,
    input_text: str = "",
    metadata: dict[str, Any] | None = None,
) -> Iterator[ModelCall]:
    """Record the one request made in the block as an LLMCall, however the block ends.

    The block makes the request and fills in the yielded call (`usage_read`, `output_text`;
    `success`/`error` for an answer it rejects). On leaving, the call is timed, priced on the day
    it started and stored; an exception marks it failed (apps.core.llm.model_call_timed) and
    goes on to the caller, which decides what the failure means.
    """
    call = ModelCall(model=model, input_text=input_text, metadata=metadata or {})
    started_at = timezone.now()
    try:
        with model_call_timed(call):
            yield call
    finally:
        llm_calls_store(
            calls=[call], purpose=purpose, function_name=function_name,
            chatbot_id=chatbot.pk if chatbot is not None else None, at=started_at,
        )
