"""The ingest contract for the OpenAPI schema. Validation itself is apps/ingest/validation.py
(fast, hand-written); tests/ingest/test_schema.py checks the two describe the same fields."""

from django.conf import settings
from rest_framework import serializers


class TokensSerializer(serializers.Serializer):
    prompt = serializers.IntegerField(min_value=0, required=False)
    completion = serializers.IntegerField(min_value=0, required=False)


class LLMCallInSerializer(serializers.Serializer):
    call_id = serializers.CharField(max_length=255, required=False, help_text="Idempotency key of the call.")
    provider = serializers.CharField(max_length=50, required=False)
    model = serializers.CharField(max_length=100, required=False)
    function_name = serializers.CharField(max_length=200, required=False, help_text="What the call was for.")
    input_tokens = serializers.IntegerField(min_value=0, required=False, help_text="Counted with tiktoken when absent.")
    output_tokens = serializers.IntegerField(min_value=0, required=False)
    cost_usd = serializers.DecimalField(max_digits=12, decimal_places=6, min_value=0, required=False,
                                        help_text="Computed from model prices when absent.")
    duration_ms = serializers.IntegerField(min_value=0, required=False)
    input = serializers.JSONField(required=False, help_text="Prompt text, or a list of chat messages.")
    output = serializers.JSONField(required=False, help_text="Completion text, or messages.")
    success = serializers.BooleanField(required=False, default=True)
    error = serializers.JSONField(required=False, help_text="true/false or an error message.")
    timestamp = serializers.DateTimeField(required=False)
    metadata = serializers.DictField(required=False)


class LLMCallStandaloneSerializer(LLMCallInSerializer):
    conversation_id = serializers.CharField(max_length=255)
    turn_id = serializers.CharField(max_length=255, required=False,
                                    help_text="The turn this call belongs to; linked when the turn arrives later.")


class LLMCallBatchSerializer(serializers.Serializer):
    llm_calls = LLMCallStandaloneSerializer(many=True)


class TurnInSerializer(serializers.Serializer):
    conversation_id = serializers.CharField(max_length=255, help_text="The bot's conversation id (created on first sight).")
    turn_id = serializers.CharField(max_length=255, required=False, help_text="Idempotency key: a retry stores nothing twice.")
    user_id = serializers.CharField(max_length=255, required=False, help_text="End-user id; stored only as a keyed hash.")
    channel = serializers.CharField(max_length=32, required=False, help_text="website, whatsapp, slack, …")
    user_message = serializers.CharField(max_length=settings.INGEST_MAX_TEXT_CHARS, allow_blank=True)
    bot_response = serializers.CharField(max_length=settings.INGEST_MAX_TEXT_CHARS, required=False, allow_blank=True)
    timestamp = serializers.DateTimeField(required=False, help_text="ISO 8601; default now; not in the future.")
    latency_ms = serializers.IntegerField(min_value=0, required=False)
    fallback_used = serializers.BooleanField(required=False, default=False)
    error = serializers.JSONField(required=False, help_text="true/false or an error message.")
    intent = serializers.CharField(max_length=200, required=False)
    model = serializers.CharField(max_length=100, required=False)
    tokens = TokensSerializer(required=False, help_text="Counted with tiktoken when absent.")
    cost_usd = serializers.DecimalField(max_digits=12, decimal_places=6, min_value=0, required=False)
    llm_calls = LLMCallInSerializer(many=True, required=False)
    metadata = serializers.DictField(required=False, help_text=f"At most {settings.INGEST_MAX_METADATA_BYTES} bytes.")


class TurnBatchSerializer(serializers.Serializer):
    turns = TurnInSerializer(many=True, help_text=f"1 to {settings.INGEST_MAX_BATCH} turns.")


class TurnResultSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    conversation = serializers.CharField()
    turn_id = serializers.CharField(allow_null=True)
    risk_score = serializers.IntegerField(min_value=0, max_value=100)
    risk_level = serializers.ChoiceField(choices=["low", "medium", "high", "critical"])
    is_flagged = serializers.BooleanField()
    flag_reasons = serializers.ListField(child=serializers.CharField())
    feedback_token = serializers.CharField(help_text="Give this to the feedback widget for this answer.")


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
