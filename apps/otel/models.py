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
