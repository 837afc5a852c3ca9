from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from rest_framework import serializers

from apps.alerts.models import AlertEvent
from apps.chatbots.models import Chatbot
from apps.conversations.choices import ReviewStatus
from apps.conversations.models import Conversation, LLMCall, Turn
from apps.evaluations.models import Evaluation
from apps.feedback.models import Feedback

from ..selectors import MAX_HOURS
from ..services import MAX_CORRECTION_CHARS, MAX_NOTE_CHARS, REVIEW_ACTIONS


class ChatbotSerializer(serializers.ModelSerializer):
    class Meta:
        model = Chatbot
        fields = [
            "id", "name", "slug", "company", "provider", "model", "description", "monitoring_enabled",
            "risk_threshold", "alert_on_risk", "judge_enabled", "judge_sample_rate", "judge_model",
            "judge_flag_below", "pii_redaction_enabled", "retention_days", "created_at", "updated_at",
        ]


class ConversationSerializer(serializers.ModelSerializer):
    chatbot_slug = serializers.CharField(source="chatbot.slug", read_only=True)
    risk_level = serializers.CharField(read_only=True)
    assignee = serializers.CharField(source="assignee.get_username", read_only=True, default=None)
    conversation_judge_score = serializers.FloatField(
        read_only=True, default=None, help_text="Overall of the latest completed conversation evaluation (0–10)."
    )

    class Meta:
        model = Conversation
        fields = [
            "id", "chatbot", "chatbot_slug", "external_id", "end_user_hash", "channel", "started_at",
            "last_activity_at", "turn_count", "total_tokens", "cost_usd", "error_count", "fallback_count",
            "thumbs_up", "thumbs_down", "max_risk_score", "risk_level", "min_judge_score", "is_flagged",
            "flag_reasons", "flagged_at", "review_status", "assignee", "reviewed_at", "metadata",
            "conversation_judge_score",
        ]


class TurnSerializer(serializers.ModelSerializer):
    class Meta:
        model = Turn
        fields = [
            "id", "conversation", "chatbot", "external_id", "sequence", "timestamp", "user_message",
            "bot_response", "latency_ms", "fallback_used", "has_error", "error", "intent", "model",
            "prompt_tokens", "completion_tokens", "tokens_estimated", "cost_usd", "total_tokens",
            "total_cost_usd", "risk_score", "risk_level", "risk_reasons", "is_flagged", "flag_reasons",
            "thumbs_up", "thumbs_down", "judge_status", "judge_overall", "judge_hallucination", "metadata",
            "corrected_answer", "corrected_at",
        ]


class EvaluationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Evaluation
        fields = [
            "id", "turn", "chatbot", "evaluator", "evaluator_version", "status", "accuracy", "relevance",
            "clarity", "helpfulness", "safety", "overall", "hallucination", "reasoning", "signals", "error",
            "attempts", "llm_call", "reviewer", "labels", "created_at", "completed_at",
        ]


class FeedbackSerializer(serializers.ModelSerializer):
    class Meta:
        model = Feedback
        fields = ["id", "turn", "chatbot", "rating", "comment", "source", "created_at", "updated_at"]


class LLMCallSerializer(serializers.ModelSerializer):
    class Meta:
        model = LLMCall
        fields = [
            "id", "turn", "external_id", "purpose", "function_name", "provider", "model", "input_tokens",
            "output_tokens", "tokens_estimated", "cost_usd", "duration_ms", "input_text", "output_text",
            "success", "error", "timestamp", "metadata",
        ]


class AlertEventSerializer(serializers.ModelSerializer):
    rule_name = serializers.CharField(source="rule.name", read_only=True, default=None)
    chatbot_slug = serializers.CharField(source="chatbot.slug", read_only=True, default=None)

    class Meta:
        model = AlertEvent
        fields = [
            "id", "rule", "rule_name", "chatbot", "chatbot_slug", "turn", "status", "severity", "metric",
            "value", "threshold", "sample_size", "message", "started_at", "last_notified_at", "notify_count",
            "acknowledged_at", "resolved_at",
        ]


class TurnDetailSerializer(TurnSerializer):
    """A turn with everything said about it; the caller prefetches the three relations."""

    evaluations = EvaluationSerializer(many=True, read_only=True)
    feedback = FeedbackSerializer(many=True, read_only=True)
    llm_calls = LLMCallSerializer(many=True, read_only=True)

    class Meta(TurnSerializer.Meta):
        fields = [*TurnSerializer.Meta.fields, "evaluations", "feedback", "llm_calls"]


class ConversationDetailSerializer(ConversationSerializer):
    turns = TurnDetailSerializer(many=True, read_only=True)

    class Meta(ConversationSerializer.Meta):
        fields = [*ConversationSerializer.Meta.fields, "review_note", "turns"]


class ConversationExportSerializer(ConversationDetailSerializer):
    chatbot = ChatbotSerializer(read_only=True)


class RubricScoresSerializer(serializers.Serializer):
    accuracy = serializers.FloatField(min_value=0, max_value=10, required=False, allow_null=True)
    relevance = serializers.FloatField(min_value=0, max_value=10, required=False, allow_null=True)
    clarity = serializers.FloatField(min_value=0, max_value=10, required=False, allow_null=True)
    helpfulness = serializers.FloatField(min_value=0, max_value=10, required=False, allow_null=True)
    safety = serializers.FloatField(min_value=0, max_value=10, required=False, allow_null=True)


class ReviewActionSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=REVIEW_ACTIONS)
    status = serializers.ChoiceField(choices=ReviewStatus.choices, required=False)
    note = serializers.CharField(required=False, allow_blank=True, max_length=MAX_NOTE_CHARS,
                                 help_text="set_status: the decision's note; flag: the reason (required).")
    turn = serializers.IntegerField(required=False, help_text="The turn for score, correct, and (optional) flag, rerun_judge.")
    scores = RubricScoresSerializer(required=False, help_text="score: the rubric's criteria, 0–10.")
    hallucination = serializers.BooleanField(required=False, allow_null=True, default=None)
    labels = serializers.ListField(child=serializers.CharField(max_length=100), required=False,
                                   help_text="score: labels from the chatbot's review label set.")
    corrected_answer = serializers.CharField(required=False, allow_blank=True, max_length=MAX_CORRECTION_CHARS,
                                             help_text="correct: what the bot should have answered (empty removes it).")

    def validate(self, attrs: dict) -> dict:
        if attrs["action"] == "set_status" and not attrs.get("status"):
            raise serializers.ValidationError({"status": "Required for action set_status."})
        if attrs["action"] in ("score", "correct") and attrs.get("turn") is None:
            raise serializers.ValidationError({"turn": f"Required for action {attrs['action']}."})
        if attrs["action"] == "correct" and "corrected_answer" not in attrs:
            raise serializers.ValidationError({"corrected_answer": "Required for action correct."})
        if attrs["action"] == "flag" and not (attrs.get("note") or "").strip():
            raise serializers.ValidationError({"note": "Say why you flag it."})
        return attrs


class StatsQuerySerializer(serializers.Serializer):
    hours = serializers.IntegerField(min_value=1, max_value=MAX_HOURS, default=24, help_text="Window length, ending now.")
    chatbot = serializers.CharField(required=False, help_text="Chatbot id or slug; all visible chatbots when absent.")


class StepStatsQuerySerializer(StatsQuerySerializer):
    kind = serializers.ChoiceField(choices=["sql", "tool", "retrieval", "http", "other"], required=False)


class OverviewQuerySerializer(StatsQuerySerializer):
    since = serializers.DateTimeField(required=False, help_text="With `until`: a custom window (since, until] instead of `hours`.")
    until = serializers.DateTimeField(required=False, help_text="End of the custom window (default: now).")
    breakdown = serializers.ChoiceField(choices=["chatbot", "model", "intent", "channel"], required=False,
                                        help_text="Also group the window's turns by this (the 20 biggest groups).")

    def validate(self, attrs: dict) -> dict:
        since, until = attrs.get("since"), attrs.get("until")
        if until and not since:
            raise serializers.ValidationError({"since": "Required with until."})
        if since:
            until = until or timezone.now()
            if not since < until:
                raise serializers.ValidationError({"until": "Must be after since."})
            if until - since > timedelta(hours=MAX_HOURS):
                raise serializers.ValidationError({"since": f"The window is at most {MAX_HOURS} hours."})
            attrs["until"] = until
        return attrs


class LLMCallStatsQuerySerializer(StatsQuerySerializer):
    model = serializers.CharField(required=False, max_length=100)
    function_name = serializers.CharField(required=False, max_length=200)
