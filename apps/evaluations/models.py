from django.conf import settings
from django.db import models
from django.db.models import Q

from .choices import CONVERSATION_CRITERIA, ConversationJudgeTrigger, EvaluationStatus, Evaluator


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


class ConversationEvaluation(models.Model):
    """A grade of one whole conversation by one evaluator version, on the conversation rubric.

    Same lifecycle as a turn's Evaluation: created pending (by the idle sweep or the `end`
    event), claimed with a compare-and-set lease, completed once (apps.evaluations.services).
    A conversation that gains turns after its grade is graded again once it is over again: a
    new row (earlier grades stay as history, the newest is shown), at most one pending at a time.
    """

    conversation = models.ForeignKey(
        "conversations.Conversation", on_delete=models.CASCADE, related_name="conversation_evaluations"
    )
    chatbot = models.ForeignKey("chatbots.Chatbot", on_delete=models.CASCADE, related_name="conversation_evaluations")
    evaluator = models.CharField(max_length=16, choices=Evaluator.choices)
    evaluator_version = models.CharField(max_length=100, help_text="e.g. conversation-judge-v1:gpt-4o-mini")
    trigger = models.CharField(max_length=8, choices=ConversationJudgeTrigger.choices, default=ConversationJudgeTrigger.IDLE)
    status = models.CharField(max_length=10, choices=EvaluationStatus.choices, default=EvaluationStatus.PENDING)
    goal_completion = models.FloatField(null=True, blank=True, help_text="Did the user get what they came for (0–10).")
    resolution = models.FloatField(null=True, blank=True, help_text="Was the issue resolved (0–10).")
    user_frustration = models.FloatField(null=True, blank=True, help_text="10 = the user stayed calm, 0 = very frustrated.")
    policy_adherence = models.FloatField(null=True, blank=True, help_text="The bot kept to its policies (0–10).")
    human_handoff = models.FloatField(null=True, blank=True, help_text="10 = no person was needed, 0 = a handoff was needed.")
    overall = models.FloatField(null=True, blank=True)
    handoff_needed = models.BooleanField(null=True, blank=True)
    failed_turn = models.PositiveIntegerField(
        null=True, blank=True, help_text="Sequence of the turn where the conversation went wrong, if any."
    )
    reasoning = models.TextField(blank=True)
    signals = models.JSONField(default=dict, blank=True, help_text="Heuristic evaluator: the signals behind each score.")
    turn_count = models.PositiveIntegerField(
        null=True, blank=True, editable=False,
        help_text="Turns of the conversation this grade covers; empty while pending. A conversation "
                  "with more turns than its newest grade covers is graded again once it is over.",
    )
    transcript = models.JSONField(
        default=dict, blank=True,
        help_text="What the judge saw: turns, which were kept verbatim, elided or summarised, prompt tokens.",
    )
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    claimed_until = models.DateTimeField(null=True, blank=True, editable=False)
    llm_call = models.ForeignKey(
        "conversations.LLMCall", null=True, blank=True, on_delete=models.SET_NULL, related_name="conversation_evaluations"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # One grade in progress per conversation and version: the sweep and the `end` event
            # racing (INSERT … ON CONFLICT DO NOTHING) create one. Finished grades are history.
            models.UniqueConstraint(
                fields=["conversation", "evaluator_version"], condition=Q(status="pending"),
                name="conversation_evaluation_pending_per_version",
            ),
        ]
        indexes = [
            # The dashboard trend and alert metrics: completed grades of a chatbot over time.
            models.Index(fields=["chatbot", "completed_at"], name="conv_eval_chatbot_done",
                         condition=Q(status="done")),
            # The idle sweep's "no grade covers it yet" (conversation_evaluations_covering).
            models.Index(fields=["conversation", "evaluator_version", "turn_count"], name="conv_eval_version_turns"),
            # The sweeper: pending grades waiting too long (a lost task).
            models.Index(fields=["created_at"], name="conv_eval_pending", condition=Q(status="pending")),
        ]

    def __str__(self) -> str:
        return f"{self.get_evaluator_display()} of conversation {self.conversation_id}: {self.overall}"

    @property
    def is_heuristic(self) -> bool:
        return self.evaluator == Evaluator.HEURISTIC

    def criteria(self) -> list[tuple[str, float | None]]:
        """(label, score) per criterion, for display."""
        return [(self._meta.get_field(name).verbose_name.replace("_", " ").capitalize(), getattr(self, name))
                for name in CONVERSATION_CRITERIA]
