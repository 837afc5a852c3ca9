from django.db import models


class PendingSpanContent(models.Model):
    """Message content that arrived as OTLP log events before (or without) its span.

    The older GenAI instrumentation mode sends prompts and completions as log events correlated
    to the span by trace and span id, through a separate exporter that often flushes first. The
    events wait here until the span's LLM call is stored, then fill in its text (and its turn);
    rows not claimed within OTLP_PENDING_CONTENT_HOURS are purged.
    """

    chatbot = models.ForeignKey("chatbots.Chatbot", on_delete=models.CASCADE, related_name="+")
    trace_id = models.CharField(max_length=32)
    span_id = models.CharField(max_length=16)
    # [[event name, payload, time in ns, sequence], …] in emission order.
    events = models.JSONField(default=list)
    first_event_at = models.DateTimeField()
    received_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["chatbot", "trace_id", "span_id"], name="otel_pending_content_span"),
        ]
        indexes = [models.Index(fields=["received_at"], name="otel_pending_received")]
        verbose_name = "pending span content"
        verbose_name_plural = "pending span content"

    def __str__(self) -> str:
        return f"{self.trace_id}:{self.span_id}"

    @property
    def span_key(self) -> str:
        return f"{self.trace_id}:{self.span_id}"


class PendingStep(models.Model):
    """A step span (tool, SQL, retrieval) exported before the turn of its trace.

    Exporters send a trace's spans as they end, children first, so a tool span can arrive in an
    export before the one holding its turn. The step waits here, already redacted, until a turn
    of its trace is stored (apps.otel.services); rows not claimed within
    OTLP_PENDING_CONTENT_HOURS are purged with the pending content.
    """

    chatbot = models.ForeignKey("chatbots.Chatbot", on_delete=models.CASCADE, related_name="+")
    # OTLP ids in hex (32 and 16 characters), or Langfuse 2.x ids (UUIDs, or the bot's own).
    trace_id = models.CharField(max_length=64)
    span_id = models.CharField(max_length=64)
    # The turn span it belongs to when the export showed it ("" → the trace's latest turn).
    turn_key = models.CharField(max_length=255, blank=True)
    step = models.JSONField(default=dict)  # apps.ingest.validation.StepInput's fields, redacted
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["chatbot", "trace_id", "span_id"], name="otel_pending_step_span"),
        ]
        indexes = [models.Index(fields=["received_at"], name="otel_pending_step_received")]

    def __str__(self) -> str:
        return f"{self.trace_id}:{self.span_id}"


class LangfuseObservation(models.Model):
    """A Langfuse 2.x trace or observation as its ingestion events built it up (/api/public/ingestion).

    The v2 SDKs send a trace's fields in several events, often in several batches: trace-create
    with the input, observations as they end, trace-create again with the output. Each event's
    body is merged here (texts redacted), and the trace is mapped again from all of its rows
    after every batch (apps.otel.langfuse_ingestion); ids make that mapping idempotent. Rows
    older than OTLP_PENDING_CONTENT_HOURS are purged with the pending content.
    """

    chatbot = models.ForeignKey("chatbots.Chatbot", on_delete=models.CASCADE, related_name="+")
    trace_id = models.CharField(max_length=64)
    observation_id = models.CharField(max_length=64, blank=True)  # "" for the trace itself
    kind = models.CharField(max_length=16)  # trace, span, generation, event
    body = models.JSONField(default=dict)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["chatbot", "trace_id", "observation_id"],
                                    name="otel_langfuse_observation_id"),
        ]
        indexes = [models.Index(fields=["updated_at"], name="otel_langfuse_obs_updated")]

    def __str__(self) -> str:
        return f"{self.kind} {self.trace_id}:{self.observation_id}"
