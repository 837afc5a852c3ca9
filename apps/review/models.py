from django.db import models

from apps.conversations.models import TOTAL_COST_DIGITS, Conversation, LLMCall, Turn


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


class HourlyLLMCallStats(models.Model):
    """LLM calls of one chatbot (or none: chatmon's own fleet-wide calls), UTC hour, model and
    function name, summed by `hourly_stats_refresh`: `GET /api/v1/stats/llm-calls` adds these
    up instead of grouping the window's calls. Kept and trusted like HourlyTurnStats (same
    refresh, same stale hours; the LLM-call triggers of migration 0010 write the marks)."""

    chatbot = models.ForeignKey("chatbots.Chatbot", null=True, on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField()
    model = models.CharField(max_length=100, blank=True)
    function_name = models.CharField(max_length=200, blank=True)
    calls = models.PositiveIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cost = models.DecimalField(max_digits=TOTAL_COST_DIGITS, decimal_places=6, default=0)
    errors = models.PositiveIntegerField(default=0)
    timed = models.PositiveIntegerField(default=0)
    duration_sum = models.BigIntegerField(default=0)

    class Meta:
        verbose_name = "hourly LLM-call stats"
        verbose_name_plural = "hourly LLM-call stats"
        indexes = [models.Index(fields=["hour"], name="hourly_llm_call_stats_hour")]

    def __str__(self) -> str:
        return f"chatbot {self.chatbot_id} at {self.hour:%Y-%m-%d %H:00} UTC, {self.model} {self.function_name}: {self.calls} calls"


class HourlyLLMCallLatencyBucket(models.Model):
    """How many LLM calls of one HourlyLLMCallStats group fell in one duration bucket
    (`apps.core.latency_histogram`, at LLM_CALL_ACCURACY)."""

    chatbot = models.ForeignKey("chatbots.Chatbot", null=True, on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField()
    model = models.CharField(max_length=100, blank=True)
    function_name = models.CharField(max_length=200, blank=True)
    bucket = models.SmallIntegerField()
    calls = models.PositiveIntegerField()

    class Meta:
        indexes = [models.Index(fields=["hour"], name="hourly_llm_latency_hour")]

    def __str__(self) -> str:
        return f"chatbot {self.chatbot_id} at {self.hour:%Y-%m-%d %H:00} UTC, {self.model} {self.function_name}: bucket {self.bucket} × {self.calls}"


# StaleHour.chatbot_id of an LLM call that belongs to no chatbot (ids start at 1).
NO_CHATBOT = 0


class StaleHour(models.Model):
    """An hour whose turns or LLM calls changed after it was summed: written by database triggers
    on the turn and LLM-call tables (every insert, update and delete, whatever code path made it),
    read and cleared by `hourly_stats_refresh`. Append-only, so writers never wait on each other;
    duplicates are fine. An LLM call of no chatbot marks chatbot_id 0 (NO_CHATBOT).
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


# The refresh's scratch rows (apps.review.rollup `_resum`): the columns it groups by and sums,
# copied once per batch of spans into a temporary table of this shape, so the turns' five
# groupings (and the calls' two) read the batch's rows once instead of the turn table each time.
SPAN_TURN_COLUMNS = ("model", "intent", "release", "total_tokens", "total_cost_usd", "has_error", "fallback_used",
                     "is_flagged", "thumbs_up", "thumbs_down", "judge_overall", "judge_hallucination", "latency_ms",
                     "risk_level")
SPAN_CALL_COLUMNS = ("model", "function_name", "input_tokens", "output_tokens", "cost_usd", "success", "duration_ms")


def _span_model(name: str, source: type[models.Model], columns: tuple[str, ...], **extra: models.Field) -> type:
    """An unmanaged model over the temporary table `review_<name>`: id, chatbot_id, the UTC hour,
    and copies of `source`'s `columns` (same types, so the rollup's aggregates apply unchanged)."""
    meta = type("Meta", (), {"managed": False, "db_table": f"review_{name.lower()}"})
    fields = {column: source._meta.get_field(column).clone() for column in columns}
    return type(name, (models.Model,), {
        "__module__": __name__, "__doc__": f"Scratch copy of the {source.__name__} rows one rollup refresh batch re-sums.",
        "Meta": meta, "id": models.BigIntegerField(primary_key=True), "chatbot_id": models.BigIntegerField(null=True),
        "hour": models.DateTimeField(), **fields, **extra,
    })


SpanTurn = _span_model("SpanTurn", Turn, SPAN_TURN_COLUMNS, channel=models.CharField(max_length=32, blank=True))
SpanLLMCall = _span_model("SpanLLMCall", LLMCall, SPAN_CALL_COLUMNS)
