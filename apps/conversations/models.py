from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from .choices import CallPurpose, Consent, JudgeStatus, ReviewStatus, RiskLevel, StepKind

ZERO_COST = Decimal("0")
# Column sizes hold the sums of the ingest maxima (apps.ingest.validation): one cost is at most
# 1,000,000 USD given, or ~20 M computed from list prices, so 10 integer digits; a turn's total
# (100 listed calls plus any number sent to /llm-calls) and a conversation's have no count bound,
# so 18 integer digits; token totals are bigint (a turn at every maximum is 2.02 G tokens).
COST_DIGITS = 16
TOTAL_COST_DIGITS = 24


class Conversation(models.Model):
    """A conversation as the bot knows it, with a summary kept current by the ingest services."""

    chatbot = models.ForeignKey("chatbots.Chatbot", on_delete=models.CASCADE, related_name="conversations")
    external_id = models.CharField(max_length=255)
    # The first end user seen in the conversation, for display and filtering; each turn records
    # its own (Turn.end_user_hash).
    end_user_hash = models.CharField(
        max_length=64, blank=True, help_text="HMAC-SHA256 of the first end user's id (never the raw id)."
    )
    channel = models.CharField(max_length=32, blank=True)
    release = models.CharField(max_length=100, blank=True, help_text="The bot or prompt version of its latest turn.")
    started_at = models.DateTimeField(default=timezone.now)
    last_activity_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True, help_text="When the bot sent its `end` event.")
    metadata = models.JSONField(default=dict, blank=True)
    consent = models.CharField(
        max_length=16, choices=Consent.choices, default=Consent.FULL,
        help_text="What the end user allows: no_content stores no message text, no_training keeps it "
                  "out of exports. Only ever gets stricter (apps/privacy/services.py).",
    )

    # Summary, updated in the same transaction as the rows it summarises.
    turn_count = models.PositiveIntegerField(default=0)
    total_tokens = models.BigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=TOTAL_COST_DIGITS, decimal_places=6, default=ZERO_COST)
    error_count = models.PositiveIntegerField(default=0)
    fallback_count = models.PositiveIntegerField(default=0)
    thumbs_up = models.PositiveIntegerField(default=0)
    thumbs_down = models.PositiveIntegerField(default=0)
    max_risk_score = models.PositiveSmallIntegerField(default=0)
    min_judge_score = models.FloatField(null=True, blank=True)
    is_flagged = models.BooleanField(default=False)
    flag_reasons = models.JSONField(default=list, blank=True)
    flagged_at = models.DateTimeField(null=True, blank=True)
    # The latest turn's signals, for the engagement panel's drop-off ("ends right after a
    # fallback, an error or a thumbs-down") without joining the turns: over the turns at the
    # conversation's latest turn timestamp (any of them, when several share it).
    last_turn_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_turn_fallback = models.BooleanField(default=False, editable=False)
    last_turn_error = models.BooleanField(default=False, editable=False)
    last_turn_thumbs_down = models.BooleanField(default=False, editable=False)
    # Set when an LLM call arrived before its turn: only then does ingest look for calls to link.
    has_early_calls = models.BooleanField(default=False, editable=False)

    review_status = models.CharField(max_length=20, choices=ReviewStatus.choices, default=ReviewStatus.NEW)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="assigned_conversations"
    )
    review_note = models.TextField(blank=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-last_activity_at"]
        constraints = [
            models.UniqueConstraint(fields=["chatbot", "external_id"], name="conversation_external_id_per_chatbot"),
        ]
        indexes = [
            # is_flagged last: the dashboard's conversation counts are answered from the index alone.
            models.Index(fields=["chatbot", "-last_activity_at", "is_flagged"], name="conv_chatbot_activity_flagged"),
            models.Index(fields=["-last_activity_at", "is_flagged"], name="conv_activity_flagged"),
            # Also answers "was this end user seen before the window?" from the index alone.
            models.Index(fields=["chatbot", "end_user_hash", "started_at"], name="conv_chatbot_end_user_start"),
            # The review queue: flagged conversations, newest or riskiest first.
            models.Index(
                fields=["review_status", "-last_activity_at"], name="conv_review_queue", condition=Q(is_flagged=True)
            ),
            models.Index(
                fields=["-max_risk_score", "-last_activity_at"], name="conv_review_risk", condition=Q(is_flagged=True)
            ),
        ]

    def __str__(self) -> str:
        # The bot's id can be personal data (`whatsapp:+49…`): shown in the admin, never written
        # to audit rows (apps.audit.services names objects by internal id).
        return self.external_id

    @property
    def risk_level(self) -> str:
        return RiskLevel.for_score(self.max_risk_score)


class Turn(models.Model):
    """One user message and the bot's answer."""

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="turns")
    # Denormalised so per-chatbot aggregates over a time window use one index.
    chatbot = models.ForeignKey("chatbots.Chatbot", on_delete=models.CASCADE, related_name="turns")
    external_id = models.CharField(max_length=255, null=True, blank=True, help_text="The bot's turn_id: the idempotency key.")
    # Whose turn this is: a conversation can have several end users (a shared support thread, a
    # group chat); erasure removes exactly the turns of one (apps.privacy.services).
    end_user_hash = models.CharField(
        max_length=64, blank=True, default="", help_text="HMAC-SHA256 of this turn's end-user id (never the raw id)."
    )
    sequence = models.PositiveIntegerField(default=0)
    timestamp = models.DateTimeField(default=timezone.now)
    user_message = models.TextField()
    bot_response = models.TextField(blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    fallback_used = models.BooleanField(default=False)
    has_error = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    intent = models.CharField(max_length=200, blank=True)
    classification = models.CharField(max_length=200, blank=True)
    database_used = models.CharField(max_length=100, blank=True)
    conversation_message = models.TextField(blank=True, help_text="The bot's human-readable summary of its answer.")
    debug_info = models.JSONField(default=dict, blank=True)
    model = models.CharField(max_length=100, blank=True)
    release = models.CharField(max_length=100, blank=True, help_text="The bot or prompt version that answered.")

    # The turn's own tokens and cost, then totals including its LLM calls.
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    tokens_estimated = models.BooleanField(default=False)
    cost_usd = models.DecimalField(max_digits=COST_DIGITS, decimal_places=6, default=ZERO_COST)
    total_tokens = models.PositiveBigIntegerField(default=0)
    total_cost_usd = models.DecimalField(max_digits=TOTAL_COST_DIGITS, decimal_places=6, default=ZERO_COST)

    risk_score = models.PositiveSmallIntegerField(default=0)
    risk_level = models.CharField(max_length=10, choices=RiskLevel.choices, default=RiskLevel.LOW)
    risk_reasons = models.JSONField(default=list, blank=True)
    is_flagged = models.BooleanField(default=False)
    flag_reasons = models.JSONField(default=list, blank=True)

    # One vote per voter, and a bot may name any number of voters: not a smallint.
    thumbs_up = models.PositiveIntegerField(default=0)
    thumbs_down = models.PositiveIntegerField(default=0)
    judge_status = models.CharField(max_length=10, choices=JudgeStatus.choices, default=JudgeStatus.NOT_SAMPLED, blank=True)
    judge_overall = models.FloatField(null=True, blank=True, help_text="Latest completed judge overall (0–10).")
    judge_hallucination = models.BooleanField(null=True, blank=True)
    pii_found = models.JSONField(default=dict, blank=True, help_text="Counts of redacted kinds, never values.")
    metadata = models.JSONField(default=dict, blank=True)
    # What the bot should have answered, written by a reviewer: the fine-tuning export's target.
    corrected_answer = models.TextField(blank=True)
    corrected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    corrected_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["conversation_id", "sequence", "id"]
        constraints = [
            models.UniqueConstraint(fields=["conversation", "external_id"], name="turn_external_id_per_conversation"),
        ]
        indexes = [
            models.Index(fields=["chatbot", "timestamp"], name="turn_chatbot_time"),
            models.Index(fields=["timestamp"], name="turn_time"),
            models.Index(fields=["conversation", "sequence"], name="turn_conversation_seq"),
            models.Index(fields=["judge_status", "created_at"], name="turn_judge_pending", condition=Q(judge_status="pending")),
            models.Index(fields=["chatbot", "timestamp"], name="turn_thumbs_down", condition=Q(thumbs_down__gt=0)),
            # The risk alert sweep (apps.alerts): flagged high/critical turns by storage time.
            models.Index(
                fields=["created_at"], name="turn_risky_created",
                condition=Q(is_flagged=True, risk_level__in=["high", "critical"]),
            ),
            models.Index(fields=["chatbot", "end_user_hash"], name="turn_chatbot_end_user", condition=~Q(end_user_hash="")),
        ]

    def __str__(self) -> str:
        return self.external_id or f"turn {self.pk}"


class LLMCall(models.Model):
    """One model call: the bot's own, or chatmon's (judge, embeddings, cluster labels)."""

    chatbot = models.ForeignKey("chatbots.Chatbot", null=True, blank=True, on_delete=models.CASCADE, related_name="llm_calls")
    conversation = models.ForeignKey(Conversation, null=True, blank=True, on_delete=models.CASCADE, related_name="llm_calls")
    turn = models.ForeignKey(Turn, null=True, blank=True, on_delete=models.CASCADE, related_name="llm_calls")
    external_id = models.CharField(max_length=255, null=True, blank=True, help_text="The bot's call_id.")
    # The bot's turn_id when the call arrived before its turn; linked when the turn arrives.
    turn_external_id = models.CharField(max_length=255, blank=True)
    purpose = models.CharField(max_length=16, choices=CallPurpose.choices, default=CallPurpose.BOT)
    function_name = models.CharField(max_length=200, blank=True)
    provider = models.CharField(max_length=50, blank=True)
    model = models.CharField(max_length=100, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    tokens_estimated = models.BooleanField(default=False)
    cost_usd = models.DecimalField(max_digits=COST_DIGITS, decimal_places=6, default=ZERO_COST)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    input_text = models.TextField(blank=True)
    output_text = models.TextField(blank=True)
    success = models.BooleanField(default=True)
    error = models.TextField(blank=True)
    timestamp = models.DateTimeField(default=timezone.now)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-timestamp"]
        verbose_name = "LLM call"
        constraints = [
            models.UniqueConstraint(fields=["conversation", "external_id"], name="llm_call_external_id_per_conversation"),
        ]
        indexes = [
            models.Index(fields=["chatbot", "timestamp"], name="llmcall_chatbot_time"),
            models.Index(fields=["timestamp"], name="llmcall_time"),
            models.Index(fields=["model", "timestamp"], name="llmcall_model_time"),
            # OTLP log events find their call by trace:span id within the chatbot.
            models.Index(fields=["chatbot", "external_id"], name="llmcall_chatbot_external"),
        ]

    def __str__(self) -> str:
        return f"{self.model or 'call'} {self.function_name or self.purpose}"

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class Step(models.Model):
    """One thing the bot did for a turn: a SQL query, a tool call, a retrieval, an HTTP request.

    Part of the turn aggregate (deleted with it). `fingerprint` groups steps that differ only in
    their literals (apps.conversations.fingerprints): the SQL analysis's "same query".
    """

    chatbot = models.ForeignKey("chatbots.Chatbot", on_delete=models.CASCADE, related_name="steps")
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="steps")
    turn = models.ForeignKey(Turn, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField(default=0)
    kind = models.CharField(max_length=16, choices=StepKind.choices, default=StepKind.OTHER)
    name = models.CharField(max_length=200, blank=True)
    input_text = models.TextField(blank=True)
    output_text = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    success = models.BooleanField(default=True)
    error = models.TextField(blank=True)
    rows = models.PositiveBigIntegerField(null=True, blank=True)
    fingerprint = models.CharField(max_length=40, blank=True)
    shape = models.TextField(blank=True, help_text="The input with its literals replaced (SQL) or the step's name.")
    metadata = models.JSONField(default=dict, blank=True)
    # The sender's id for the step (an OTLP span's f"{trace_id}:{span_id}"): a re-sent export stores nothing.
    external_id = models.CharField(max_length=255, blank=True)
    timestamp = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["turn_id", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["turn", "external_id"], condition=~Q(external_id=""),
                                    name="step_turn_external_id"),
        ]
        indexes = [
            models.Index(fields=["chatbot", "kind", "timestamp"], name="step_chatbot_kind_time"),
            models.Index(fields=["timestamp"], name="step_time"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.name or self.shape[:60]}"


class EndUserSession(models.Model):
    """The open session of one end user on one channel, for turns sent without a conversation id.

    One row per (chatbot, end user, channel), so the row is the lock: concurrent turns of one
    user serialise on it (apps.conversations.services.sessions_assign_lock).
    """

    chatbot = models.ForeignKey("chatbots.Chatbot", on_delete=models.CASCADE, related_name="+")
    end_user_hash = models.CharField(max_length=64)
    channel = models.CharField(max_length=32, blank=True)
    conversation_external_id = models.CharField(max_length=255, blank=True)
    last_activity_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["chatbot", "end_user_hash", "channel"], name="end_user_session_unique"),
        ]

    def __str__(self) -> str:
        return self.conversation_external_id or "(no session yet)"
