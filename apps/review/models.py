from django.db import models

from apps.conversations.models import Conversation


class FlaggedConversationManager(models.Manager):
    def get_queryset(self) -> models.QuerySet:
        # Matches the partial indexes conv_review_queue / conv_review_risk (WHERE is_flagged).
        return super().get_queryset().filter(is_flagged=True)


class FlaggedConversation(Conversation):
    """The review queue: flagged conversations, as their own admin entry."""

    objects = FlaggedConversationManager()

    class Meta:
        proxy = True
        verbose_name = "flagged conversation"
        verbose_name_plural = "review queue"
