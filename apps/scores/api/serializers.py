from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.ingest.api.serializers import TIMESTAMP_HELP, _id, _label, _text
from apps.ingest.validation import MAX_SCORE_NAME_CHARS

from ..models import Score
from ..values import MAX_CATEGORY_CHARS, MAX_COMMENT_CHARS, MAX_SOURCE_CHARS


@extend_schema_field({"oneOf": [
    {"type": "number"}, {"type": "boolean"}, {"type": "string", "minLength": 1, "maxLength": MAX_CATEGORY_CHARS},
], "description": "A number, true/false, or a category. Checked against the chatbot's definition of the name, "
                  "if any, and the reserved names' fixed rules (csat 1–5, nps 0–10, converted/resolved/handed_off/"
                  "hallucinated booleans, lead_quality a category)."})
class ScoreValueField(serializers.JSONField):
    pass


class ScoreInSerializer(serializers.Serializer):
    score_id = _id(required=False, help_text="Idempotency key: a retry stores nothing twice.")
    conversation_id = _id(help_text="A conversation the chatbot has sent.")
    turn_id = _id(required=False, help_text="One of its turns; absent: the score is about the conversation.")
    name = _label(MAX_SCORE_NAME_CHARS)
    value = ScoreValueField()
    comment = _text(MAX_COMMENT_CHARS)
    source = _label(MAX_SOURCE_CHARS, help_text="Who scored: api (default), a checker's name, …")
    timestamp = serializers.DateTimeField(required=False, help_text=f"Default now. {TIMESTAMP_HELP}")


class ScoreBatchSerializer(serializers.Serializer):
    scores = serializers.ListField(child=ScoreInSerializer(), min_length=1, max_length=1000)


class ScoreResultSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    score_id = serializers.CharField(allow_null=True)
    conversation = serializers.CharField()
    turn_id = serializers.CharField(allow_null=True)
    name = serializers.CharField()
    data_type = serializers.CharField()
    value = serializers.JSONField()


class OutcomesInSerializer(serializers.Serializer):
    converted = serializers.BooleanField(required=False)
    resolved = serializers.BooleanField(required=False)
    handed_off = serializers.BooleanField(required=False)
    handoff_reason = _text(MAX_COMMENT_CHARS)
    csat = serializers.IntegerField(min_value=1, max_value=5, required=False)
    nps = serializers.IntegerField(min_value=0, max_value=10, required=False)
    lead_quality = _label(MAX_CATEGORY_CHARS, help_text="A category (the chatbot's definition may list them).")
    timestamp = serializers.DateTimeField(required=False, help_text=f"Default now. {TIMESTAMP_HELP}")


class OutcomesResultSerializer(serializers.Serializer):
    conversation = serializers.CharField()
    outcomes = serializers.DictField(child=serializers.JSONField())


class ScoreSerializer(serializers.ModelSerializer):
    """The staff API's score."""

    class Meta:
        model = Score
        fields = ("id", "chatbot", "conversation", "turn", "external_id", "name", "data_type", "value", "category",
                  "display_value", "comment", "source", "timestamp", "created_at")
