"""OTLP trace exports → the ingest write path (apps.ingest.services), nothing stored elsewhere.

`traces_export` stores the GenAI spans of one ExportTraceServiceRequest:

1. spans.py reads the span tree (pure): GenAI spans, their content and conversations.
2. Spans without content pick up log events that arrived first (log_events.py).
3. spans.py chooses the turns and links every call to its turn (pure).
4. Raw dicts go through parse_turn / parse_call, so limits are the REST API's; a span that
   fails them is rejected (partial success), the rest are stored by turns_ingest (a turn and
   its new calls in one transaction) and llm_calls_ingest (calls without a new turn).
   Ids are f"{trace_id}:{span_id}" in hex for turns and calls: a re-sent export stores nothing.
5. Step spans (tool, SQL, retrieval: steps.py) become steps, never LLM calls: of their turn in
   this export (stored with it), else of their turn (or their trace's latest turn) stored
   before (turn_steps_add), else they wait as PendingStep, already redacted, until a turn of
   their trace is stored. Each side writes, then looks for the other (`_pending_steps_claim`
   runs after both), so a step and its turn exported concurrently still meet. A SQL span whose
   trace shows no GenAI span in the export and has no turn stored is ignored (an app's other
   database traffic). The span key is the step's external_id: a re-sent export stores nothing.
"""

import dataclasses
import json
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from apps.chatbots.models import Chatbot
from apps.conversations.choices import Consent
from apps.conversations.models import Turn
from apps.core.db import prepared_cursor
from apps.core.text import json_nul_replace
from apps.ingest.services import llm_calls_ingest, turn_steps_add, turns_ingest
from apps.ingest.validation import (
    MAX_STEPS_PER_TURN,
    CallInput,
    StepInput,
    TurnInput,
    ValidationFailed,
    parse_call,
    parse_step,
    parse_turn,
)
from apps.privacy.hashing import end_user_hash
from apps.privacy.policy import json_redact_for, text_redact_for, text_withheld

from .log_events import PENDING_END_USER_KEY, pending_content_merge, span_contents_apply
from .models import PendingSpanContent, PendingStep
from .otlp import ExportResult
from .spans import (
    CONSENT_ATTRIBUTE,
    Span,
    span_call_raw,
    span_consent,
    span_error,
    span_is_structural,
    span_tree_read,
    span_turn_raw,
    span_turns_choose,
)
from .steps import DB_OPERATION, span_step_kind, span_step_raw


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
    spans_store(chatbot, tree.spans, result)
    if pending:
        PendingSpanContent.objects.filter(pk__in=pending).delete()
    # Content that landed while this export was being stored: the logs path wrote it after we
    # looked and looked for the calls before we committed. Checking again now (each side writes,
    # commits, then reads) means one of the two always sees the other.
    late = [s.key for s in tree.spans if s.content.empty]
    if late:
        span_contents_apply(chatbot=chatbot, keys=late)
    return result


def spans_store(chatbot: Chatbot, spans: list[Span], result: ExportResult) -> None:
    """Steps 4 and 5 for spans whose turns are chosen (also the Langfuse 2.x ingestion's path)."""
    calls: dict[str, CallInput] = {}
    turns: dict[str, TurnInput] = {}
    steps: list[tuple[Span, StepInput]] = []
    genai_traces = {s.trace_id for s in spans if s.operation != DB_OPERATION}
    for span in spans:
        if span_step_kind(span.operation):
            if span.operation == DB_OPERATION and span.trace_id not in genai_traces and span.turn_key is None:
                steps.append((span, None))  # type: ignore[arg-type]  # kept only if its trace has a turn
                continue
            try:
                step = parse_step(span_step_raw(span, error=span_error(span)))
            except ValidationFailed as exc:
                result.reject(f"span {span.key}", _errors_text(exc.errors))
                continue
            step.external_id = span.key
            steps.append((span, step))
            continue
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
    steps = _db_steps_keep(chatbot, steps, result)
    # A turn in this export carries its steps (in the order they started).
    later: list[tuple[Span, StepInput]] = []
    for span, step in sorted(steps, key=lambda item: (item[0].start_ns, item[0].span_id)):
        turn = turns.get(span.turn_key or "")
        if turn is not None and len(turn.steps) < MAX_STEPS_PER_TURN:
            turn.steps.append(step)
            result.accepted += 1
        elif turn is not None:
            result.reject(f"span {span.key}", f"At most {MAX_STEPS_PER_TURN} steps per turn.")
        else:
            later.append((span, step))
    replayed: list[tuple[Span, StepInput]] = []
    if calls or turns:
        replayed_turns = _calls_and_turns_store(chatbot, calls, turns)
        # A replayed turn may be re-sent with a step exported late: added unless it is stored.
        replayed = [(span, step) for span, step in steps if span.turn_key in replayed_turns]
    if later:
        _steps_store(chatbot, later, result)
    if replayed:
        _steps_store(chatbot, replayed, ExportResult())  # counted above
    if turns or later:
        _pending_steps_claim(chatbot, trace_ids={key.split(":")[0] for key in turns} | {s.trace_id for s, _ in later})


def _calls_and_turns_store(chatbot: Chatbot, calls: dict[str, CallInput], turns: dict[str, TurnInput]) -> set[str]:
    """Store the export's LLM calls and turns; the keys of turns that were stored before."""
    replayed: set[str] = set()
    # A turn carries its calls; those stored earlier (a span first stored as a call alone) are
    # dropped by turns_ingest under the conversation's lock, and the turn is measured by the rest.
    with_turn: dict[str, list[CallInput]] = defaultdict(list)
    standalone: list[CallInput] = []
    for call in calls.values():
        if call.turn_id in turns:
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
                replayed.add(turn.turn_id or "")
    if standalone:
        llm_calls_ingest(chatbot=chatbot, calls=standalone)
    return replayed


def _db_steps_keep(chatbot: Chatbot, steps: list[tuple[Span, StepInput | None]],
                   result: ExportResult) -> list[tuple[Span, StepInput]]:
    """SQL spans of traces without GenAI in this export are steps only if the trace has a turn."""
    orphans = [span for span, step in steps if step is None]
    if not orphans:
        return steps  # type: ignore[return-value]
    traces = _traces_with_turns(chatbot, {span.trace_id for span in orphans})
    kept: list[tuple[Span, StepInput]] = []
    for span, step in steps:
        if step is None and span.trace_id not in traces:
            result.ignored += 1
            continue
        if step is None:
            try:
                step = parse_step(span_step_raw(span, error=span_error(span)))
            except ValidationFailed as exc:
                result.reject(f"span {span.key}", _errors_text(exc.errors))
                continue
            step.external_id = span.key
        kept.append((span, step))
    return kept


def _traces_with_turns(chatbot: Chatbot, trace_ids: set[str]) -> set[str]:
    found: set[str] = set()
    for trace_id in trace_ids:
        if Turn.objects.filter(chatbot=chatbot, external_id__startswith=f"{trace_id}:").exists():
            found.add(trace_id)
    return found


def _turn_for_step(chatbot: Chatbot, *, trace_id: str, turn_key: str) -> Turn | None:
    """The step's turn: the turn span the export showed, else the trace's latest turn."""
    if turn_key:
        turn = Turn.objects.filter(chatbot=chatbot, external_id=turn_key).select_related("conversation").first()
        if turn is not None:
            return turn
    return (Turn.objects.filter(chatbot=chatbot, external_id__startswith=f"{trace_id}:")
            .select_related("conversation").order_by("-timestamp", "-id").first())


def _steps_store(chatbot: Chatbot, steps: list[tuple[Span, StepInput]], result: ExportResult) -> None:
    """Steps whose turn is not in this export: onto their stored turn, or kept as PendingStep."""
    found: list[tuple[Turn, StepInput]] = []
    waiting: list[PendingStep] = []
    turns: dict[tuple[str, str], Turn | None] = {}
    for span, step in steps:
        where = (span.trace_id, span.turn_key or "")
        if where not in turns:
            turns[where] = _turn_for_step(chatbot, trace_id=span.trace_id, turn_key=span.turn_key or "")
        if turns[where] is not None:
            found.append((turns[where], step))  # type: ignore[arg-type]
        elif 0 < len(span.trace_id) <= 64 and 0 < len(span.span_id) <= 64:
            waiting.append(PendingStep(chatbot=chatbot, trace_id=span.trace_id, span_id=span.span_id,
                                       turn_key=span.turn_key or "", step=_step_redacted(chatbot, step)))
        else:
            result.reject(f"span {span.key}", "Malformed trace or span id.")
            continue
        result.accepted += 1
    turn_steps_add(chatbot=chatbot, steps=found)
    if waiting:
        PendingStep.objects.bulk_create(waiting, ignore_conflicts=True)


def _step_redacted(chatbot: Chatbot, step: StepInput) -> dict[str, Any]:
    """What a pending step keeps: its fields, texts and metadata redacted by the chatbot's policy."""
    fields = json_nul_replace(dataclasses.asdict(step))
    for name in ("input_text", "output_text", "error"):
        fields[name], _ = text_redact_for(chatbot, fields[name])
    fields["metadata"], _ = json_redact_for(chatbot, fields["metadata"])
    return fields


def _pending_steps_claim(chatbot: Chatbot, *, trace_ids: set[str]) -> int:
    """Move the pending steps of these traces onto their turns, once a turn of theirs exists."""
    if not _pending_steps_exist(chatbot, trace_ids):
        return 0  # the usual case, after every export with a turn: one prepared probe
    pending = list(PendingStep.objects.filter(chatbot=chatbot, trace_id__in=trace_ids))
    if not pending:
        return 0
    found: list[tuple[Turn, StepInput]] = []
    claimed: list[int] = []
    for row in pending:
        turn = _turn_for_step(chatbot, trace_id=row.trace_id, turn_key=row.turn_key)
        if turn is None:
            continue
        found.append((turn, StepInput(**row.step)))
        claimed.append(row.pk)
    stored = turn_steps_add(chatbot=chatbot, steps=found)
    PendingStep.objects.filter(pk__in=claimed).delete()
    return stored


_PENDING_STEPS_EXIST_SQL = (
    f'SELECT 1 FROM "{PendingStep._meta.db_table}" WHERE "chatbot_id" = %s AND "trace_id" = ANY(%s) LIMIT 1'
)


def _pending_steps_exist(chatbot: Chatbot, trace_ids: set[str]) -> bool:
    if connection.vendor != "postgresql":
        return PendingStep.objects.filter(chatbot=chatbot, trace_id__in=trace_ids).exists()
    with prepared_cursor() as cursor:
        cursor.execute(_PENDING_STEPS_EXIST_SQL, [chatbot.pk, list(trace_ids)])
        return cursor.fetchone() is not None


def _errors_text(errors: dict[str, Any]) -> str:
    return json.dumps(errors, ensure_ascii=False)[:300]


def pending_steps_sweep(*, older_than_seconds: int = 60) -> int:
    """Claim pending steps whose turn was stored by another path (a turn made from log events
    after its span); the rest wait for their trace or expire (log_events.pending_content_sweep)."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    by_chatbot: dict[int, set[str]] = defaultdict(set)
    for chatbot_id, trace_id in (PendingStep.objects.filter(received_at__lt=cutoff)
                                 .values_list("chatbot_id", "trace_id")[:10000]):
        by_chatbot[chatbot_id].add(trace_id)
    return sum(_pending_steps_claim(chatbot, trace_ids=by_chatbot[chatbot.pk])
               for chatbot in Chatbot.objects.filter(pk__in=list(by_chatbot)))
