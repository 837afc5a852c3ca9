from typing import Any

from django.conf import settings
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
)
from rest_framework import status
from rest_framework.response import Response

from apps.chatbots.api.base import BotAPIView
from apps.conversations.models import LLMCall, Turn
from apps.core.api import ErrorSerializer
from apps.feedback.tokens import feedback_token_for

from ..services import (
    CallOutcome,
    EventOutcome,
    ItemRejected,
    TurnOutcome,
    llm_calls_ingest,
    llm_calls_ingest_batch,
    turns_ingest,
    turns_ingest_batch,
)
from ..validation import ValidationFailed, parse_call, parse_turn
from .serializers import (
    BatchResultSerializer,
    CallResultSerializer,
    EventResultSerializer,
    LLMCallBatchSerializer,
    LLMCallStandaloneSerializer,
    TurnBatchSerializer,
    TurnInSerializer,
    TurnResultSerializer,
)

MULTI_STATUS = 207

TURN_EXAMPLE = {
    "conversation_id": "conv-8812",
    "turn_id": "conv-8812-3",
    "user_id": "customer-42",
    "channel": "website",
    "user_message": "Where is my order #50231?",
    "bot_response": "Your order shipped yesterday and arrives Thursday.",
    "timestamp": "2025-06-01T12:00:00Z",
    "latency_ms": 1240,
    "fallback_used": False,
    "error": False,
    "intent": "order_status",
    "model": "gpt-4o-mini",
    "tokens": {"prompt": 412, "completion": 38},
    "llm_calls": [{"call_id": "call-1", "function_name": "answer", "model": "gpt-4o-mini",
                   "input_tokens": 412, "output_tokens": 38, "duration_ms": 1100}],
    "metadata": {"locale": "en-GB"},
}


def _batch(body: dict, key: str) -> list | None:
    """The list under `key`, or None when the body is a single object."""
    if key not in body:
        return None
    items = body[key]
    if not isinstance(items, list):
        raise ValidationFailed({key: ["Must be a list."]})
    if not items:
        raise ValidationFailed({key: ["Send at least one item."]})
    if len(items) > settings.INGEST_MAX_BATCH:
        raise ValidationFailed({key: [f"At most {settings.INGEST_MAX_BATCH} items per batch (got {len(items)})."]})
    return items


class TurnIngestView(BotAPIView):
    metrics_name = "turns"

    @extend_schema(
        operation_id="ingest_turns",
        summary="Log one turn, or a batch of up to 1,000",
        description=(
            "Stores the turn(s), creates the conversation on first sight, scores risk at once and "
            "returns the verdict with a feedback token. `turn_id` makes retries safe: a replay answers "
            "200 with the original result. A batch answers 207 with one result per item; a bad item "
            "never rejects the others.\n\n"
            "Every field also has its camelCase name (`userMessage`, `latencyMs`, …); `source` is "
            "`channel`, and `session_id`/`sessionId` are `conversation_id` (the canonical name wins "
            "when both are sent). Without any conversation id, the turn joins its end user's session "
            "on its channel (`user_id` required): a new session starts after the chatbot's inactivity "
            "gap (30 min by default). `event` start/end/feedback is a conversation event (answered 200 "
            "with an EventResult, no turn stored); `error` stores an erroring turn.\n\n"
            "**Unknown fields are never dropped silently**: they are kept under `metadata` (while it "
            "stays within its byte limit) and the answer lists each in `warnings`, as it lists aliases "
            "that were overridden."
        ),
        request=PolymorphicProxySerializer(
            component_name="TurnIngestRequest", serializers=[TurnInSerializer, TurnBatchSerializer],
            resource_type_field_name=None,
        ),
        responses={
            201: TurnResultSerializer,
            200: OpenApiResponse(PolymorphicProxySerializer(
                component_name="TurnOrEventResult", serializers=[TurnResultSerializer, EventResultSerializer],
                resource_type_field_name=None), description="Replay of a stored turn_id, or a conversation event applied."),
            207: BatchResultSerializer, 400: ErrorSerializer, 401: ErrorSerializer, 413: ErrorSerializer,
            415: ErrorSerializer, 429: ErrorSerializer,
        },
        examples=[
            OpenApiExample("One turn", value=TURN_EXAMPLE, request_only=True),
            OpenApiExample("A batch", value={"turns": [TURN_EXAMPLE, {**TURN_EXAMPLE, "turn_id": "conv-8812-4",
                           "user_message": "Thanks!", "bot_response": "You're welcome."}]}, request_only=True),
            OpenApiExample("Stored", value={"id": 1042, "conversation": "conv-8812", "turn_id": "conv-8812-3",
                           "risk_score": 0, "risk_level": "low", "is_flagged": False, "flag_reasons": [],
                           "feedback_token": "WzEwNDIsMV0:1uQ…"}, response_only=True, status_codes=["201"]),
        ],
        tags=["ingest"],
    )
    def post(self, request):
        chatbot = request.user.chatbot
        return _ingest(
            self.read_json(request), what="turn", batch_key="turns",
            one=lambda raw: turns_ingest(chatbot=chatbot, turns=[parse_turn(raw)])[0],
            batch=lambda items: turns_ingest_batch(chatbot=chatbot, items=items),
        )


class LLMCallIngestView(BotAPIView):
    metrics_name = "llm_calls"

    @extend_schema(
        operation_id="ingest_llm_calls",
        summary="Log one LLM call, or a batch",
        description=(
            "Links calls to a conversation and (optionally) a turn by external ids; the turn's and "
            "conversation's token and cost totals include them. `call_id` makes retries safe."
        ),
        request=PolymorphicProxySerializer(
            component_name="LLMCallIngestRequest",
            serializers=[LLMCallStandaloneSerializer, LLMCallBatchSerializer], resource_type_field_name=None,
        ),
        responses={201: CallResultSerializer, 200: CallResultSerializer, 207: BatchResultSerializer,
                   400: ErrorSerializer, 401: ErrorSerializer, 413: ErrorSerializer, 415: ErrorSerializer,
                   429: ErrorSerializer},
        examples=[OpenApiExample("One call", request_only=True, value={
            "conversation_id": "conv-8812", "turn_id": "conv-8812-3", "call_id": "call-7",
            "provider": "openai", "model": "gpt-4o-mini", "function_name": "classify_intent",
            "input": "Where is my order?", "output": "order_status", "duration_ms": 210})],
        tags=["ingest"],
    )
    def post(self, request):
        chatbot = request.user.chatbot
        return _ingest(
            self.read_json(request), what="call", batch_key="llm_calls",
            one=lambda raw: llm_calls_ingest(chatbot=chatbot, calls=[parse_call(raw, standalone=True)])[0],
            batch=lambda items: llm_calls_ingest_batch(chatbot=chatbot, items=items),
        )


def _ingest(body, *, what: str, batch_key: str, one, batch) -> Response:
    """One object → 201 stored, 200 replay (or 400); {batch_key: [...]} → 207 with a result per item."""
    try:
        if not isinstance(body, dict):
            raise ValidationFailed({"non_field_errors": [
                f"Expected a JSON object: one {what}, or {{\"{batch_key}\": [...]}}."]})
        items = _batch(body, batch_key)
        if items is None:
            outcome = one(body)
            return Response(_outcome_body(outcome), status=_outcome_status(outcome))
    except ValidationFailed as exc:
        return Response(exc.errors, status=status.HTTP_400_BAD_REQUEST)
    results = [
        {"index": index, "status": status.HTTP_400_BAD_REQUEST, "errors": outcome.errors}
        if isinstance(outcome, ItemRejected)
        else {"index": index, "status": _outcome_status(outcome), **_outcome_body(outcome)}
        for index, outcome in enumerate(batch(items))
    ]
    return Response({"results": results}, status=MULTI_STATUS)


def _outcome_status(outcome: TurnOutcome | EventOutcome | CallOutcome) -> int:
    if isinstance(outcome, EventOutcome):
        return status.HTTP_200_OK
    return status.HTTP_201_CREATED if outcome.created else status.HTTP_200_OK


def _outcome_body(outcome: TurnOutcome | EventOutcome | CallOutcome) -> dict[str, Any]:
    if isinstance(outcome, EventOutcome):
        body = event_result_body(outcome)
    elif isinstance(outcome, TurnOutcome):
        body = turn_result_body(outcome.turn, outcome.conversation_external_id)
    else:
        body = call_result_body(outcome.call, outcome.conversation_external_id)
    # Only when there is something to say: aliases overridden, unknown fields kept or not stored.
    if getattr(outcome, "warnings", ()):
        body["warnings"] = list(outcome.warnings)  # type: ignore[union-attr]
    return body


def event_result_body(outcome: EventOutcome) -> dict[str, Any]:
    """The answer for a conversation event (EventResultSerializer describes it)."""
    conversation = outcome.conversation
    return {
        "event": outcome.event,
        "conversation": conversation.external_id,
        "turn_id": outcome.turn.external_id if outcome.turn else None,
        "ended_at": conversation.ended_at.isoformat().replace("+00:00", "Z") if conversation.ended_at else None,
    }


def turn_result_body(turn: Turn, conversation_external_id: str) -> dict[str, Any]:
    """The answer for a stored turn (TurnResultSerializer describes it)."""
    return {
        "id": turn.pk,
        "conversation": conversation_external_id,
        "turn_id": turn.external_id,
        "risk_score": turn.risk_score,
        "risk_level": turn.risk_level,
        "is_flagged": turn.is_flagged,
        "flag_reasons": list(turn.flag_reasons),
        "feedback_token": feedback_token_for(turn_id=turn.pk, chatbot_id=turn.chatbot_id, issued_at=turn.created_at),
    }


def call_result_body(call: LLMCall, conversation_external_id: str) -> dict[str, Any]:
    """The answer for a stored LLM call (CallResultSerializer describes it)."""
    return {
        "id": call.pk,
        "conversation": conversation_external_id,
        "turn_id": call.turn.external_id if call.turn_id and call.turn else (call.turn_external_id or None),
        "call_id": call.external_id,
        "input_tokens": call.input_tokens,
        "output_tokens": call.output_tokens,
        "tokens_estimated": call.tokens_estimated,
        "cost_usd": str(call.cost_usd),
    }
