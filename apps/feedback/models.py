from django.db import models

from .choices import FeedbackSource, Rating


class Feedback(models.Model):
    """An end user's thumbs on one bot answer; a later vote by the same voter replaces it."""

    turn = models.ForeignKey(
        "conversations.Turn", on_delete=models.CASCADE, related_name="feedback"
    )
    chatbot = models.ForeignKey(
        "chatbots.Chatbot", on_delete=models.CASCADE, related_name="feedback"
    )
    voter_key = models.CharField(
        max_length=64,
        help_text="Keyed hash of who voted (end user id, or the conversation's end user).",
    )
    rating = models.CharField(max_length=4, choices=Rating.choices)
    comment = models.TextField(blank=True)
    source = models.CharField(
        max_length=8, choices=FeedbackSource.choices, default=FeedbackSource.WIDGET
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "feedback"
        constraints = [
            models.UniqueConstraint(
                fields=["turn", "voter_key"], name="feedback_per_turn_and_voter"
            ),
        ]
        indexes = [models.Index(fields=["chatbot", "created_at"], name="feedback_chatbot_time")]

    def __str__(self) -> str:
        return f"{self.get_rating_display()} on turn {self.turn_id}"
