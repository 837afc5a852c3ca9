from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.feedback.choices import Rating
from apps.feedback.models import Feedback


class StrictCharField(serializers.CharField):
    """A string, and only a string: DRF's CharField would accept 123 and turn it into "123"."""

    def to_internal_value(self, data: object) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class _RatingCommentFields(serializers.Serializer):
    rating = serializers.ChoiceField(choices=Rating.choices)
    comment = StrictCharField(
        required=False,
        allow_blank=True,
        allow_null=True,
        help_text="Plain text, stored as given and never rendered as HTML. Omitted: an unchanged "
        "rating keeps the earlier comment.",
    )

    def validate_comment(self, value: str | None) -> str | None:
        # Read per request (not at import) so FEEDBACK_MAX_COMMENT_CHARS can change without a deploy
        limit = settings.FEEDBACK_MAX_COMMENT_CHARS
        if value is not None and len(value) > limit:
            raise serializers.ValidationError(
                f"Ensure this field has no more than {limit} characters.", code="max_length"
            )
        return value


class FeedbackTokenVoteSerializer(_RatingCommentFields):
    """A vote from the widget (or any page) with the turn's signed token. No API key."""

    token = StrictCharField(max_length=1024, help_text="The turn's `feedback_token` from ingest.")


class FeedbackBotVoteSerializer(_RatingCommentFields):
    """A vote collected in the bot's own UI, sent with the bot's API key."""

    # Ids are strings in the ingest API; numbers are accepted there too, so accept them here.
    conversation_id = serializers.CharField(max_length=255)
    turn_id = serializers.CharField(max_length=255)
    user_id = serializers.CharField(
        max_length=255,
        required=False,
        allow_blank=True,
        help_text="The end user who voted (stored only as a keyed hash). Empty: the conversation's "
        "end user, or one anonymous vote per turn.",
    )


class FeedbackResultSerializer(serializers.ModelSerializer):
    status = serializers.SerializerMethodField(
        help_text="created | updated | unchanged (an identical repeat: nothing was written)."
    )

    class Meta:
        model = Feedback
        fields = ["id", "status", "rating", "comment", "source", "created_at", "updated_at"]
        read_only_fields = fields

    @extend_schema_field(serializers.ChoiceField(choices=["created", "updated", "unchanged"]))
    def get_status(self, feedback: Feedback) -> str:
        return self.context["status"]
