"""Langfuse 2.x's batch ingestion (`POST /api/public/ingestion`) on chatmon's write path. No HTTP here.

The v2 SDKs (and the integrations built on them) send `{"batch": [{id, type, timestamp, body}]}`
with trace-create, span-create/update, generation-create/update, event-create, score-create and
sdk-log events. They are mapped as langfuse 3.x+ OTLP spans are, by the same code:

1. Each trace or observation event's body is merged into its LangfuseObservation row (creates
   and updates alike: a later non-empty field wins), texts and metadata redacted by the
   chatbot's policy. An event without an id, a trace id or a known type is refused alone.
2. Every trace the batch touched is rebuilt from all of its rows as spans carrying Langfuse's
   observation attributes (the trace itself is the root span, `{trace}:{trace}`; observations
   are `{trace}:{observation}`; a span without children is a tool, v2 having no tool type), and goes through spans.py (turn choice) and
   services.spans_store (turns, LLM calls, steps: ingest services, so limits, redaction, risk,
   judge sampling and idempotency are the OTLP path's). A trace whose output arrives in a
   later batch becomes its turn then; calls stored before it are linked to it (their turn id is
   the trace's root span when no turn was chosen yet). Until then no observation of that trace
   becomes its turn: a v2 trace with an input and never an output gives LLM calls, no turn.
3. score-create events, after the traces, go through apps.otel.langfuse.langfuse_scores_record.
4. The answer lists each event as a success (201) or an error (400, or 404 for a score whose
   trace is not stored), as Langfuse's 207 does.
"""

import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction

from apps.chatbots.models import Chatbot
from apps.core.text import control_characters_present, json_nul_replace
from apps.privacy.policy import json_redact_for

from .langfuse import langfuse_scores_record
from .models import LangfuseObservation
from .otlp import ExportResult
from .services import spans_store
from .spans import Span, SpanLink, SpanTree, span_operation, span_tree_complete, span_turns_choose

OBSERVATION_EVENTS = {
    "span-create": "span",
    "span-update": "span",
    "generation-create": "generation",
    "generation-update": "generation",
    "event-create": "event",
    "observation-create": "span",
    "observation-update": "span",
}
# Observation types a v2 body may name (langfuse 2.60+); anything else is its event's default.
OBSERVATION_TYPES = {
    "span",
    "generation",
    "event",
    "tool",
    "retriever",
    "agent",
    "chain",
    "embedding",
    "evaluator",
    "guardrail",
}
TRACE_EVENT = "trace-create"
SCORE_EVENT = "score-create"
LOG_EVENT = "sdk-log"
MAX_EVENTS_PER_BATCH = 1000
_MAX_ID_CHARS = 64
# Body fields that hold the bot's text: redacted before the row is stored.
_TEXT_FIELDS = ("input", "output", "metadata", "statusMessage")


@dataclass
class EventAnswer:
    event_id: str
    status: int
    message: str = ""


@dataclass
class IngestionResult:
    successes: list[EventAnswer] = field(default_factory=list)
    errors: list[EventAnswer] = field(default_factory=list)


@dataclass
class _Observation:
    trace_id: str
    observation_id: str
    kind: str
    body: dict[str, Any]
    event_ids: list[str] = field(default_factory=list)


def langfuse_batch_ingest(*, chatbot: Chatbot, batch: list[Any]) -> IngestionResult:
    """Store a Langfuse 2.x ingestion batch; one answer per event (module docstring)."""
    result = IngestionResult()
    merged: dict[tuple[str, str], _Observation] = {}
    scores: list[tuple[str, dict[str, Any]]] = []
    for event in batch:
        event_id = str(event.get("id") or "") if isinstance(event, dict) else ""
        body = event.get("body") if isinstance(event, dict) else None
        kind = event.get("type") if isinstance(event, dict) else None
        if not event_id or not isinstance(body, dict):
            result.errors.append(
                EventAnswer(event_id, 400, "An event needs an id and a body object.")
            )
            continue
        if kind == LOG_EVENT:
            result.successes.append(EventAnswer(event_id, 201))
            continue
        if kind == SCORE_EVENT:
            scores.append((event_id, body))
            continue
        if kind != TRACE_EVENT and kind not in OBSERVATION_EVENTS:
            result.errors.append(EventAnswer(event_id, 400, f"Unsupported event type {kind!r}."))
            continue
        trace_id = _id(body.get("id") if kind == TRACE_EVENT else body.get("traceId"))
        observation_id = "" if kind == TRACE_EVENT else _id(body.get("id"))
        if not trace_id or (kind != TRACE_EVENT and not observation_id):
            result.errors.append(
                EventAnswer(
                    event_id,
                    400,
                    f"A {kind} event needs its id and traceId "
                    f"(at most {_MAX_ID_CHARS} characters, printable).",
                )
            )
            continue
        key = (trace_id, observation_id)
        named = str(body.get("type") or "").lower()
        kind_name = (
            "trace"
            if kind == TRACE_EVENT
            else (named if named in OBSERVATION_TYPES else OBSERVATION_EVENTS[kind])
        )
        item = merged.setdefault(key, _Observation(trace_id, observation_id, kind_name, {}))
        item.body = _merge(item.body, body)
        if kind.endswith("-create"):
            item.kind = kind_name
        item.event_ids.append(event_id)

    if merged:
        rows = _observations_store(chatbot, list(merged.values()))
        export = _KeyedResult()
        _traces_map(chatbot, rows, export)
        rejected = export.reasons
        for item in merged.values():
            reason = rejected.get(_span_key(item.trace_id, item.observation_id or item.trace_id))
            for event_id in item.event_ids:
                if reason:
                    result.errors.append(EventAnswer(event_id, 400, reason))
                else:
                    result.successes.append(EventAnswer(event_id, 201))
    if scores:
        answers = langfuse_scores_record(chatbot=chatbot, items=[body for _, body in scores])
        for (event_id, _), answer in zip(scores, answers, strict=True):
            if answer.status == "stored":
                result.successes.append(EventAnswer(event_id, 201))
            else:
                result.errors.append(
                    EventAnswer(
                        event_id, 404 if answer.status == "waiting" else 400, answer.message
                    )
                )
    return result


def _id(value: Any) -> str:
    if not isinstance(value, str | int) or isinstance(value, bool):
        return ""
    text = str(value).strip()
    return text if 0 < len(text) <= _MAX_ID_CHARS and not control_characters_present(text) else ""


def _merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    merged = dict(old)
    for key, value in new.items():
        if value is None or (
            key in ("metadata", "usage", "usageDetails", "costDetails") and value == {}
        ):
            continue
        if key == "metadata" and isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def _observations_store(
    chatbot: Chatbot, items: list[_Observation]
) -> dict[str, list[LangfuseObservation]]:
    """Step 1: merge the batch into the stored rows; every row of the touched traces, by trace."""
    for attempt in range(3):
        try:
            with transaction.atomic():
                return _observations_merge(chatbot, items)
        except IntegrityError:  # a concurrent batch created one of the rows: merge into it
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _observations_merge(
    chatbot: Chatbot, items: list[_Observation]
) -> dict[str, list[LangfuseObservation]]:
    traces = {item.trace_id for item in items}
    rows = {
        (r.trace_id, r.observation_id): r
        for r in LangfuseObservation.objects.select_for_update().filter(
            chatbot=chatbot, trace_id__in=traces
        )
    }
    changed, created = [], []
    for item in items:
        body = _redacted(chatbot, item.body)
        row = rows.get((item.trace_id, item.observation_id))
        if row is None:
            row = LangfuseObservation(
                chatbot=chatbot,
                trace_id=item.trace_id,
                observation_id=item.observation_id,
                kind=item.kind,
                body=body,
            )
            rows[(item.trace_id, item.observation_id)] = row
            created.append(row)
        else:
            row.body = _merge(row.body, body)
            row.kind = item.kind if item.kind != "span" or row.kind == "trace" else row.kind
            changed.append(row)
    LangfuseObservation.objects.bulk_create(created)
    if changed:
        LangfuseObservation.objects.bulk_update(changed, ["body", "kind", "updated_at"])
    by_trace: dict[str, list[LangfuseObservation]] = {}
    for row in rows.values():
        by_trace.setdefault(row.trace_id, []).append(row)
    return by_trace


def _redacted(chatbot: Chatbot, body: dict[str, Any]) -> dict[str, Any]:
    body = json_nul_replace(dict(body))  # PostgreSQL's jsonb holds no NUL: U+FFFD, as for REST text
    for name in _TEXT_FIELDS:
        if body.get(name) is not None:
            body[name], _ = json_redact_for(chatbot, body[name])
    return body


def _traces_map(
    chatbot: Chatbot, rows: dict[str, list[LangfuseObservation]], result: ExportResult
) -> None:
    """Step 2: the touched traces as spans, through the OTLP mapping and store."""
    spans: list[Span] = []
    links: dict[tuple[str, str], SpanLink] = {}
    trace_conversation: dict[str, str] = {}
    trace_user: dict[str, str] = {}
    for trace_id, trace_rows in rows.items():
        trace_row = next((r for r in trace_rows if r.kind == "trace"), None)
        trace_body = trace_row.body if trace_row else {}
        observations = [r for r in trace_rows if r.kind != "trace"]
        ends = [_nanos(r.body.get("endTime") or r.body.get("startTime")) for r in observations]
        start = (
            _nanos(trace_body.get("timestamp"))
            or min(
                (_nanos(r.body.get("startTime")) for r in observations if r.body.get("startTime")),
                default=0,
            )
            or time.time_ns()
        )
        root_key = (trace_id, trace_id)
        session, user = _text(trace_body.get("sessionId")), _text(trace_body.get("userId"))
        if session:
            trace_conversation[trace_id] = session
        if user:
            trace_user[trace_id] = user
        links[root_key] = SpanLink("", session or None, user or None)
        if trace_row is not None:
            spans.append(
                _span(
                    trace_id,
                    trace_id,
                    "",
                    trace_body.get("name") or "trace",
                    _root_attributes(trace_body),
                    start,
                    max([start, *ends]),
                )
            )
        parents = {_id(r.body.get("parentObservationId")) for r in observations}
        for row in observations:
            parent = _id(row.body.get("parentObservationId")) or (
                trace_id if trace_row is not None else ""
            )
            links[(trace_id, row.observation_id)] = SpanLink(parent, None, None)
            start_ns = _nanos(row.body.get("startTime")) or start
            # v2 has no tool type: a span with no children is the work itself (a lookup, a tool),
            # a step of the turn; a span with children is structure, as in the OTLP mapping.
            kind = "tool" if row.kind == "span" and row.observation_id not in parents else row.kind
            spans.append(
                _span(
                    trace_id,
                    row.observation_id,
                    parent,
                    row.body.get("name") or row.kind,
                    _observation_attributes(kind, row.body),
                    start_ns,
                    _nanos(row.body.get("endTime")) or start_ns,
                )
            )
    spans = [span for span in spans if span.operation]  # kept as links, as non-GenAI OTLP spans are
    span_tree_complete(spans, links, trace_conversation=trace_conversation, trace_user=trace_user)
    tree = SpanTree(spans=spans, links=links)
    span_turns_choose(tree)
    # A trace with an input and no output yet is its own turn to be: its output is on its way
    # (`trace.update(output=…)` in a later batch), and its generations are not the turn meanwhile.
    awaited = {
        trace_id
        for trace_id, trace_rows in rows.items()
        for r in trace_rows
        if r.kind == "trace" and r.body.get("input") is not None and r.body.get("output") is None
    }
    for span in spans:
        if span.trace_id in awaited and span.span_id == span.trace_id:
            span.turn_key = None  # not a turn before its output
        elif span.trace_id in awaited or (
            span.turn_key is None and (span.trace_id, span.trace_id) in links
        ):
            # No turn chosen yet: the trace's own (its output may come in a later batch), which
            # links these calls and steps to it when it does.
            span.turn_key = _span_key(span.trace_id, span.trace_id)
    spans_store(chatbot, spans, result)


def _span(
    trace_id: str,
    span_id: str,
    parent_id: str,
    name: Any,
    attributes: dict[str, Any],
    start_ns: int,
    end_ns: int,
) -> Span:
    return Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_id=parent_id,
        name=str(name)[:200],
        attributes=attributes,
        resource={},
        start_ns=start_ns,
        end_ns=max(end_ns, start_ns),
        status_code=0,
        status_message="",
        events=[],
        operation=span_operation(attributes),
    )


def _root_attributes(body: dict[str, Any]) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "langfuse.observation.type": "span",
        "langfuse.internal.is_app_root": True,
    }
    _put(attributes, "langfuse.observation.input", body.get("input"))
    _put(attributes, "langfuse.observation.output", body.get("output"))
    for name, key in (
        ("langfuse.trace.name", "name"),
        ("langfuse.release", "release"),
        ("langfuse.version", "version"),
        ("langfuse.environment", "environment"),
        ("session.id", "sessionId"),
        ("user.id", "userId"),
    ):
        if body.get(key) not in (None, ""):
            attributes[name] = str(body[key])
    if isinstance(body.get("tags"), list):
        attributes["langfuse.trace.tags"] = [str(t) for t in body["tags"]]
    if isinstance(body.get("metadata"), dict):
        for key, value in body["metadata"].items():
            attributes[f"langfuse.trace.metadata.{key}"] = (
                value
                if isinstance(value, str | int | float | bool)
                else (json.dumps(value, ensure_ascii=False))
            )
    return attributes


def _observation_attributes(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    attributes: dict[str, Any] = {"langfuse.observation.type": kind}
    _put(attributes, "langfuse.observation.input", body.get("input"))
    _put(attributes, "langfuse.observation.output", body.get("output"))
    if body.get("model"):
        attributes["langfuse.observation.model.name"] = str(body["model"])
    usage = body.get("usageDetails") or body.get("usage")
    if isinstance(usage, dict):
        attributes["langfuse.observation.usage_details"] = json.dumps(usage)
        if usage.get("totalCost") is not None and not body.get("costDetails"):
            attributes["langfuse.observation.cost_details"] = json.dumps(
                {"total": usage["totalCost"]}
            )
    if isinstance(body.get("costDetails"), dict):
        attributes["langfuse.observation.cost_details"] = json.dumps(body["costDetails"])
    if body.get("level"):
        attributes["langfuse.observation.level"] = str(body["level"])
    if body.get("statusMessage"):
        attributes["langfuse.observation.status_message"] = str(body["statusMessage"])
    if body.get("version"):
        attributes["langfuse.version"] = str(body["version"])
    if isinstance(body.get("metadata"), dict) and body["metadata"]:
        attributes["metadata"] = json.dumps(body["metadata"], ensure_ascii=False, default=str)
    return attributes


def _put(attributes: dict[str, Any], name: str, value: Any) -> None:
    if value is not None:
        attributes[name] = json.dumps(value, ensure_ascii=False, default=str)


def _text(value: Any) -> str:
    return (
        str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""
    )


def _nanos(value: Any) -> int:
    if not isinstance(value, str) or not value:
        return 0
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return 0
    if moment.tzinfo is None:
        return 0
    return int(moment.timestamp() * 1_000_000) * 1000


def _span_key(trace_id: str, span_id: str) -> str:
    return f"{trace_id}:{span_id}"


class _KeyedResult(ExportResult):
    """An ExportResult that keeps every refused span key with its reason, not only the first
    few messages the OTLP answer reports: each refused event gets its own error."""

    def __init__(self) -> None:
        super().__init__()
        self.reasons: dict[str, str] = {}

    def reject(self, what: str, reason: str) -> None:
        super().reject(what, reason)
        parts = what.split(" ")
        # "span KEY" refuses the span; "span KEY (stored as an LLM call, not as a turn)" stored it.
        if len(parts) == 2 and parts[0] == "span":
            self.reasons.setdefault(parts[1], reason)
