"""OTLP export requests → the ingest write path (apps.ingest.services), nothing stored elsewhere.

`traces_export` maps the GenAI spans of one ExportTraceServiceRequest:

1. Flatten the spans; those without gen_ai.operation.name (or an older GenAI marker) are
   counted as ignored. Spans without content pick up log events that arrived first
   (PendingSpanContent).
2. Each GenAI span gets a conversation: its gen_ai.conversation.id / session.id, else the
   nearest ancestor's in the export, else any span's of the same trace, else the trace id.
3. Turns: a chat-like span whose input ends with a user message (looking past tool
   round-trips) and whose output holds an assistant answer, unless an ancestor in the export
   is one too (the outermost wins). Of several in one trace answering the same user message,
   the one that ended last is the turn; the others are its LLM calls.
4. Every GenAI span becomes an LLM call, linked to the turn of its nearest turn ancestor (or
   itself). A content-less chat span is linked to its own id, so a turn made from log events
   later (`logs_export`) finds it.
5. Raw dicts go through parse_turn / parse_call, so limits are the REST API's; a span that
   fails them is rejected (partial success), the rest are stored by turns_ingest (a turn and
   its new calls in one transaction) and llm_calls_ingest (calls without a new turn).
   Ids are f"{trace_id}:{span_id}" in hex for turns and calls: a re-sent export stores nothing.
"""

import json
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.chatbots.models import Chatbot
from apps.conversations.models import LLMCall
from apps.ingest.services import llm_calls_ingest, turns_ingest
from apps.ingest.validation import (
    MAX_LATENCY_MS,
    CallInput,
    TurnInput,
    ValidationFailed,
    parse_call,
    parse_turn,
)
from apps.privacy.redaction import redact

from .mapping import (
    CHOICE_EVENT,
    DETAILS_EVENTS,
    MESSAGE_EVENTS,
    TURN_OPERATIONS,
    SpanContent,
    any_value,
    attributes_dict,
    events_content,
    first_of,
    int_of,
    nanos_to_datetime,
    span_content,
)
from .models import PendingSpanContent

logger = logging.getLogger(__name__)

STATUS_ERROR = 2  # opentelemetry.proto.trace.v1.Status.STATUS_CODE_ERROR
CONVERSATION_ATTRIBUTES = ("gen_ai.conversation.id", "session.id")
USER_ATTRIBUTES = ("user.id", "enduser.id")
GENAI_EVENTS = set(MESSAGE_EVENTS) | {CHOICE_EVENT} | DETAILS_EVENTS
_MAX_REPORTED_ERRORS = 5


@dataclass
class ExportResult:
    accepted: int = 0  # GenAI spans / log events used (stored, replayed or kept for later)
    rejected: int = 0
    ignored: int = 0  # not GenAI: counted, not stored
    errors: list[str] = field(default_factory=list)

    def reject(self, what: str, reason: str) -> None:
        self.rejected += 1
        if len(self.errors) < _MAX_REPORTED_ERRORS:
            self.errors.append(f"{what}: {reason}")

    @property
    def error_message(self) -> str:
        if not self.rejected:
            return ""
        more = self.rejected - len(self.errors)
        return "; ".join(self.errors) + (f"; and {more} more" if more > 0 else "")


@dataclass
class _Span:
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    start_ns: int
    end_ns: int
    status_code: int
    status_message: str
    events: list[tuple[str, Any]]
    operation: str = ""
    content: SpanContent = field(default_factory=SpanContent)
    conversation_id: str = ""
    turn_key: str | None = None

    @property
    def key(self) -> str:
        return f"{self.trace_id}:{self.span_id}"


@dataclass
class _Link:
    """What every span of the export (GenAI or not) contributes to the tree walk."""

    parent_id: str
    conversation_id: str | None


def _operation(attributes: dict[str, Any]) -> str:
    value = first_of(attributes, "gen_ai.operation.name", "llm.request.type")
    if value:
        return str(value)
    # Early GenAI instrumentations set only the provider; they traced chat calls.
    return "chat" if first_of(attributes, "gen_ai.system", "gen_ai.provider.name") else ""


def _conversation_attribute(attributes: Iterable[Any]) -> str | None:
    found = {kv.key: kv.value for kv in attributes if kv.key in CONVERSATION_ATTRIBUTES}
    for name in CONVERSATION_ATTRIBUTES:
        if name in found:
            value = any_value(found[name])
            if value not in (None, ""):
                return str(value)
    return None


def _clip(text: str) -> str:
    text = text.replace("\x00", "")
    limit = settings.INGEST_MAX_TEXT_CHARS
    if len(text) <= limit:
        return text
    marker = " … [truncated]"
    return text[: limit - len(marker)] + marker


def _as_text(messages: list[dict[str, Any]], *, single_role: str) -> str:
    """One plain message's text, or the messages as JSON (what the LLM call page shows)."""
    if not messages:
        return ""
    if len(messages) == 1 and messages[0]["role"] == single_role and not messages[0].get("tool_calls"):
        return messages[0]["content"]
    return json.dumps(messages, ensure_ascii=False)


def traces_export(*, chatbot: Chatbot, request: Any) -> ExportResult:
    """Store the GenAI spans of an ExportTraceServiceRequest; see the module docstring."""
    result = ExportResult()
    links: dict[tuple[str, str], _Link] = {}
    spans: list[_Span] = []
    trace_conversation: dict[str, str] = {}

    # 1. Flatten.
    for resource_spans in request.resource_spans:
        resource = attributes_dict(resource_spans.resource.attributes)
        resource_conversation = first_of(resource, *CONVERSATION_ATTRIBUTES)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                trace_id, span_id = span.trace_id.hex(), span.span_id.hex()
                conversation = _conversation_attribute(span.attributes) or (
                    str(resource_conversation) if resource_conversation else None)
                links[(trace_id, span_id)] = _Link(span.parent_span_id.hex(), conversation)
                if conversation and trace_id not in trace_conversation:
                    trace_conversation[trace_id] = conversation
                attributes = attributes_dict(span.attributes)
                operation = _operation(attributes)
                if not operation:
                    result.ignored += 1
                    continue
                spans.append(_Span(
                    trace_id=trace_id, span_id=span_id, parent_id=span.parent_span_id.hex(), name=span.name,
                    attributes=attributes, resource=resource, start_ns=span.start_time_unix_nano,
                    end_ns=span.end_time_unix_nano, status_code=span.status.code, status_message=span.status.message,
                    events=[(e.name, attributes_dict(e.attributes)) for e in span.events], operation=operation,
                ))
    if not spans:
        return result

    for span in spans:
        span.content = span_content(span.attributes, span.events)
    pending = _pending_content_merge(chatbot, [s for s in spans if s.content.empty and len(s.trace_id) == 32
                                               and len(s.span_id) == 16])

    # 2. Conversations.
    for span in spans:
        span.conversation_id = _conversation_resolve(span, links, trace_conversation)

    # 3. Turns, 4. links from calls to turns.
    by_key = {(s.trace_id, s.span_id): s for s in spans}
    _turns_choose(spans, by_key, links)

    # 5. Validate and store.
    _spans_store(chatbot, spans, result)
    if pending:
        PendingSpanContent.objects.filter(pk__in=pending).delete()
    # Content that landed while this export was being stored: the logs path wrote it after we
    # looked and looked for the calls before we committed. Checking again now (each side writes,
    # commits, then reads) means one of the two always sees the other.
    late = [s.key for s in spans if s.content.empty]
    if late:
        span_contents_apply(chatbot=chatbot, keys=late)
    return result


def _ancestors(trace_id: str, parent_id: str, links: dict[tuple[str, str], _Link]) -> Iterable[tuple[str, str]]:
    seen: set[str] = set()
    while parent_id and parent_id not in seen and (trace_id, parent_id) in links:
        seen.add(parent_id)
        yield trace_id, parent_id
        parent_id = links[(trace_id, parent_id)].parent_id


def _conversation_resolve(span: _Span, links: dict[tuple[str, str], _Link], trace_conversation: dict[str, str]) -> str:
    own = links[(span.trace_id, span.span_id)].conversation_id
    if own:
        return own
    for key in _ancestors(span.trace_id, span.parent_id, links):
        if links[key].conversation_id:
            return links[key].conversation_id  # type: ignore[return-value]
    return trace_conversation.get(span.trace_id) or span.trace_id


def _turns_choose(spans: list[_Span], by_key: dict[tuple[str, str], _Span],
                  links: dict[tuple[str, str], _Link]) -> None:
    """Set span.turn_key (the turn each call belongs to); a turn span's turn_key is its own key.

    The tree walk goes through every span of the export, GenAI or not (an HTTP handler span
    between an agent span and its chat spans does not break the chain).
    """

    def qualifies(key: tuple[str, str]) -> bool:
        span = by_key.get(key)
        return (span is not None and span.operation in TURN_OPERATIONS
                and span.content.user_message() is not None and span.content.answer() is not None)

    def waiting(key: tuple[str, str]) -> bool:
        span = by_key.get(key)
        return span is not None and span.operation in TURN_OPERATIONS and span.content.empty

    outermost = [
        s for s in spans
        if qualifies((s.trace_id, s.span_id))
        and not any(qualifies(a) for a in _ancestors(s.trace_id, s.parent_id, links))
    ]
    # One user message, one turn: of siblings answering it, the last to finish is the answer.
    groups: dict[tuple[str, str, str], list[_Span]] = defaultdict(list)
    for span in outermost:
        groups[(span.trace_id, span.conversation_id, span.content.user_message() or "")].append(span)
    turn_of: dict[tuple[str, str], str] = {}
    for members in groups.values():
        winner = max(members, key=lambda s: (s.end_ns, s.start_ns, s.span_id))
        for member in members:
            turn_of[(member.trace_id, member.span_id)] = winner.key

    # A turn's scope is the subtree of its outermost GenAI ancestor (an agent span, say): spans
    # there that are no turn's own (the agent span, a tool span beside the answer) belong to it
    # when it is the only turn in that scope.
    scope_turns: dict[tuple[str, str], set[str]] = defaultdict(set)
    for winner in set(turn_of.values()):
        trace_id, span_id = winner.split(":")
        genai_ancestors = [k for k in _ancestors(trace_id, by_key[(trace_id, span_id)].parent_id, links) if k in by_key]
        scope_turns[genai_ancestors[-1] if genai_ancestors else (trace_id, span_id)].add(winner)

    for span in spans:
        chain = [(span.trace_id, span.span_id), *_ancestors(span.trace_id, span.parent_id, links)]
        span.turn_key = next((turn_of[k] for k in chain if k in turn_of), None)
        if span.turn_key is None:
            span.turn_key = next((next(iter(scope_turns[k])) for k in chain if len(scope_turns.get(k, ())) == 1), None)
        if span.turn_key is None:
            # A turn may still come from log events: link to the outermost content-less chat span.
            candidates = [k for k in chain if waiting(k)]
            span.turn_key = f"{candidates[-1][0]}:{candidates[-1][1]}" if candidates else None


def _call_raw(span: _Span) -> dict[str, Any]:
    attributes = span.attributes
    model = first_of(attributes, "gen_ai.response.model", "gen_ai.request.model", "llm.response.model",
                     "llm.request.model")
    if span.operation == "execute_tool":
        function_name = first_of(attributes, "gen_ai.tool.name") or span.operation
    elif span.operation in ("invoke_agent", "create_agent"):
        function_name = first_of(attributes, "gen_ai.agent.name") or span.operation
    else:
        function_name = span.operation
    input_tokens = int_of(attributes, "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens",
                          "llm.usage.prompt_tokens")
    output_tokens = int_of(attributes, "gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens",
                           "llm.usage.completion_tokens")
    if not model:
        # Tools and retrievers have no model: no tokens to estimate, no price.
        input_tokens, output_tokens = input_tokens or 0, output_tokens or 0
    duration_ns = span.end_ns - span.start_ns
    error = _error(span)
    raw: dict[str, Any] = {
        "conversation_id": span.conversation_id,
        "turn_id": span.turn_key,
        "call_id": span.key,
        "provider": str(first_of(attributes, "gen_ai.provider.name", "gen_ai.system") or "")[:50],
        "model": str(model or "")[:100],
        "function_name": str(function_name)[:200],
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "duration_ms": min(duration_ns // 1_000_000, MAX_LATENCY_MS) if span.end_ns and duration_ns >= 0 else None,
        "input": _clip(_as_text(span.content.input_json(), single_role="user")),
        "output": _clip(_as_text(span.content.output_json(), single_role="assistant")),
        "error": _clip(error)[:4000] if error else False,
        "timestamp": nanos_to_datetime(span.start_ns).isoformat(),
        "metadata": {"otel": _span_metadata(span)},
    }
    if not model:
        raw["cost_usd"] = 0
    return raw


def _error(span: _Span) -> str:
    error_type = first_of(span.attributes, "error.type")
    if span.status_code != STATUS_ERROR and not error_type:
        return ""
    parts = [str(p) for p in (error_type, span.status_message) if p]
    return ": ".join(parts) or "error"


def _span_metadata(span: _Span) -> dict[str, Any]:
    attributes = span.attributes
    finish = first_of(attributes, "gen_ai.response.finish_reasons")
    meta = {
        "trace_id": span.trace_id, "span_id": span.span_id, "parent_span_id": span.parent_id,
        "span_name": span.name[:200], "operation": span.operation[:100],
        "service_name": str(span.resource.get("service.name") or "")[:200],
        "response_id": str(first_of(attributes, "gen_ai.response.id") or "")[:200],
        "finish_reasons": [str(f)[:50] for f in finish][:10] if isinstance(finish, list) else [],
    }
    return {k: v for k, v in meta.items() if v}


def _turn_raw(span: _Span, call: dict[str, Any]) -> dict[str, Any]:
    user_id = first_of(span.attributes, *USER_ATTRIBUTES) or first_of(span.resource, *USER_ATTRIBUTES)
    return {
        "conversation_id": span.conversation_id,
        "turn_id": span.key,
        "user_id": str(user_id)[:255] if user_id else None,
        "user_message": _clip(span.content.user_message() or ""),
        "bot_response": _clip(span.content.answer() or ""),
        "timestamp": nanos_to_datetime(span.end_ns or span.start_ns).isoformat(),
        "latency_ms": call["duration_ms"],
        "error": call["error"],
        "model": call["model"],
        "metadata": call["metadata"],
    }


def _spans_store(chatbot: Chatbot, spans: list[_Span], result: ExportResult) -> None:
    calls: dict[str, CallInput] = {}
    turns: dict[str, TurnInput] = {}
    for span in spans:
        raw = _call_raw(span)
        try:
            calls[span.key] = parse_call(raw, standalone=True)
        except ValidationFailed as exc:
            result.reject(f"span {span.key}", _errors_text(exc.errors))
            continue
        if span.turn_key == span.key and span.content.user_message() is not None:
            try:
                turns[span.key] = parse_turn(_turn_raw(span, raw))
            except ValidationFailed as exc:
                result.reject(f"span {span.key} (stored as an LLM call, not as a turn)", _errors_text(exc.errors))
        result.accepted += 1
    if not calls:
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


# --- log events ----------------------------------------------------------------------------

def _pending_content_merge(chatbot: Chatbot, spans: list[_Span]) -> list[int]:
    """Give content-less spans the content of log events received before them; ids used."""
    if not spans:
        return []
    wanted = {(s.trace_id, s.span_id): s for s in spans}
    rows = PendingSpanContent.objects.filter(
        chatbot=chatbot, trace_id__in={t for t, _ in wanted}, span_id__in={s for _, s in wanted})
    used = []
    for row in rows:
        span = wanted.get((row.trace_id, row.span_id))
        if span is None:
            continue
        span.content = events_content((name, payload) for name, payload, *_ in row.events)
        used.append(row.pk)
    return used


def logs_export(*, chatbot: Chatbot, request: Any) -> ExportResult:
    """Keep the GenAI content events of an ExportLogsServiceRequest and apply them to their spans.

    1. Log records named like GenAI content events (gen_ai.user.message, gen_ai.choice, …)
       and correlated to a span are merged into PendingSpanContent (re-sent events dedupe).
    2. For spans whose LLM call is already stored, the content fills in the call's text and,
       for a chat span that is its own turn, creates that turn (turns_ingest) — see
       span_contents_apply. Others wait for their span (traces_export picks them up).
    Records that are not GenAI events are ignored and counted.
    """
    result = ExportResult()
    incoming: dict[tuple[str, str], list[list[Any]]] = defaultdict(list)
    for resource_logs in request.resource_logs:
        for scope_logs in resource_logs.scope_logs:
            for sequence, record in enumerate(scope_logs.log_records):
                attributes = attributes_dict(record.attributes)
                name = record.event_name or str(attributes.pop("event.name", "") or "")
                if name not in GENAI_EVENTS:
                    result.ignored += 1
                    continue
                trace_id, span_id = record.trace_id.hex(), record.span_id.hex()
                if len(trace_id) != 32 or len(span_id) != 16 or not int(trace_id, 16) or not int(span_id, 16):
                    result.reject(f"log event {name}", "not correlated to a span (no trace_id/span_id)")
                    continue
                body = any_value(record.body) if record.HasField("body") else None
                payload = dict(body) if isinstance(body, dict) else ({"content": body} if body is not None else {})
                for key, value in attributes.items():
                    if key.startswith("gen_ai.") and key not in ("gen_ai.system", "gen_ai.provider.name"):
                        payload.setdefault(key, value)
                when = record.time_unix_nano or record.observed_time_unix_nano
                incoming[(trace_id, span_id)].append([name, payload, when, sequence])
                result.accepted += 1
    if not incoming:
        return result
    keys = _pending_content_store(chatbot, incoming)
    span_contents_apply(chatbot=chatbot, keys=keys)
    return result


def _pending_content_store(chatbot: Chatbot, incoming: dict[tuple[str, str], list[list[Any]]]) -> list[str]:
    now = timezone.now()
    with transaction.atomic():
        PendingSpanContent.objects.bulk_create(
            [PendingSpanContent(chatbot=chatbot, trace_id=t, span_id=s, events=[], first_event_at=now)
             for t, s in incoming],
            ignore_conflicts=True,
        )
        rows = list(
            PendingSpanContent.objects.select_for_update()
            .filter(chatbot=chatbot, trace_id__in={t for t, _ in incoming}, span_id__in={s for _, s in incoming})
            .order_by("id")
        )
        changed = []
        for row in rows:
            events = incoming.get((row.trace_id, row.span_id))
            if events is None:
                continue
            seen = {_event_identity(e) for e in row.events}
            merged = row.events + [e for e in events if _event_identity(e) not in seen]
            # Emission order: time, then position in the export.
            row.events = sorted(merged, key=lambda e: (e[2] or 0, e[3]))
            times = [e[2] for e in row.events if e[2]]
            row.first_event_at = nanos_to_datetime(min(times)) if times else now
            changed.append(row)
        PendingSpanContent.objects.bulk_update(changed, ["events", "first_event_at", "updated_at"])
    return [f"{t}:{s}" for t, s in incoming]


def _event_identity(event: list[Any]) -> str:
    name, payload, when, sequence = event
    return json.dumps([name, payload, when, sequence], sort_keys=True, default=str)


def span_contents_apply(*, chatbot: Chatbot, keys: list[str]) -> int:
    """Apply waiting log content to the LLM calls stored for these span keys; how many applied.

    LLM calls are found by chatbot and time (the indexed columns) — a span starts at most
    OTLP_LOG_SPAN_WINDOW_MINUTES before its first event — then by external id.
    """
    wanted = set(keys)
    trace_ids, span_ids = set(), set()
    for key in wanted:
        trace_id, span_id = key.split(":")
        trace_ids.add(trace_id)
        span_ids.add(span_id)
    rows = {
        r.span_key: r
        for r in PendingSpanContent.objects.filter(chatbot=chatbot, trace_id__in=trace_ids, span_id__in=span_ids)
        if r.span_key in wanted
    }
    if not rows:
        return 0
    window = timedelta(minutes=settings.OTLP_LOG_SPAN_WINDOW_MINUTES)
    earliest = min(r.first_event_at for r in rows.values()) - window
    latest = max(r.first_event_at for r in rows.values()) + timedelta(minutes=1)
    calls = list(
        LLMCall.objects.select_related("conversation").filter(
            chatbot=chatbot, timestamp__gte=earliest, timestamp__lte=latest, external_id__in=list(rows))
    )
    turns: list[TurnInput] = []
    applied: list[int] = []
    for call in calls:
        row = rows[call.external_id]
        content = events_content((name, payload) for name, payload, *_ in row.events)
        applied.append(row.pk)
        if content.empty:
            continue
        if not call.input_text and not call.output_text:
            texts = {"input_text": _clip(_as_text(content.input_json(), single_role="user")),
                     "output_text": _clip(_as_text(content.output_json(), single_role="assistant"))}
            if chatbot.pii_redaction_enabled:
                # As for calls sent with their content: only redacted text is stored.
                texts = {name: redact(text)[0] for name, text in texts.items()}
            LLMCall.objects.filter(pk=call.pk, input_text="", output_text="").update(**texts)
        operation = (call.metadata.get("otel") or {}).get("operation", "")
        user_message, answer = content.user_message(), content.answer()
        if (call.turn_id is None and call.turn_external_id == call.external_id and operation in TURN_OPERATIONS
                and user_message is not None and answer is not None and call.conversation is not None):
            try:
                turns.append(parse_turn({
                    "conversation_id": call.conversation.external_id, "turn_id": call.external_id,
                    "user_message": _clip(user_message), "bot_response": _clip(answer),
                    "timestamp": (call.timestamp + timedelta(milliseconds=call.duration_ms or 0)).isoformat(),
                    "latency_ms": call.duration_ms, "error": call.error or (not call.success),
                    "model": call.model, "metadata": {"otel": call.metadata.get("otel") or {}},
                    # Measured by its LLM call, which links to it (stored earlier, same turn_id).
                    "tokens": {"prompt": 0, "completion": 0}, "cost_usd": 0,
                }))
            except ValidationFailed as exc:
                logger.warning("otel: log content for span %s makes no valid turn: %s", call.external_id, exc.errors)
    if turns:
        turns_ingest(chatbot=chatbot, turns=turns)
    PendingSpanContent.objects.filter(pk__in=applied).delete()
    return len(applied)


def pending_content_sweep(*, older_than_seconds: int = 60) -> dict[str, int]:
    """Apply content whose span arrived meanwhile (the two exporters raced); purge the stale."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    applied = 0
    by_chatbot: dict[int, list[str]] = defaultdict(list)
    for row in PendingSpanContent.objects.filter(received_at__lt=cutoff).only(
            "chatbot_id", "trace_id", "span_id").order_by("id")[:10000]:
        by_chatbot[row.chatbot_id].append(row.span_key)
    for chatbot in Chatbot.objects.filter(pk__in=list(by_chatbot)):
        applied += span_contents_apply(chatbot=chatbot, keys=by_chatbot[chatbot.pk])
    expired = timezone.now() - timedelta(hours=settings.OTLP_PENDING_CONTENT_HOURS)
    purged, _ = PendingSpanContent.objects.filter(received_at__lt=expired).delete()
    return {"applied": applied, "purged": purged}
