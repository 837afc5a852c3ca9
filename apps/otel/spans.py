"""An OTLP trace export → the turns and LLM calls it describes, as the REST API's raw dicts.

Pure functions: no database, no settings beyond the text limit, so every rule of the mapping
can be tested on a request built in memory. services.py stores what comes out.

1. Flatten the spans (`span_tree_read`); those without gen_ai.operation.name (or an older
   GenAI marker, or a span kind of OpenInference, OpenLLMetry or Langfuse: conventions.py) are
   counted as ignored. Each span's content comes from its attributes and span events
   (services.py adds log events that arrived first); end users are found as conversations are.
2. Each GenAI span gets a conversation: its gen_ai.conversation.id / session.id, else the
   nearest ancestor's in the export, else any span's of the same trace, else the trace id.
3. Turns (`span_turns_choose`): a chat-like span whose input ends with a user message (looking
   past tool round-trips) and whose output holds an assistant answer, unless an ancestor in the
   export is one too (the outermost wins). Of several in one trace answering the same user
   message, the one that ended last is the turn; the others are its LLM calls.
4. Every GenAI span but a structural one (a chain, workflow or plain span: `span_is_structural`)
   becomes an LLM call (`span_call_raw`), linked to the turn of its nearest
   turn ancestor (or itself). A content-less chat span is linked to its own id, so a turn made
   from log events later finds it. A turn span also gives a turn (`span_turn_raw`).
   Ids are f"{trace_id}:{span_id}" in hex for turns and calls: a re-sent export stores nothing.
"""

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from apps.core.text import nul_replace
from apps.ingest.validation import MAX_LATENCY_MS
from apps.privacy.hashing import end_user_id_normalise

from .conventions import (
    CONVERSATION_ATTRIBUTES,
    INPUT_TOKEN_ATTRIBUTES,
    MODEL_ATTRIBUTES,
    NAMED_OPERATIONS,
    OUTPUT_TOKEN_ATTRIBUTES,
    PROVIDER_ATTRIBUTES,
    STRUCTURAL_OPERATIONS,
    USER_ATTRIBUTES,
    convention_content,
    convention_error,
    convention_metadata,
    convention_of,
    convention_operation,
    convention_text,
    cost_sent,
    usage_tokens,
)
from .mapping import (
    TURN_OPERATIONS,
    SpanContent,
    any_value,
    attributes_dict,
    first_of,
    int_of,
    nanos_to_datetime,
    span_content,
)

STATUS_ERROR = 2  # opentelemetry.proto.trace.v1.Status.STATUS_CODE_ERROR


@dataclass
class Span:
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
    user_id: str | None = None
    turn_key: str | None = None
    # Counts of PII redacted from log content this span picked up from PendingSpanContent.
    pii_found: dict[str, int] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.trace_id}:{self.span_id}"


@dataclass
class SpanLink:
    """What every span of the export (GenAI or not) contributes to the tree walk."""

    parent_id: str
    conversation_id: str | None
    user_id: str | None = None


@dataclass
class SpanTree:
    """The spans of one export: the GenAI ones in order, and the parent links of all of them."""

    spans: list[Span]
    links: dict[tuple[str, str], SpanLink]
    ignored: int = 0  # spans that are not GenAI
    # (span key, reason) of spans over the per-span limits: rejected, never mapped.
    rejected: list[tuple[str, str]] = field(default_factory=list)


def span_tree_read(request: Any, *, max_attributes: int | None = None, max_events: int | None = None) -> SpanTree:
    """Steps 1 and 2: the GenAI spans of an ExportTraceServiceRequest, with content and conversation.

    A span with more than `max_attributes` attributes or `max_events` events is rejected before
    its attributes are read (it still links its children to its parent).
    """
    links: dict[tuple[str, str], SpanLink] = {}
    spans: list[Span] = []
    rejected: list[tuple[str, str]] = []
    trace_conversation: dict[str, str] = {}
    trace_user: dict[str, str] = {}
    ignored = 0
    for resource_spans in request.resource_spans:
        resource = attributes_dict(resource_spans.resource.attributes)
        resource_conversation = first_of(resource, *CONVERSATION_ATTRIBUTES)
        resource_user = first_of(resource, *USER_ATTRIBUTES)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                trace_id, span_id = span.trace_id.hex(), span.span_id.hex()
                over = _over_limits(span, max_attributes, max_events)
                if over:
                    links[(trace_id, span_id)] = SpanLink(span.parent_span_id.hex(), None)
                    rejected.append((f"{trace_id}:{span_id}", over))
                    continue
                conversation = _attribute_value(span.attributes, CONVERSATION_ATTRIBUTES) or (
                    str(resource_conversation) if resource_conversation else None)
                user = _attribute_value(span.attributes, USER_ATTRIBUTES) or (
                    str(resource_user) if resource_user else None)
                links[(trace_id, span_id)] = SpanLink(span.parent_span_id.hex(), conversation, user)
                if conversation and trace_id not in trace_conversation:
                    trace_conversation[trace_id] = conversation
                if user and trace_id not in trace_user:
                    trace_user[trace_id] = user
                attributes = attributes_dict(span.attributes)
                operation = _operation(attributes)
                if not operation:
                    ignored += 1
                    continue
                spans.append(Span(
                    trace_id=trace_id, span_id=span_id, parent_id=span.parent_span_id.hex(), name=span.name,
                    attributes=attributes, resource=resource, start_ns=span.start_time_unix_nano,
                    end_ns=span.end_time_unix_nano, status_code=span.status.code, status_message=span.status.message,
                    events=[(e.name, attributes_dict(e.attributes)) for e in span.events], operation=operation,
                ))
    for span in spans:
        span.content = span_content(span.attributes, span.events)
        if not span.content.input:
            span.content.input = convention_content(span.attributes, output=False)
        if not span.content.output:
            span.content.output = convention_content(span.attributes, output=True)
        span.conversation_id = _conversation_resolve(span, links, trace_conversation)
        span.user_id = _user_resolve(span, links, trace_user)
    return SpanTree(spans=spans, links=links, ignored=ignored, rejected=rejected)


def _over_limits(span: Any, max_attributes: int | None, max_events: int | None) -> str:
    if max_attributes is not None and len(span.attributes) > max_attributes:
        return f"{len(span.attributes)} attributes; at most {max_attributes} per span"
    if max_events is not None and len(span.events) > max_events:
        return f"{len(span.events)} events; at most {max_events} per span"
    return ""


def _operation(attributes: dict[str, Any]) -> str:
    value = first_of(attributes, "gen_ai.operation.name") or convention_operation(attributes) or first_of(
        attributes, "llm.request.type")
    if value:
        return str(value)
    # Early GenAI instrumentations set only the provider; they traced chat calls.
    return "chat" if first_of(attributes, "gen_ai.system", "gen_ai.provider.name") else ""


def _attribute_value(attributes: Iterable[Any], names: tuple[str, ...]) -> str | None:
    """The first of `names` set on a span, read off the raw key-values (every span of the export
    is read for its conversation and user, GenAI or not: no dict built for the others)."""
    found = {kv.key: kv.value for kv in attributes if kv.key in names}
    for name in names:
        if name in found:
            value = any_value(found[name])
            if value not in (None, ""):
                return str(value)
    return None


def text_clip(text: str) -> str:
    text = nul_replace(text)  # as for REST free text: NUL → U+FFFD
    limit = settings.INGEST_MAX_TEXT_CHARS
    if len(text) <= limit:
        return text
    marker = " … [truncated]"
    return text[: limit - len(marker)] + marker


def messages_text(messages: list[dict[str, Any]], *, single_role: str) -> str:
    """One plain message's text, or the messages as JSON (what the LLM call page shows)."""
    if not messages:
        return ""
    if len(messages) == 1 and messages[0]["role"] == single_role and not messages[0].get("tool_calls"):
        return messages[0]["content"]
    return json.dumps(messages, ensure_ascii=False)


def _ancestors(trace_id: str, parent_id: str, links: dict[tuple[str, str], SpanLink]) -> Iterable[tuple[str, str]]:
    seen: set[str] = set()
    while parent_id and parent_id not in seen and (trace_id, parent_id) in links:
        seen.add(parent_id)
        yield trace_id, parent_id
        parent_id = links[(trace_id, parent_id)].parent_id


def _conversation_resolve(span: Span, links: dict[tuple[str, str], SpanLink], trace_conversation: dict[str, str]) -> str:
    own = links[(span.trace_id, span.span_id)].conversation_id
    if own:
        return own
    for key in _ancestors(span.trace_id, span.parent_id, links):
        if links[key].conversation_id:
            return links[key].conversation_id  # type: ignore[return-value]
    return trace_conversation.get(span.trace_id) or span.trace_id


def _user_resolve(span: Span, links: dict[tuple[str, str], SpanLink], trace_user: dict[str, str]) -> str | None:
    """The end user, found as the conversation is (Langfuse and OpenLLMetry set it on the trace's
    spans, OpenInference on whichever span the bot wrapped in using_user)."""
    for key in [(span.trace_id, span.span_id), *_ancestors(span.trace_id, span.parent_id, links)]:
        if links[key].user_id:
            return links[key].user_id
    return trace_user.get(span.trace_id)


def span_turns_choose(tree: SpanTree) -> None:
    """Steps 3 and 4: set span.turn_key (the turn each call belongs to); a turn span's turn_key
    is its own key. Run it once the spans have all the content they will get.

    The tree walk goes through every span of the export, GenAI or not (an HTTP handler span
    between an agent span and its chat spans does not break the chain).
    """
    spans, links = tree.spans, tree.links
    by_key = {(s.trace_id, s.span_id): s for s in spans}

    def qualifies(key: tuple[str, str]) -> bool:
        span = by_key.get(key)
        return (span is not None and span.operation in TURN_OPERATIONS
                and span.content.user_message() is not None and span.content.answer() is not None)

    def waiting(key: tuple[str, str]) -> bool:
        span = by_key.get(key)
        # Only GenAI chat/agent spans get content from log events later; a chain never does.
        return (span is not None and span.operation in TURN_OPERATIONS and span.content.empty
                and span.operation not in STRUCTURAL_OPERATIONS)

    outermost = [
        s for s in spans
        if qualifies((s.trace_id, s.span_id))
        and not any(qualifies(a) for a in _ancestors(s.trace_id, s.parent_id, links))
    ]
    # One user message, one turn: of siblings answering it, the last to finish is the answer.
    groups: dict[tuple[str, str, str], list[Span]] = defaultdict(list)
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


def span_call_raw(span: Span) -> dict[str, Any]:
    attributes = span.attributes
    model = first_of(attributes, *MODEL_ATTRIBUTES)
    function_name = _function_name(span)
    usage_input, usage_output = usage_tokens(attributes)
    input_tokens = int_of(attributes, *INPUT_TOKEN_ATTRIBUTES)
    output_tokens = int_of(attributes, *OUTPUT_TOKEN_ATTRIBUTES)
    input_tokens = usage_input if input_tokens is None else input_tokens
    output_tokens = usage_output if output_tokens is None else output_tokens
    if not model:
        # Tools and retrievers have no model: no tokens to estimate, no price.
        input_tokens, output_tokens = input_tokens or 0, output_tokens or 0
    duration_ns = span.end_ns - span.start_ns
    error = _error(span)
    raw: dict[str, Any] = {
        "conversation_id": span.conversation_id,
        "turn_id": span.turn_key,
        "call_id": span.key,
        "provider": str(first_of(attributes, *PROVIDER_ATTRIBUTES) or "")[:50],
        "model": str(model or "")[:100],
        "function_name": str(function_name)[:200],
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "duration_ms": min(duration_ns // 1_000_000, MAX_LATENCY_MS) if span.end_ns and duration_ns >= 0 else None,
        "input": text_clip(messages_text(span.content.input_json(), single_role="user")
                           or convention_text(attributes, output=False)),
        "output": text_clip(messages_text(span.content.output_json(), single_role="assistant")
                            or convention_text(attributes, output=True)),
        "error": text_clip(error)[:4000] if error else False,
        "timestamp": nanos_to_datetime(span.start_ns).isoformat(),
        "metadata": {"otel": _span_metadata(span)},
    }
    if not model:
        raw["cost_usd"] = 0
    elif (cost := cost_sent(attributes)) is not None:
        raw["cost_usd"] = cost
    return raw


def _function_name(span: Span) -> str:
    attributes = span.attributes
    if span.operation == "execute_tool":
        named = first_of(attributes, "gen_ai.tool.name", "tool.name", "traceloop.entity.name")
    elif span.operation in NAMED_OPERATIONS:
        named = first_of(attributes, "gen_ai.agent.name", "agent.name", "traceloop.entity.name")
    else:
        named = None
    if named:
        return str(named)
    convention = convention_of(attributes)
    if convention == "langfuse" or (convention and span.operation in NAMED_OPERATIONS):
        # Langfuse observations are named by the bot's code ("answer", "search-orders"), and a
        # tool or retriever span by what it ran: the name says more than the operation.
        return span.name
    return span.operation


def _error(span: Span) -> str:
    error_type = first_of(span.attributes, "error.type")
    if span.status_code != STATUS_ERROR and not error_type:
        return convention_error(span.attributes)
    parts = [str(p) for p in (error_type, span.status_message) if p]
    return ": ".join(parts) or "error"


# The end user's consent for the span's conversation (full, no_content, no_training): on the
# span or its resource (the bot's service sets it per process, or per request on the span).
CONSENT_ATTRIBUTE = "chatmon.consent"


def span_consent(span: Span) -> str:
    """The consent the span states, as sent ("" when none); the caller checks the value."""
    value = first_of(span.attributes, CONSENT_ATTRIBUTE) or first_of(span.resource, CONSENT_ATTRIBUTE) or ""
    return str(value).strip()


def _span_metadata(span: Span) -> dict[str, Any]:
    attributes = span.attributes
    finish = first_of(attributes, "gen_ai.response.finish_reasons")
    meta = {
        "trace_id": span.trace_id, "span_id": span.span_id, "parent_span_id": span.parent_id,
        "span_name": span.name[:200], "operation": span.operation[:100],
        "service_name": str(span.resource.get("service.name") or "")[:200],
        "response_id": str(first_of(attributes, "gen_ai.response.id") or "")[:200],
        "finish_reasons": [str(f)[:50] for f in finish][:10] if isinstance(finish, list) else [],
        # Kept for the turn that log content may build later (apps/otel/log_events.py).
        "consent": span_consent(span)[:16],
    }
    meta.update(convention_metadata(attributes, span.resource))
    return {k: v for k, v in meta.items() if v}


def span_is_structural(span: Span) -> bool:
    """A chain, workflow or plain span: the turn when it is the outermost with content, never
    an LLM call."""
    return span.operation in STRUCTURAL_OPERATIONS


def span_turn_raw(span: Span, call: dict[str, Any]) -> dict[str, Any]:
    user_id = span.user_id
    return {
        "conversation_id": span.conversation_id,
        "turn_id": span.key,
        # Normalised as on every path (apps.privacy.hashing), then clipped to the ingest limit.
        "user_id": end_user_id_normalise(user_id)[:255] or None,
        "user_message": text_clip(span.content.user_message() or ""),
        "bot_response": text_clip(span.content.answer() or ""),
        "timestamp": nanos_to_datetime(span.end_ns or span.start_ns).isoformat(),
        "latency_ms": call["duration_ms"],
        "error": call["error"],
        "model": call["model"],
        "metadata": call["metadata"],
        "consent": span_consent(span) or None,
    }


