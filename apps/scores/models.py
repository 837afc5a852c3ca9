from django.db import models
from django.db.models import Q
from django.utils import timezone

from .choices import ScoreType
from .values import ScoreRule


class ScoreDefinition(models.Model):
    """What a chatbot's score means and which values it takes; scores under this name are
    checked against it. Reserved names (the outcomes, hallucinated) keep their fixed type and
    range; a definition can only narrow a categorical one to its categories."""

    chatbot = models.ForeignKey("chatbots.Chatbot", on_delete=models.CASCADE, related_name="score_definitions")
    name = models.CharField(max_length=100)
    data_type = models.CharField(max_length=12, choices=ScoreType.choices, default=ScoreType.NUMERIC)
    min_value = models.FloatField(null=True, blank=True)
    max_value = models.FloatField(null=True, blank=True)
    categories = models.JSONField(default=list, blank=True, help_text='For categorical scores, e.g. ["hot", "warm", "cold"].')
    higher_is_better = models.BooleanField(null=True, blank=True, help_text="Empty: neither (a category, a count).")
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["chatbot_id", "name"]
        constraints = [models.UniqueConstraint(fields=["chatbot", "name"], name="score_definition_per_chatbot")]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_data_type_display()})"

    def rule(self) -> ScoreRule:
        return ScoreRule(self.data_type, self.min_value, self.max_value, tuple(str(c) for c in self.categories or ()))


class Score(models.Model):
    """One signal about a conversation or one of its turns that is not a thumb: a bot's own
    check (hallucinated), a business outcome (converted, csat…), any custom score."""

    chatbot = models.ForeignKey("chatbots.Chatbot", on_delete=models.CASCADE, related_name="scores")
    conversation = models.ForeignKey("conversations.Conversation", on_delete=models.CASCADE, related_name="scores")
    turn = models.ForeignKey("conversations.Turn", null=True, blank=True, on_delete=models.CASCADE, related_name="scores")
    external_id = models.CharField(max_length=255, null=True, blank=True, help_text="The bot's score_id: the idempotency key.")
    name = models.CharField(max_length=100)
    data_type = models.CharField(max_length=12, choices=ScoreType.choices)
    value = models.FloatField(null=True, blank=True, help_text="Numeric, or 1/0 for boolean.")
    category = models.CharField(max_length=100, blank=True)
    comment = models.TextField(blank=True)
    source = models.CharField(max_length=32, default="api")
    timestamp = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-timestamp", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["chatbot", "external_id"], name="score_external_id_per_chatbot",
                                    condition=Q(external_id__isnull=False)),
        ]
        indexes = [
            models.Index(fields=["chatbot", "name", "timestamp"], name="score_chatbot_name_time"),
        ]

    def __str__(self) -> str:
        return f"{self.name} = {self.display_value}"

    @property
    def display_value(self) -> str:
        if self.data_type == ScoreType.BOOLEAN:
            return "yes" if self.value else "no"
        if self.data_type == ScoreType.CATEGORICAL:
            return self.category
        return f"{self.value:g}" if self.value is not None else ""
