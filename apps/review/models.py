from django.db import models

from apps.conversations.models import TOTAL_COST_DIGITS, Conversation


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


class HourlyFigures(models.Model):
    """The catalogue's additive figures (apps.conversations.metrics_catalogue.figure_aggregates)
    summed over a group of turns: the columns of both hourly rollups."""

    turns = models.PositiveIntegerField(default=0)
    tokens = models.BigIntegerField(default=0)
    cost = models.DecimalField(max_digits=TOTAL_COST_DIGITS, decimal_places=6, default=0)
    errors = models.PositiveIntegerField(default=0)
    fallbacks = models.PositiveIntegerField(default=0)
    flagged = models.PositiveIntegerField(default=0)
    votes_up = models.PositiveIntegerField(default=0)
    votes_down = models.PositiveIntegerField(default=0)
    rated = models.PositiveIntegerField(default=0)
    rated_down = models.PositiveIntegerField(default=0)
    judged = models.PositiveIntegerField(default=0)
    judge_sum = models.FloatField(default=0)
    hallucinations = models.PositiveIntegerField(default=0)
    hallucination_checked = models.PositiveIntegerField(default=0)
    timed = models.PositiveIntegerField(default=0)
    latency_sum = models.BigIntegerField(default=0)
    risk_low = models.PositiveIntegerField(default=0)
    risk_medium = models.PositiveIntegerField(default=0)
    risk_high = models.PositiveIntegerField(default=0)
    risk_critical = models.PositiveIntegerField(default=0)

    class Meta:
        abstract = True


class HourlyTurnStats(HourlyFigures):
    """The dashboard's per-turn figures for one chatbot and one UTC hour, summed from its turns.

    A read model kept by `hourly_stats_refresh`: the 7 and 30 day views add up at most 720 rows
    per chatbot instead of grouping up to a million turns. Which hours it may be trusted for is
    `HourlyStatsState.materialized_until` minus the hours named in `StaleHour`.
    """

    chatbot = models.ForeignKey("chatbots.Chatbot", on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField()

    class Meta:
        verbose_name_plural = "hourly turn stats"
        constraints = [models.UniqueConstraint(fields=["chatbot", "hour"], name="hourly_turn_stats_unique")]
        indexes = [models.Index(fields=["hour"], name="hourly_turn_stats_hour")]

    def __str__(self) -> str:
        return f"chatbot {self.chatbot_id} at {self.hour:%Y-%m-%d %H:00} UTC: {self.turns} turns"


class HourlyDimensionStats(HourlyFigures):
    """The same figures for one chatbot, UTC hour and value of a breakdown dimension (model,
    intent, channel, release): the dashboard's breakdowns add these up instead of grouping the
    window's turns. Kept and trusted exactly like HourlyTurnStats (same refresh, same stale hours)."""

    chatbot = models.ForeignKey("chatbots.Chatbot", on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField()
    dimension = models.CharField(max_length=16)
    value = models.CharField(max_length=200, blank=True)

    class Meta:
        verbose_name_plural = "hourly dimension stats"
        constraints = [
            models.UniqueConstraint(fields=["chatbot", "hour", "dimension", "value"], name="hourly_dimension_stats_unique")
        ]
        indexes = [models.Index(fields=["dimension", "hour"], name="hourly_dimension_stats_hour")]

    def __str__(self) -> str:
        return f"chatbot {self.chatbot_id} at {self.hour:%Y-%m-%d %H:00} UTC, {self.dimension}={self.value!r}: {self.turns} turns"


class HourlyLatencyBucket(models.Model):
    """How many turns of one chatbot and UTC hour fell in one latency bucket (`apps.core.latency_histogram`)."""

    chatbot = models.ForeignKey("chatbots.Chatbot", on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField()
    bucket = models.SmallIntegerField()
    turns = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["chatbot", "hour", "bucket"], name="hourly_latency_bucket_unique")
        ]
        indexes = [models.Index(fields=["hour"], name="hourly_latency_bucket_hour")]

    def __str__(self) -> str:
        return f"chatbot {self.chatbot_id} at {self.hour:%Y-%m-%d %H:00} UTC: bucket {self.bucket} × {self.turns}"


class StaleHour(models.Model):
    """An hour whose turns changed after it was summed: written by database triggers on the turn
    table (every insert, update and delete, whatever code path made it), read and cleared by
    `hourly_stats_refresh`. Append-only, so writers never wait on each other; duplicates are fine.
    """

    id = models.BigAutoField(primary_key=True)
    chatbot_id = models.BigIntegerField()
    hour = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["hour"], name="stale_hour_hour")]

    def __str__(self) -> str:
        return f"chatbot {self.chatbot_id} at {self.hour:%Y-%m-%d %H:00} UTC changed"


class HourlyStatsState(models.Model):
    """One row: every full UTC hour before `materialized_until` has been summed into HourlyTurnStats."""

    materialized_until = models.DateTimeField(null=True, blank=True)
    refreshed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "hourly stats state"

    def __str__(self) -> str:
        return f"summed up to {self.materialized_until}"
