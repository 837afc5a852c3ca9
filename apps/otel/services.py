"""OTLP trace exports → the ingest write path (apps.ingest.services), nothing stored elsewhere.

`traces_export` stores the GenAI spans of one ExportTraceServiceRequest:

1. spans.py reads the span tree (pure): GenAI spans, their content and conversations.
2. Spans without content pick up log events that arrived first (log_events.py).
3. spans.py chooses the turns and links every call to its turn (pure).
4. Raw dicts go through parse_turn / parse_call, so limits are the REST API's; a span that
   fails them is rejected (partial success), the rest are stored by turns_ingest (a turn and
   its new calls in one transaction) and llm_calls_ingest (calls without a new turn).
   Ids are f"{trace_id}:{span_id}" in hex for turns and calls: a re-sent export stores nothing.
"""

import json
from collections import defaultdict
from decimal import Decimal
from typing import Any

from django.conf import settings

from apps.chatbots.models import Chatbot
from apps.conversations.choices import Consent
from apps.conversations.models import LLMCall
from apps.ingest.services import llm_calls_ingest, turns_ingest
from apps.ingest.validation import CallInput, TurnInput, ValidationFailed, parse_call, parse_turn
from apps.privacy.hashing import end_user_hash
from apps.privacy.policy import text_withheld

from .log_events import PENDING_END_USER_KEY, pending_content_merge, span_contents_apply
from .models import PendingSpanContent
from .otlp import ExportResult
from .spans import (
    CONSENT_ATTRIBUTE,
    Span,
    span_call_raw,
    span_consent,
    span_is_structural,
    span_tree_read,
    span_turn_raw,
    span_turns_choose,
)


def traces_export(*, chatbot: Chatbot, request: Any) -> ExportResult:
    """Store the GenAI spans of an ExportTraceServiceRequest; see the module docstring."""
    tree = span_tree_read(request, max_attributes=settings.OTLP_MAX_ATTRIBUTES_PER_SPAN,
                          max_events=settings.OTLP_MAX_EVENTS_PER_SPAN)
    result = ExportResult(ignored=tree.ignored)
    for key, reason in tree.rejected:
        result.reject(f"span {key}", reason)
    if not tree.spans:
        return result
    pending = pending_content_merge(chatbot, [s for s in tree.spans if s.content.empty and len(s.trace_id) == 32
                                              and len(s.span_id) == 16])
    span_turns_choose(tree)
    _spans_store(chatbot, tree.spans, result)
    if pending:
        PendingSpanContent.objects.filter(pk__in=pending).delete()
    # Content that landed while this export was being stored: the logs path wrote it after we
    # looked and looked for the calls before we committed. Checking again now (each side writes,
    # commits, then reads) means one of the two always sees the other.
    late = [s.key for s in tree.spans if s.content.empty]
    if late:
        span_contents_apply(chatbot=chatbot, keys=late)
    return result


def _spans_store(chatbot: Chatbot, spans: list[Span], result: ExportResult) -> None:
    calls: dict[str, CallInput] = {}
    turns: dict[str, TurnInput] = {}
    for span in spans:
        raw = span_call_raw(span)
        consent = span_consent(span)
        if consent and consent not in Consent.values:
            # Refused whole: stored as a call, its text would ignore what the end user asked.
            result.reject(f"span {span.key}", f"{CONSENT_ATTRIBUTE} must be one of {', '.join(Consent.values)}")
            continue
        if consent == Consent.NO_CONTENT:
            raw["input"], raw["output"] = text_withheld(raw["input"]), text_withheld(raw["output"])
            if isinstance(raw["error"], str):
                raw["error"] = text_withheld(raw["error"])
        if span.content.empty and span.user_id:
            # Its content may come later as log events, and the turn built then (log_events.py)
            # must still name its end user: kept with the call, hashed like every other path.
            hashed = end_user_hash(chatbot_id=chatbot.pk, user_id=span.user_id)
            if hashed:
                raw["metadata"]["otel"][PENDING_END_USER_KEY] = hashed
        structural = span_is_structural(span)
        is_turn = span.turn_key == span.key and span.content.user_message() is not None
        if structural and not is_turn:
            result.ignored += 1  # a chain inside the turn: structure, not work
            continue
        if not structural:
            try:
                calls[span.key] = parse_call(raw, standalone=True)
            except ValidationFailed as exc:
                result.reject(f"span {span.key}", _errors_text(exc.errors))
                continue
        if is_turn:
            try:
                turns[span.key] = parse_turn(span_turn_raw(span, raw))
                turns[span.key].pii_found = span.pii_found
            except ValidationFailed as exc:
                if structural:
                    result.reject(f"span {span.key}", _errors_text(exc.errors))
                    continue
                result.reject(f"span {span.key} (stored as an LLM call, not as a turn)", _errors_text(exc.errors))
        result.accepted += 1
    if not calls and not turns:
        return

    stored = set(
        LLMCall.objects.filter(
            conversation__chatbot=chatbot,
            conversation__external_id__in={c.conversation_id for c in calls.values()},
            external_id__in=list(calls),
        ).values_list("external_id", flat=True)
    )
    # A turn carries its calls that are new; a turn measured by calls stored earlier has none.
    with_turn: dict[str, list[CallInput]] = defaultdict(list)
    standalone: list[CallInput] = []
    for key, call in calls.items():
        if call.turn_id in turns and key not in stored:
            with_turn[call.turn_id].append(call)
        else:
            standalone.append(call)
    turn_list = list(turns.values())
    for turn in turn_list:
        turn.llm_calls = with_turn.get(turn.turn_id or "", [])
        if not turn.model:
            # A chain turn has no model of its own: the model that wrote the answer (the last call).
            turn.model = next((c.model for c in reversed(turn.llm_calls) if c.model), "")
        if not turn.llm_calls:
            turn.prompt_tokens = turn.completion_tokens = 0
            turn.cost_usd = Decimal(0)
    if turn_list:
        for turn, outcome in zip(turn_list, turns_ingest(chatbot=chatbot, turns=turn_list), strict=True):
            if not outcome.created:
                # Its calls that are new (a child span exported late) go in on their own.
                standalone.extend(turn.llm_calls)
    if standalone:
        llm_calls_ingest(chatbot=chatbot, calls=standalone)


def _errors_text(errors: dict[str, Any]) -> str:
    return json.dumps(errors, ensure_ascii=False)[:300]
