"""GenAI content carried as OTLP log events (gen_ai.user.message, gen_ai.choice, …).

Content may arrive before its span (kept as PendingSpanContent until traces_export picks it
up) or after it (applied to the stored LLM call, and turned into the turn the span stands for).
"""

import json
import logging
from collections import defaultdict
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.chatbots.models import Chatbot
from apps.conversations.choices import Consent
from apps.conversations.models import LLMCall
from apps.core.text import json_nul_replace
from apps.ingest.services import turns_ingest
from apps.ingest.validation import TurnInput, ValidationFailed, parse_turn
from apps.privacy.policy import json_redact_for, text_redact_for, text_withheld
from apps.privacy.redaction import counts_merge

from .mapping import (
    CHOICE_EVENT,
    DETAILS_EVENTS,
    MESSAGE_EVENTS,
    TURN_OPERATIONS,
    any_value,
    attributes_dict,
    events_content,
    nanos_to_datetime,
)
from .models import PendingSpanContent
from .otlp import ExportResult
from .spans import Span, messages_text, text_clip

logger = logging.getLogger(__name__)

GENAI_EVENTS = set(MESSAGE_EVENTS) | {CHOICE_EVENT} | DETAILS_EVENTS
# metadata["otel"] key of a content-less span's LLM call: its end user's keyed hash
# (apps.privacy.hashing), for the turn its log content builds later.
PENDING_END_USER_KEY = "end_user_hash"


def pending_content_merge(chatbot: Chatbot, spans: list[Span]) -> list[int]:
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
        span.pii_found = _events_pii_found(row.events)
        used.append(row.pk)
    return used


def _events_pii_found(events: list[list[Any]]) -> dict[str, int]:
    """What was redacted from pending events when they were stored (their fifth item)."""
    return counts_merge(*(event[4] for event in events if len(event) > 4 and isinstance(event[4], dict)))


def logs_export(*, chatbot: Chatbot, request: Any) -> ExportResult:
    """Keep the GenAI content events of an ExportLogsServiceRequest and apply them to their spans.

    1. Log records named like GenAI content events (gen_ai.user.message, gen_ai.choice, …)
       and correlated to a span are merged into PendingSpanContent (re-sent events dedupe),
       redacted first by the chatbot's policy (apps.privacy.policy) with NUL → U+FFFD: the
       table holds only what a stored turn could hold, whether or not its span ever comes.
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
                if len(record.attributes) > settings.OTLP_MAX_ATTRIBUTES_PER_SPAN:
                    result.reject("log record", f"{len(record.attributes)} attributes; at most "
                                                f"{settings.OTLP_MAX_ATTRIBUTES_PER_SPAN} per record")
                    continue
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
                payload, pii_found = json_redact_for(chatbot, json_nul_replace(payload))
                when = record.time_unix_nano or record.observed_time_unix_nano
                incoming[(trace_id, span_id)].append([name, payload, when, sequence, pii_found])
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
    name, payload, when, sequence = event[:4]
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
        withheld = call.conversation is not None and call.conversation.consent == Consent.NO_CONTENT
        if not call.input_text and not call.output_text:
            # Redacted when stored as pending content; once more here costs little and keeps the
            # rule in one place for rows written before that (an LLM call keeps no counts).
            texts = {name: text_redact_for(chatbot, text_clip(text))[0] for name, text in (
                ("input_text", messages_text(content.input_json(), single_role="user")),
                ("output_text", messages_text(content.output_json(), single_role="assistant")))}
            if withheld or (call.metadata.get("otel") or {}).get("consent") == Consent.NO_CONTENT:
                texts = {name: text_withheld(text) for name, text in texts.items()}
            LLMCall.objects.filter(pk=call.pk, input_text="", output_text="").update(**texts)
        operation = (call.metadata.get("otel") or {}).get("operation", "")
        user_message, answer = content.user_message(), content.answer()
        if (call.turn_id is None and call.turn_external_id == call.external_id and operation in TURN_OPERATIONS
                and user_message is not None and answer is not None and call.conversation is not None):
            otel = dict(call.metadata.get("otel") or {})
            hashed_end_user = str(otel.pop(PENDING_END_USER_KEY, "") or "")
            try:
                turn = parse_turn({
                    "conversation_id": call.conversation.external_id, "turn_id": call.external_id,
                    "user_message": text_clip(user_message), "bot_response": text_clip(answer),
                    "timestamp": (call.timestamp + timedelta(milliseconds=call.duration_ms or 0)).isoformat(),
                    "latency_ms": call.duration_ms, "error": call.error or (not call.success),
                    "model": call.model, "metadata": {"otel": otel}, "consent": otel.get("consent") or None,
                    # Measured by its LLM call, which links to it (stored earlier, same turn_id).
                    "tokens": {"prompt": 0, "completion": 0}, "cost_usd": 0,
                })
                turn.pii_found = _events_pii_found(row.events)
                turn.end_user_hash = hashed_end_user
                turns.append(turn)
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
