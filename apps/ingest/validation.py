"""Fast, strict validation of ingest payloads.

Hand-written rather than DRF serializers: a 1,000-turn batch is validated in a few milliseconds.
The DRF serializers in api/serializers.py describe the same contract for the OpenAPI schema;
tests/ingest/test_schema_contract.py keeps the two in step.

Errors use DRF's shape: {"field": ["message", …]}, nested objects as {"tokens": {"prompt": […]}}.

The alphabet of each kind of field (PostgreSQL stores no NUL in text or jsonb, so none may pass):
- identifiers (conversation_id, turn_id, call_id, user_id) and labels (channel, intent, model,
  provider, function_name): no control characters (C0, DEL, C1) — a 400 naming the field;
- free text (user_message, bot_response, input, output, error) and metadata strings and keys:
  anything, but NUL becomes U+FFFD (the replacement character), so an end user's stray byte
  never costs the bot its turn and the stored text shows where it was;
- lone UTF-16 surrogates are refused for the whole body by apps.core.json.json_loads_strict.
The numeric ranges are the MAX_* constants; the columns hold their sums (see
apps/conversations/models.py).
"""

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.conversations.choices import Consent
from apps.core.text import (
    CONTROL_CHARACTERS_MESSAGE,
    control_characters_present,
    json_nul_replace,
    nul_replace,
)

MAX_ID_CHARS = 255
MAX_SHORT_CHARS = 200
MAX_CHANNEL_CHARS = 32
MAX_MODEL_CHARS = 100
MAX_ERROR_CHARS = 4000
MAX_LATENCY_MS = 24 * 3600 * 1000
MAX_TOKENS = 10_000_000
MAX_COST_USD = Decimal("1000000")
MAX_CALLS_PER_TURN = 100
OLDEST_TIMESTAMP = datetime(2000, 1, 1, tzinfo=UTC)
MAX_PROVIDER_CHARS = 50
MAX_STEPS_PER_TURN = 100
MAX_ROWS = 10**12
MAX_DATABASE_CHARS = 100
MAX_SCORE_NAME_CHARS = 100

# What a turn's `event` says (the seed tutorial's ChatMetric): a turn (the default) or an error are
# stored as turns; start, end and feedback are conversation events and store no turn.
TURN_EVENTS = ("turn", "error")
CONVERSATION_EVENTS = ("start", "end", "feedback")
EVENTS = TURN_EVENTS + CONVERSATION_EVENTS
RATINGS = ("up", "down")
STEP_KINDS = ("sql", "tool", "retrieval", "http", "other")
# Reserved conversation-level scores ("outcomes") an `end` event's `outcome` may set.
CONSENTS = tuple(Consent.values)
OUTCOME_NAMES = ("converted", "resolved", "handed_off", "csat", "nps", "lead_quality")

# Other names bots already send for a field (camelCase, the seed tutorial's `source` and
# `sessionId`): read as the canonical name; when both are sent the canonical one wins and the
# answer warns. The OpenAPI schema lists every alias beside its field (test_schema_contract).
CALL_ALIASES = {
    "callId": "call_id", "functionName": "function_name", "inputTokens": "input_tokens",
    "outputTokens": "output_tokens", "costUsd": "cost_usd", "durationMs": "duration_ms",
    "conversationId": "conversation_id", "turnId": "turn_id",
}
STEP_ALIASES = {"durationMs": "duration_ms"}
TURN_ALIASES = {
    "conversationId": "conversation_id", "session_id": "conversation_id", "sessionId": "conversation_id",
    "turnId": "turn_id", "userId": "user_id", "source": "channel", "userMessage": "user_message",
    "botResponse": "bot_response", "latencyMs": "latency_ms", "fallbackUsed": "fallback_used",
    "costUsd": "cost_usd", "llmCalls": "llm_calls", "tokensUsed": "tokens", "tokens_used": "tokens",
    "databaseUsed": "database_used", "debugInfo": "debug_info", "conversationMessage": "conversation_message",
    "sqlQueries": "sql_queries", "sqlResultsCount": "sql_results_count", "handoffReason": "handoff_reason",
    # The chat-logging design's message columns.
    "message_id": "turn_id", "user_input": "user_message", "final_output": "bot_response",
    "error_message": "error", "total_duration_ms": "latency_ms",
}

Errors = dict[str, Any]


class ValidationFailed(Exception):
    def __init__(self, errors: Errors) -> None:
        super().__init__(errors)
        self.errors = errors


@dataclass
class CallInput:
    conversation_id: str | None
    turn_id: str | None
    call_id: str | None
    provider: str
    model: str
    function_name: str
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: Decimal | None
    duration_ms: int | None
    input_text: str
    output_text: str
    success: bool
    error: str
    timestamp: datetime | None
    metadata: dict
    warnings: list[str] = field(default_factory=list)


@dataclass
class StepInput:
    """One step of a turn: a SQL query, a tool call, a retrieval, an HTTP request."""

    kind: str
    name: str
    input_text: str
    output_text: str
    duration_ms: int | None
    success: bool
    error: str
    rows: int | None
    metadata: dict


@dataclass
class TurnInput:
    conversation_id: str
    turn_id: str | None
    user_id: str | None
    channel: str
    user_message: str
    bot_response: str
    timestamp: datetime
    latency_ms: int | None
    fallback_used: bool
    has_error: bool
    error: str
    intent: str
    model: str
    prompt_tokens: int | None
    completion_tokens: int | None
    cost_usd: Decimal | None
    metadata: dict
    llm_calls: list[CallInput] = field(default_factory=list)
    classification: str = ""
    database_used: str = ""
    conversation_message: str = ""
    debug_info: dict | None = None
    steps: list[StepInput] = field(default_factory=list)
    event: str = "turn"
    hallucinated: bool | None = None
    rating: str | None = None
    handoff: bool | None = None
    handoff_reason: str = ""
    outcome: dict[str, Any] = field(default_factory=dict)
    # The end user's consent as the bot states it for this turn's conversation ("" when not
    # stated): the strictest of it, the conversation's, the end user's and the chatbot's
    # default applies (apps.privacy.policy.consent_apply).
    consent: str = ""
    # What the answer tells the bot: aliases overridden, unknown fields kept under metadata.
    warnings: list[str] = field(default_factory=list)
    # Never from the client: counts of what a caller redacted before building this turn (OTLP
    # log content redacted while it waited for its span), added to the turn's own.
    pii_found: dict[str, int] = field(default_factory=dict)
    # Never from the client: the end user as already hashed by a caller that no longer has the
    # raw id (an OTLP turn built from log content after its span, apps/otel/log_events.py).
    end_user_hash: str = ""


class _Reader:
    """Reads one object's fields, collecting every error instead of stopping at the first."""

    def __init__(self, data: Any) -> None:
        self.data = data
        self.errors: Errors = {}

    def fail(self, name: str, message: str) -> None:
        self.errors.setdefault(name, []).append(message)

    def present(self, name: str) -> bool:
        return name in self.data and self.data[name] is not None

    def identifier(self, name: str, *, required: bool = False) -> str | None:
        if not self.present(name):
            if required:
                self.fail(name, "This field is required.")
            return None
        value = self.data[name]
        if isinstance(value, bool) or not isinstance(value, str | int):
            self.fail(name, "Must be a string.")
            return None
        text = str(value).strip()
        if not text:
            self.fail(name, "May not be blank.")
            return None
        if len(text) > MAX_ID_CHARS:
            self.fail(name, f"At most {MAX_ID_CHARS} characters.")
            return None
        if control_characters_present(text):
            self.fail(name, CONTROL_CHARACTERS_MESSAGE)
            return None
        return text

    def text(self, name: str, *, max_chars: int, required: bool = False) -> str:
        if not self.present(name):
            if required:
                self.fail(name, "This field is required.")
            return ""
        value = self.data[name]
        if not isinstance(value, str):
            self.fail(name, "Must be a string.")
            return ""
        if len(value) > max_chars:
            self.fail(name, f"At most {max_chars} characters (got {len(value)}).")
            return ""
        return nul_replace(value)

    def label(self, name: str, *, max_chars: int) -> str:
        """A short name shown in filters and lists (channel, intent, model…): no control characters."""
        if self.present(name) and isinstance(self.data[name], str) and control_characters_present(self.data[name]):
            self.fail(name, CONTROL_CHARACTERS_MESSAGE)
            return ""
        return self.text(name, max_chars=max_chars)

    def content(self, name: str, *, max_chars: int) -> str:
        """Text, or chat messages (a list/object) kept as JSON text."""
        if self.present(name) and isinstance(self.data[name], list | dict):
            try:
                as_text = json.dumps(self.data[name], ensure_ascii=False)
            except (TypeError, ValueError):
                self.fail(name, "Must be a string or JSON messages.")
                return ""
            if len(as_text) > max_chars:
                self.fail(name, f"At most {max_chars} characters (got {len(as_text)}).")
                return ""
            return as_text  # json.dumps writes NUL as the six characters \\u0000: storable
        return self.text(name, max_chars=max_chars)

    def integer(self, name: str, *, maximum: int) -> int | None:
        if not self.present(name):
            return None
        value = self.data[name]
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(name, "Must be an integer.")
            return None
        if value < 0 or value > maximum:
            self.fail(name, f"Must be between 0 and {maximum}.")
            return None
        return value

    def boolean(self, name: str, default: bool) -> bool:
        if not self.present(name):
            return default
        value = self.data[name]
        if not isinstance(value, bool):
            self.fail(name, "Must be true or false.")
            return default
        return value

    def choice(self, name: str, *, choices: tuple[str, ...]) -> str | None:
        if not self.present(name):
            return None
        value = self.data[name]
        if not isinstance(value, str) or value not in choices:
            self.fail(name, f"Must be one of: {', '.join(choices)}.")
            return None
        return value

    def optional_boolean(self, name: str) -> bool | None:
        """true/false, or None when absent (the bot said nothing)."""
        return self.boolean(name, False) if self.present(name) else None

    def error_field(self, name: str) -> tuple[bool, str]:
        """`error` may be true/false or a message string."""
        if not self.present(name):
            return False, ""
        value = self.data[name]
        if isinstance(value, bool):
            return value, ""
        if isinstance(value, str):
            if len(value) > MAX_ERROR_CHARS:
                self.fail(name, f"At most {MAX_ERROR_CHARS} characters.")
                return False, ""
            return bool(value.strip()), nul_replace(value)
        self.fail(name, "Must be a boolean or an error message.")
        return False, ""

    def money(self, name: str) -> Decimal | None:
        if not self.present(name):
            return None
        value = self.data[name]
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            self.fail(name, "Must be a number.")
            return None
        try:
            amount = Decimal(str(value))
        except InvalidOperation:
            self.fail(name, "Must be a number.")
            return None
        if not amount.is_finite() or amount < 0 or amount > MAX_COST_USD:
            self.fail(name, f"Must be between 0 and {MAX_COST_USD}.")
            return None
        return amount.quantize(Decimal("0.000001"))

    def timestamp(self, name: str) -> datetime | None:
        if not self.present(name):
            return None
        value = self.data[name]
        if not isinstance(value, str):
            self.fail(name, "Must be an ISO 8601 date-time string.")
            return None
        try:
            parsed = parse_datetime(value.strip())
        except ValueError:
            parsed = None
        if parsed is None:
            self.fail(name, "Not a valid ISO 8601 date-time, e.g. 2025-01-31T12:00:00Z.")
            return None
        if timezone.is_naive(parsed):
            parsed = parsed.replace(tzinfo=UTC)
        try:
            too_new = parsed > timezone.now() + timedelta(seconds=settings.INGEST_MAX_FUTURE_SECONDS)
            too_old = parsed < OLDEST_TIMESTAMP
        except OverflowError:
            too_new, too_old = True, False
        if too_new:
            self.fail(name, "Is in the future (allowed clock skew: "
                            f"{settings.INGEST_MAX_FUTURE_SECONDS} s).")
            return None
        if too_old:
            self.fail(name, "Is before 2000-01-01.")
            return None
        return parsed

    def metadata(self, name: str = "metadata") -> dict:
        if not self.present(name):
            return {}
        value = self.data[name]
        if not isinstance(value, dict):
            self.fail(name, "Must be a JSON object.")
            return {}
        try:
            as_json = json.dumps(value, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError):
            self.fail(name, "Must be plain JSON (no NaN or Infinity).")
            return {}
        size = len(as_json.encode())
        if size > settings.INGEST_MAX_METADATA_BYTES:
            self.fail(name, f"At most {settings.INGEST_MAX_METADATA_BYTES} bytes as JSON (got {size}).")
            return {}
        # json.dumps escapes NUL as \u0000: only then is the walk needed.
        return json_nul_replace(value) if "\\u0000" in as_json else value


TURN_FIELDS = frozenset({
    "conversation_id", "turn_id", "user_id", "channel", "user_message", "bot_response", "timestamp",
    "latency_ms", "fallback_used", "error", "intent", "model", "tokens", "cost_usd", "llm_calls", "metadata",
    "classification", "database_used", "conversation_message", "debug_info", "steps", "sql_queries",
    "sql_results_count", "event", "hallucinated", "rating", "handoff", "handoff_reason", "outcome", "consent",
})
CALL_FIELDS = frozenset({
    "conversation_id", "turn_id", "call_id", "provider", "model", "function_name", "purpose", "input_tokens",
    "output_tokens", "cost_usd", "duration_ms", "input", "output", "success", "error", "timestamp", "metadata",
})
STEP_FIELDS = frozenset({"kind", "name", "input", "output", "duration_ms", "success", "error", "rows", "metadata"})


def _fields_normalise(data: dict, *, aliases: dict[str, str], known: frozenset[str],
                      prefix: str = "") -> tuple[dict, list[str]]:
    """`data` with aliases renamed and unknown fields moved under `metadata`, and the warnings
    that say so. A payload of canonical fields only is returned as it is (no copy).

    Unknown fields are kept, never dropped silently: under `metadata` (the bot's own metadata
    keys win on a clash) while the whole stays within INGEST_MAX_METADATA_BYTES; otherwise they
    are not stored and the warning says so.
    """
    extra = [key for key in data if key not in known]
    if not extra:
        return data, []
    data = dict(data)
    warnings: list[str] = []
    unknown: dict[str, Any] = {}
    for key in extra:
        value = data.pop(key)
        canonical = aliases.get(key)
        if canonical is None:
            unknown[key] = value
        elif canonical in data:
            warnings.append(f"{prefix}{key}: ignored, {prefix}{canonical} was given")
        else:
            data[canonical] = value
    if not unknown:
        return data, warnings
    metadata = data.get("metadata") if data.get("metadata") is not None else {}
    if not isinstance(metadata, dict):
        return data, warnings + [f"{prefix}{key}: unknown field, not stored (metadata is not an object)" for key in unknown]
    kept = {key: value for key, value in unknown.items() if key not in metadata}
    merged = {**kept, **metadata}
    try:
        size = len(json.dumps(merged, ensure_ascii=False, allow_nan=False).encode())
    except (TypeError, ValueError):
        size = settings.INGEST_MAX_METADATA_BYTES + 1
    if size > settings.INGEST_MAX_METADATA_BYTES:
        return data, warnings + [
            f"{prefix}{key}: unknown field, not stored (metadata would exceed "
            f"{settings.INGEST_MAX_METADATA_BYTES} bytes)" for key in unknown]
    data["metadata"] = merged
    for key in unknown:
        warnings.append(f"{prefix}{key}: unknown field, kept as {prefix}metadata.{key}" if key in kept
                        else f"{prefix}{key}: unknown field, not stored ({prefix}metadata.{key} was given)")
    return data, warnings


def _check_object(data: Any) -> None:
    if not isinstance(data, dict):
        raise ValidationFailed({"non_field_errors": ["Expected a JSON object."]})


def parse_call(data: Any, *, standalone: bool, warnings: list[str] | None = None, prefix: str = "") -> CallInput:
    """One LLM call; `standalone` calls (the llm-calls endpoint) name their conversation.
    Aliases and unknown fields are noted in `warnings` when given."""
    _check_object(data)
    data, noted = _fields_normalise(data, aliases=CALL_ALIASES, known=CALL_FIELDS, prefix=prefix)
    if warnings is not None:
        warnings += noted
    r = _Reader(data)
    max_text = settings.INGEST_MAX_TEXT_CHARS
    function_name = r.label("function_name", max_chars=MAX_SHORT_CHARS) or r.label("purpose", max_chars=MAX_SHORT_CHARS)
    success = r.boolean("success", True)
    has_error, error = r.error_field("error")
    call = CallInput(
        conversation_id=r.identifier("conversation_id", required=standalone) if standalone else None,
        turn_id=r.identifier("turn_id") if standalone else None,
        call_id=r.identifier("call_id"),
        provider=r.label("provider", max_chars=MAX_PROVIDER_CHARS),
        model=r.label("model", max_chars=MAX_MODEL_CHARS),
        function_name=function_name,
        input_tokens=r.integer("input_tokens", maximum=MAX_TOKENS),
        output_tokens=r.integer("output_tokens", maximum=MAX_TOKENS),
        cost_usd=r.money("cost_usd"),
        duration_ms=r.integer("duration_ms", maximum=MAX_LATENCY_MS),
        input_text=r.content("input", max_chars=max_text),
        output_text=r.content("output", max_chars=max_text),
        success=success and not has_error,
        error=error,
        timestamp=r.timestamp("timestamp"),
        metadata=r.metadata(),
        warnings=noted if warnings is None else [],
    )
    if r.errors:
        raise ValidationFailed(r.errors)
    return call


def parse_step(data: Any, *, kind: str | None = None, warnings: list[str] | None = None, prefix: str = "") -> StepInput:
    """One step of a turn; `kind` forces the kind (the chat-logging design's sql_queries)."""
    _check_object(data)
    data, noted = _fields_normalise(data, aliases=STEP_ALIASES, known=STEP_FIELDS, prefix=prefix)
    if warnings is not None:
        warnings += noted
    r = _Reader(data)
    max_text = settings.INGEST_MAX_TEXT_CHARS
    step_kind = r.choice("kind", choices=STEP_KINDS)
    success = r.boolean("success", True)
    has_error, error = r.error_field("error")
    step = StepInput(
        kind=kind or step_kind or "other",
        name=r.label("name", max_chars=MAX_SHORT_CHARS),
        input_text=r.content("input", max_chars=max_text),
        output_text=r.content("output", max_chars=max_text),
        duration_ms=r.integer("duration_ms", maximum=MAX_LATENCY_MS),
        success=success and not has_error,
        error=error,
        rows=r.integer("rows", maximum=MAX_ROWS),
        metadata=r.metadata(),
    )
    if r.errors:
        raise ValidationFailed(r.errors)
    return step


def _sql_query_step(raw: Any) -> dict[str, Any]:
    """One item of the chat-logging design's `sql_queries`: the query text, or an object with
    `query`/`sql` and optionally `results_count`/`rows`, `duration_ms`, `success`, `error`."""
    if isinstance(raw, str):
        return {"input": raw}
    if not isinstance(raw, dict):
        return raw
    item = dict(raw)
    for alias in ("query", "sql"):
        if alias in item and "input" not in item:
            item["input"] = item.pop(alias)
    for alias in ("results_count", "row_count", "resultsCount"):
        if alias in item and "rows" not in item:
            item["rows"] = item.pop(alias)
    return item


def _steps_read(r: _Reader, name: str, kind: str | None, warnings: list[str]) -> list[StepInput]:
    """The steps listed under `name` (`steps`, or `sql_queries` whose kind is sql)."""
    if not r.present(name):
        return []
    raw_steps = r.data[name]
    if not isinstance(raw_steps, list):
        r.fail(name, "Must be a list.")
        return []
    if len(raw_steps) > MAX_STEPS_PER_TURN:
        r.fail(name, f"At most {MAX_STEPS_PER_TURN} steps per turn.")
        return []
    steps: list[StepInput] = []
    found: dict[str, Any] = {}
    for i, raw in enumerate(raw_steps):
        try:
            item = _sql_query_step(raw) if kind else raw
            steps.append(parse_step(item, kind=kind, warnings=warnings, prefix=f"{name}[{i}]."))
        except ValidationFailed as exc:
            found[str(i)] = exc.errors
    if found:
        r.errors[name] = found
    return steps


def _outcome_read(r: _Reader, name: str) -> dict[str, Any]:
    """An `end` event's outcome: a reserved name ("resolved": that outcome is true) or an object
    of reserved names to values, checked by apps.scores.values."""
    from apps.scores.values import ScoreValueInvalid, outcome_value_check

    if not r.present(name):
        return {}
    value = r.data[name]
    if isinstance(value, str):
        value = {value: True}
    if not isinstance(value, dict) or not value:
        r.fail(name, f"Must be one of {', '.join(OUTCOME_NAMES)} or an object of them to values.")
        return {}
    outcome: dict[str, Any] = {}
    for outcome_name, item in value.items():
        if outcome_name not in OUTCOME_NAMES:
            r.fail(name, f"Unknown outcome {str(outcome_name)[:50]!r}: one of {', '.join(OUTCOME_NAMES)}.")
            continue
        try:
            outcome[outcome_name] = outcome_value_check(outcome_name, item)
        except ScoreValueInvalid as exc:
            r.fail(name, f"{outcome_name}: {exc}")
    return outcome


def parse_turn(data: Any) -> TurnInput:
    _check_object(data)
    data, warnings = _fields_normalise(data, aliases=TURN_ALIASES, known=TURN_FIELDS)
    r = _Reader(data)
    max_text = settings.INGEST_MAX_TEXT_CHARS
    event = r.choice("event", choices=EVENTS) or "turn"
    is_turn = event in TURN_EVENTS
    prompt_tokens = completion_tokens = None
    if r.present("tokens"):
        tokens = data["tokens"]
        if not isinstance(tokens, dict):
            r.fail("tokens", 'Must be an object like {"prompt": 12, "completion": 40}.')
        else:
            tr = _Reader(tokens)
            prompt_tokens = tr.integer("prompt", maximum=MAX_TOKENS)
            completion_tokens = tr.integer("completion", maximum=MAX_TOKENS)
            if tr.errors:
                r.errors["tokens"] = tr.errors
    calls: list[CallInput] = []
    if r.present("llm_calls"):
        raw_calls = data["llm_calls"]
        if not isinstance(raw_calls, list):
            r.fail("llm_calls", "Must be a list of LLM call objects.")
        elif len(raw_calls) > MAX_CALLS_PER_TURN:
            r.fail("llm_calls", f"At most {MAX_CALLS_PER_TURN} calls per turn.")
        else:
            call_errors: dict[str, Any] = {}
            for i, raw in enumerate(raw_calls):
                try:
                    calls.append(parse_call(raw, standalone=False, warnings=warnings, prefix=f"llm_calls[{i}]."))
                except ValidationFailed as exc:
                    call_errors[str(i)] = exc.errors
            if call_errors:
                r.errors["llm_calls"] = call_errors
    has_error, error = r.error_field("error")
    steps = _steps_read(r, "steps", None, warnings) + _steps_read(r, "sql_queries", "sql", warnings)
    if len(steps) > MAX_STEPS_PER_TURN:
        r.fail("steps", f"At most {MAX_STEPS_PER_TURN} steps per turn (steps and sql_queries together).")
    conversation_id = r.identifier("conversation_id")
    user_id = r.identifier("user_id")
    if conversation_id is None and user_id is None and not {"conversation_id", "user_id"} & set(r.errors):
        r.fail("conversation_id", "This field is required unless user_id is given (the turn then joins "
                                  "the end user's session on its channel).")
    sql_results_count = r.integer("sql_results_count", maximum=MAX_ROWS)
    metadata = r.metadata()
    if sql_results_count is not None:
        sql_steps = [s for s in steps if s.kind == "sql"]
        if len(sql_steps) == 1 and sql_steps[0].rows is None:
            sql_steps[0].rows = sql_results_count
        else:
            metadata = {**metadata, "sql_results_count": sql_results_count}
            warnings.append("sql_results_count: not one SQL query to give it to, kept as metadata.sql_results_count")
    turn = TurnInput(
        conversation_id=conversation_id or "",
        turn_id=r.identifier("turn_id"),
        user_id=user_id,
        channel=r.label("channel", max_chars=MAX_CHANNEL_CHARS).strip().lower(),
        user_message=r.text("user_message", max_chars=max_text, required=is_turn),
        bot_response=r.text("bot_response", max_chars=max_text),
        timestamp=r.timestamp("timestamp") or timezone.now(),
        latency_ms=r.integer("latency_ms", maximum=MAX_LATENCY_MS),
        fallback_used=r.boolean("fallback_used", False),
        has_error=has_error or event == "error",
        error=error,
        intent=r.label("intent", max_chars=MAX_SHORT_CHARS),
        model=r.label("model", max_chars=MAX_MODEL_CHARS),
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cost_usd=r.money("cost_usd"),
        metadata=metadata,
        llm_calls=calls,
        classification=r.label("classification", max_chars=MAX_SHORT_CHARS),
        database_used=r.label("database_used", max_chars=MAX_DATABASE_CHARS),
        conversation_message=r.text("conversation_message", max_chars=max_text),
        debug_info=r.metadata("debug_info"),
        steps=steps,
        event=event,
        hallucinated=r.optional_boolean("hallucinated"),
        rating=r.choice("rating", choices=RATINGS),
        handoff=r.optional_boolean("handoff"),
        handoff_reason=r.text("handoff_reason", max_chars=MAX_ERROR_CHARS),
        outcome=_outcome_read(r, "outcome"),
        consent=r.choice("consent", choices=CONSENTS) or "",
        warnings=warnings,
    )
    if r.errors:
        raise ValidationFailed(r.errors)
    return turn


