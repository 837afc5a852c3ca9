from rest_framework import serializers

from ..models import Cluster, ClusterMember, ClusterRun


class ClusterRunSerializer(serializers.ModelSerializer):
    chatbot_slug = serializers.CharField(source="chatbot.slug", read_only=True)

    class Meta:
        model = ClusterRun
        fields = ["id", "chatbot", "chatbot_slug", "status", "message", "window_start", "window_end", "backend",
                  "embedding_model", "parameters", "turn_count", "cluster_count", "noise_count", "timings",
                  "previous_run", "created_at", "started_at", "finished_at"]
        read_only_fields = fields


class ClusterTurnSerializer(serializers.ModelSerializer):
    """A member turn: enough to read it and open its conversation."""

    turn = serializers.IntegerField(source="turn_id", read_only=True)
    conversation = serializers.IntegerField(source="turn.conversation_id", read_only=True)
    timestamp = serializers.DateTimeField(source="turn.timestamp", read_only=True)
    user_message = serializers.CharField(source="turn.user_message", read_only=True)
    bot_response = serializers.CharField(source="turn.bot_response", read_only=True)
    judge_overall = serializers.FloatField(source="turn.judge_overall", read_only=True, allow_null=True)
    conversation_external_id = serializers.CharField(source="turn.conversation.external_id", read_only=True)
    reasons = serializers.ListField(child=serializers.CharField(), read_only=True,
                                    help_text="The failure sources the turn matched.")

    class Meta:
        model = ClusterMember
        fields = ["turn", "conversation", "conversation_external_id", "timestamp", "user_message", "bot_response",
                  "judge_overall", "distance", "is_representative", "reasons"]
        read_only_fields = fields


class ClusterSerializer(serializers.ModelSerializer):
    chatbot = serializers.IntegerField(source="run.chatbot_id", read_only=True)
    chatbot_slug = serializers.CharField(source="run.chatbot.slug", read_only=True)
    representatives = ClusterTurnSerializer(many=True, read_only=True)
    theme = serializers.IntegerField(source="theme_key", read_only=True,
                                     help_text="Shared by every cluster of this theme's history across runs.")

    class Meta:
        model = Cluster
        fields = ["id", "run", "chatbot", "chatbot_slug", "index", "label", "keywords", "size", "share",
                  "avg_judge_score", "first_at", "last_at", "is_noise", "is_new", "share_change", "previous",
                  "theme", "representatives"]
        read_only_fields = fields
