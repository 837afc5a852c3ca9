"""The ingest contract for the OpenAPI schema. Validation itself is apps/ingest/validation.py
(fast, hand-written); tests/ingest/test_schema_contract.py checks that the two describe the same
fields with the same limits, so the limits here are the validator's own constants."""

import copy

from django.conf import settings
from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.conversations.choices import RiskLevel
from apps.core.text import CONTROL_CHARACTERS_MESSAGE, NO_CONTROL_CHARACTERS

from ..validation import (
    CALL_ALIASES,
    CONSENTS,
    EVENTS,
    MAX_CALLS_PER_TURN,
    MAX_CHANNEL_CHARS,
    MAX_COST_USD,
    MAX_DATABASE_CHARS,
    MAX_ERROR_CHARS,
    MAX_ID_CHARS,
    MAX_LATENCY_MS,
    MAX_MODEL_CHARS,
    MAX_PROVIDER_CHARS,
    MAX_ROWS,
    MAX_SHORT_CHARS,
    MAX_STEPS_PER_TURN,
    MAX_TOKENS,
    OUTCOME_NAMES,
    RATINGS,
    STEP_ALIASES,
    STEP_KINDS,
    TURN_ALIASES,
)

TIMESTAMP_HELP = (
    f"ISO 8601 (no zone: UTC). Not before 2000-01-01, not more than {settings.INGEST_MAX_FUTURE_SECONDS} s "
    "in the future (clock skew)."
)


@extend_schema_field({"oneOf": [
    {"type": "number", "minimum": 0, "maximum": int(MAX_COST_USD)},
    {"type": "string", "pattern": r"^\d+(\.\d+)?$"},
], "description": f"US dollars, 0 to {MAX_COST_USD}, as a number or a decimal string; rounded to 6 places."})
class CostField(serializers.JSONField):
    pass


@extend_schema_field({"oneOf": [
    {"type": "boolean"}, {"type": "string", "maxLength": MAX_ERROR_CHARS},
], "description": "true/false or an error message (a non-blank message means true)."})
class ErrorField(serializers.JSONField):
    pass


@extend_schema_field({"oneOf": [
    {"type": "string", "maxLength": settings.INGEST_MAX_TEXT_CHARS},
    {"type": "array", "items": {}}, {"type": "object", "additionalProperties": {}},
], "description": f"Text, or chat messages (kept as JSON text); at most {settings.INGEST_MAX_TEXT_CHARS} characters."})
class ContentField(serializers.JSONField):
    pass


@extend_schema_field({"oneOf": [
    {"type": "string", "maxLength": settings.INGEST_MAX_TEXT_CHARS},
    {"type": "object", "additionalProperties": {}},
], "description": "The query text, or an object: `query` (or `sql`), `results_count` (or `rows`), `duration_ms`, "
                  "`success`, `error` — a step of kind sql."})
class SqlQueryField(serializers.JSONField):
    pass


@extend_schema_field({"oneOf": [
    {"type": "string", "enum": list(OUTCOME_NAMES)}, {"type": "object", "additionalProperties": {}},
], "description": "With `event: end`: an outcome that is now true (\"resolved\"), or an object of outcomes to "
                  "values ({\"converted\": true, \"csat\": 4}): converted, resolved, handed_off (booleans), "
                  "csat 1–5, nps 0–10, lead_quality (a category)."})
class OutcomeField(serializers.JSONField):
    pass


def _no_control_characters() -> RegexValidator:
    return RegexValidator(NO_CONTROL_CHARACTERS, CONTROL_CHARACTERS_MESSAGE)


def _id(**kwargs):
    """An identifier: no control characters (validation.py's identifier reader)."""
    return serializers.CharField(max_length=MAX_ID_CHARS, validators=[_no_control_characters()], **kwargs)


def _text(max_length: int, **kwargs):
    """Free text: any character; NUL is stored as U+FFFD."""
    return serializers.CharField(max_length=max_length, required=False, allow_blank=True, **kwargs)


def _label(max_length: int, **kwargs):
    """A short name (channel, model, intent…): no control characters (the label reader). The
    schema says oneOf [a non-empty string without them, ""]."""
    return serializers.CharField(max_length=max_length, required=False, allow_blank=True,
                                 validators=[_no_control_characters()], **kwargs)


def _metadata():
    return serializers.DictField(required=False, help_text=f"At most {settings.INGEST_MAX_METADATA_BYTES} bytes as JSON.")


class TokensSerializer(serializers.Serializer):
    prompt = serializers.IntegerField(min_value=0, max_value=MAX_TOKENS, required=False)
    completion = serializers.IntegerField(min_value=0, max_value=MAX_TOKENS, required=False)


class LLMCallInSerializer(serializers.Serializer):
    call_id = _id(required=False, help_text="Idempotency key of the call.")
    provider = _label(MAX_PROVIDER_CHARS)
    model = _label(MAX_MODEL_CHARS)
    function_name = _label(MAX_SHORT_CHARS, help_text="What the call was for.")
    purpose = _label(MAX_SHORT_CHARS, help_text="Another name for function_name, used when that is absent.")
    input_tokens = serializers.IntegerField(min_value=0, max_value=MAX_TOKENS, required=False,
                                            help_text="Counted with tiktoken when absent.")
    output_tokens = serializers.IntegerField(min_value=0, max_value=MAX_TOKENS, required=False)
    cost_usd = CostField(required=False, help_text="Computed from model prices when absent.")
    duration_ms = serializers.IntegerField(min_value=0, max_value=MAX_LATENCY_MS, required=False)
    input = ContentField(required=False, help_text="Prompt text, or a list of chat messages.")
    output = ContentField(required=False, help_text="Completion text, or messages.")
    success = serializers.BooleanField(required=False, default=True)
    error = ErrorField(required=False)
    timestamp = serializers.DateTimeField(required=False, help_text=TIMESTAMP_HELP)
    metadata = _metadata()


class StepInSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=list(STEP_KINDS), required=False, help_text="Default other.")
    name = _label(MAX_SHORT_CHARS, help_text="The tool, index, table or URL name.")
    input = ContentField(required=False, help_text="The SQL text, tool arguments, retrieval query, request.")
    output = ContentField(required=False)
    duration_ms = serializers.IntegerField(min_value=0, max_value=MAX_LATENCY_MS, required=False)
    success = serializers.BooleanField(required=False, default=True)
    error = ErrorField(required=False)
    rows = serializers.IntegerField(min_value=0, max_value=MAX_ROWS, required=False, help_text="Rows or documents returned.")
    metadata = _metadata()


class LLMCallStandaloneSerializer(LLMCallInSerializer):
    conversation_id = _id()
    turn_id = _id(required=False, help_text="The turn this call belongs to; linked when the turn arrives later.")


class LLMCallBatchSerializer(serializers.Serializer):
    llm_calls = serializers.ListField(child=LLMCallStandaloneSerializer(), min_length=1,
                                      max_length=settings.INGEST_MAX_BATCH,
                                      help_text=f"1 to {settings.INGEST_MAX_BATCH} calls.")


class TurnInSerializer(serializers.Serializer):
    conversation_id = _id(required=False, help_text=(
        "The bot's conversation id (created on first sight). Absent: the turn joins its end user's session "
        "on its channel (needs user_id); a session ends after the chatbot's inactivity gap, 30 min by default."))
    turn_id = _id(required=False, help_text="Idempotency key: a retry stores nothing twice.")
    user_id = _id(required=False, help_text="End-user id; stored only as a keyed hash.")
    channel = _label(MAX_CHANNEL_CHARS, help_text="website, whatsapp, slack, … (stored lower-case)")
    user_message = serializers.CharField(max_length=settings.INGEST_MAX_TEXT_CHARS, allow_blank=True)
    bot_response = _text(settings.INGEST_MAX_TEXT_CHARS)
    timestamp = serializers.DateTimeField(required=False, help_text=f"Default now. {TIMESTAMP_HELP}")
    latency_ms = serializers.IntegerField(min_value=0, max_value=MAX_LATENCY_MS, required=False)
    fallback_used = serializers.BooleanField(required=False, default=False)
    error = ErrorField(required=False)
    intent = _label(MAX_SHORT_CHARS)
    model = _label(MAX_MODEL_CHARS)
    tokens = TokensSerializer(required=False, help_text="Counted with tiktoken when absent.")
    cost_usd = CostField(required=False)
    llm_calls = serializers.ListField(child=LLMCallInSerializer(), required=False, max_length=MAX_CALLS_PER_TURN)
    metadata = serializers.DictField(required=False, help_text=(
        f"At most {settings.INGEST_MAX_METADATA_BYTES} bytes as JSON. Unknown top-level fields are kept here too "
        "(your own keys win) and listed in the answer's `warnings`."))
    classification = _label(MAX_SHORT_CHARS)
    database_used = _label(MAX_DATABASE_CHARS)
    conversation_message = _text(settings.INGEST_MAX_TEXT_CHARS, help_text="A human-readable summary of the answer.")
    debug_info = serializers.DictField(required=False, help_text=f"At most {settings.INGEST_MAX_METADATA_BYTES} bytes as JSON.")
    steps = serializers.ListField(child=StepInSerializer(), required=False, max_length=MAX_STEPS_PER_TURN,
                                  help_text=f"SQL queries, tool calls, retrievals, HTTP requests; at most {MAX_STEPS_PER_TURN} "
                                            "together with sql_queries.")
    sql_queries = serializers.ListField(child=SqlQueryField(), required=False, max_length=MAX_STEPS_PER_TURN,
                                        help_text="The chat-logging design's queries: stored as steps of kind sql.")
    sql_results_count = serializers.IntegerField(min_value=0, max_value=MAX_ROWS, required=False,
                                                 help_text="The rows of the turn's one SQL query (kept in metadata otherwise).")
    event = serializers.ChoiceField(choices=list(EVENTS), required=False, help_text=(
        "turn (default) or error store a turn (error counts as an error); start, end and feedback are conversation "
        "events: start opens it, end closes it (ended_at, optional outcome), feedback records `rating` on `turn_id` "
        "or the latest turn. user_message is not required for them."))
    hallucinated = serializers.BooleanField(required=False, help_text=(
        "The bot's own hallucination check: stored as the score `hallucinated`; true flags the turn."))
    rating = serializers.ChoiceField(choices=list(RATINGS), required=False,
                                     help_text="The end user's thumbs on this answer, recorded as feedback (source api).")
    handoff = serializers.BooleanField(required=False, help_text="Handed off to a human: the score handed_off on this turn.")
    handoff_reason = _text(MAX_ERROR_CHARS)
    outcome = OutcomeField(required=False)
    consent = serializers.ChoiceField(choices=list(CONSENTS), required=False, help_text=(
        "The end user's consent for this conversation: full (default), no_content (metrics, scores and flags "
        "are kept, every text is replaced by a fixed marker before it is stored, and the turn is never sent "
        "to the judge or an embedding model) or no_training (texts kept for review, left out of clustering "
        "and fine-tuning exports). The strictest of this, the conversation's, the end user's (POST "
        "/end-users/{user_id}/consent) and the chatbot's default applies; a conversation never gets less "
        "strict."))


def _aliases_declare(serializer_class: type[serializers.Serializer], aliases: dict[str, str]) -> None:
    """Declare each alias as a copy of its canonical field (validation.py reads them so)."""
    for alias, canonical in aliases.items():
        field = serializer_class._declared_fields[canonical]
        kwargs = {**field._kwargs, "required": False,
                  "help_text": f"Another name for `{canonical}` (the canonical name wins when both are sent)."}
        serializer_class._declared_fields[alias] = field.__class__(*copy.deepcopy(field._args), **copy.deepcopy(kwargs))


_aliases_declare(TurnInSerializer, TURN_ALIASES)
_aliases_declare(LLMCallInSerializer, {a: c for a, c in CALL_ALIASES.items() if c in LLMCallInSerializer._declared_fields})
_aliases_declare(StepInSerializer, STEP_ALIASES)
_aliases_declare(LLMCallStandaloneSerializer, CALL_ALIASES)


class TurnBatchSerializer(serializers.Serializer):
    turns = serializers.ListField(child=TurnInSerializer(), min_length=1, max_length=settings.INGEST_MAX_BATCH,
                                  help_text=f"1 to {settings.INGEST_MAX_BATCH} turns.")


class TurnResultSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    conversation = serializers.CharField()
    turn_id = serializers.CharField(allow_null=True)
    risk_score = serializers.IntegerField(min_value=0, max_value=100)
    risk_level = serializers.ChoiceField(choices=RiskLevel.values)
    is_flagged = serializers.BooleanField()
    flag_reasons = serializers.ListField(child=serializers.CharField())
    feedback_token = serializers.CharField(help_text="Give this to the feedback widget for this answer.")
    warnings = serializers.ListField(child=serializers.CharField(), required=False, help_text=(
        "Present when there is something to say: unknown fields kept under metadata (or not stored), aliases "
        "overridden by their canonical field."))


class EventResultSerializer(serializers.Serializer):
    event = serializers.ChoiceField(choices=["start", "end", "feedback"])
    conversation = serializers.CharField()
    turn_id = serializers.CharField(allow_null=True, help_text="The turn a feedback event rated.")
    ended_at = serializers.DateTimeField(allow_null=True)
    warnings = serializers.ListField(child=serializers.CharField(), required=False)


class BatchItemResultSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    status = serializers.IntegerField(help_text="201 stored, 200 replay of a stored turn_id, 400 rejected.")
    id = serializers.IntegerField(required=False)
    errors = serializers.DictField(required=False)


class BatchResultSerializer(serializers.Serializer):
    results = BatchItemResultSerializer(many=True)


class CallResultSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    conversation = serializers.CharField()
    turn_id = serializers.CharField(allow_null=True)
    call_id = serializers.CharField(allow_null=True)
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    tokens_estimated = serializers.BooleanField()
    cost_usd = serializers.CharField()
    warnings = serializers.ListField(child=serializers.CharField(), required=False)
