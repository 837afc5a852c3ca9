from django.conf import settings
from django.db import models
from django.db.models import Q

from .choices import EvaluationStatus, Evaluator


class Evaluation(models.Model):
    """A grade of one turn by one evaluator version: criteria 0–10, overall, hallucination."""

    turn = models.ForeignKey("conversations.Turn", on_delete=models.CASCADE, related_name="evaluations")
    chatbot = models.ForeignKey("chatbots.Chatbot", on_delete=models.CASCADE, related_name="evaluations")
    evaluator = models.CharField(max_length=16, choices=Evaluator.choices)
    evaluator_version = models.CharField(max_length=100, help_text="e.g. judge-v1:gpt-4o-mini")
    status = models.CharField(max_length=10, choices=EvaluationStatus.choices, default=EvaluationStatus.PENDING)
    accuracy = models.FloatField(null=True, blank=True)
    relevance = models.FloatField(null=True, blank=True)
    clarity = models.FloatField(null=True, blank=True)
    helpfulness = models.FloatField(null=True, blank=True)
    safety = models.FloatField(null=True, blank=True)
    overall = models.FloatField(null=True, blank=True)
    hallucination = models.BooleanField(null=True, blank=True)
    reasoning = models.TextField(blank=True)
    signals = models.JSONField(default=dict, blank=True, help_text="Heuristic evaluator: the signals behind each score.")
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Calls to the judge so far (retries included).")
    # A worker holds the evaluation until this time; a duplicate task (redelivery, sweeper) backs
    # off while it is in the future, and takes over once a dead worker's lease has run out.
    claimed_until = models.DateTimeField(null=True, blank=True, editable=False)
    llm_call = models.ForeignKey(
        "conversations.LLMCall", null=True, blank=True, on_delete=models.SET_NULL, related_name="evaluations"
    )
    # A human evaluation (evaluator "human") is one reviewer's grade of the turn: its author,
    # the labels they picked from the chatbot's label set. Judges leave both empty.
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="human_evaluations"
    )
    labels = models.JSONField(default=list, blank=True, help_text="Labels from the chatbot's review label set.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["turn", "evaluator_version"], name="evaluation_per_turn_and_version"),
            models.UniqueConstraint(
                fields=["turn", "reviewer"], condition=Q(evaluator="human"), name="human_evaluation_per_turn_and_reviewer"
            ),
        ]
        indexes = [
            models.Index(fields=["chatbot", "created_at"], name="evaluation_chatbot_time"),
            models.Index(fields=["status", "created_at"], name="evaluation_status_time"),
        ]

    def __str__(self) -> str:
        return f"{self.get_evaluator_display()} of turn {self.turn_id}: {self.overall}"
