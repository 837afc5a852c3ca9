"""POST /v1/logs: message content sent as log events (gen_ai.user.message, gen_ai.choice …)."""

from datetime import timedelta

import pytest
from django.utils import timezone
from opentelemetry._logs import LogRecord
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    InMemoryLogRecordExporter,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from apps.conversations.models import LLMCall, Turn
from apps.otel.models import PendingSpanContent
from apps.otel.tasks import pending_content_sweep
from tests.otel.conftest import RESOURCE, protobuf_body

CHAT_ATTRIBUTES = {
    "gen_ai.operation.name": "chat", "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.usage.input_tokens": 14, "gen_ai.usage.output_tokens": 6, "gen_ai.conversation.id": "conv-logs",
}


def emit_chat(tracer, logger, *, question: str = "Is the blue jacket in stock?",
              answer: str = "Yes, in sizes M and L.") -> None:
    """What the older instrumentation did: a content-less span, content as log events inside it."""
    with tracer.start_as_current_span("chat gpt-4o-mini", attributes=CHAT_ATTRIBUTES):
        logger.emit(LogRecord(event_name="gen_ai.system.message", body={"content": "You sell jackets."},
                              attributes={"gen_ai.system": "openai"}))
        logger.emit(LogRecord(event_name="gen_ai.user.message", body={"content": question},
                              attributes={"gen_ai.system": "openai"}))
        logger.emit(LogRecord(event_name="gen_ai.choice", attributes={"gen_ai.system": "openai"}, body={
            "index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": answer}}))


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("logs_first", [True, False])
def test_sdk_log_exporter_fills_in_turn_text(live_server, chatbot, api_key, logs_first):
    headers = {"Authorization": f"Bearer {api_key}"}

    tracer_provider = TracerProvider(resource=RESOURCE)
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(
        endpoint=f"{live_server.url}/v1/traces", headers=headers)))
    logger_provider = LoggerProvider(resource=RESOURCE)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(
        endpoint=f"{live_server.url}/v1/logs", headers=headers)))
    try:
        emit_chat(tracer_provider.get_tracer("bot"), logger_provider.get_logger("bot"))
        first, second = (logger_provider, tracer_provider) if logs_first else (tracer_provider, logger_provider)
        assert first.force_flush(30_000)
        if logs_first:
            assert PendingSpanContent.objects.count() == 1  # waiting for its span
        else:
            assert LLMCall.objects.get().input_text == "" and not Turn.objects.exists()
        assert second.force_flush(30_000)
    finally:
        tracer_provider.shutdown()
        logger_provider.shutdown()

    turn = Turn.objects.get(conversation__external_id="conv-logs")
    assert (turn.user_message, turn.bot_response) == ("Is the blue jacket in stock?", "Yes, in sizes M and L.")
    call = LLMCall.objects.get()
    assert call.turn == turn and call.output_text == "Yes, in sizes M and L."
    assert "You sell jackets." in call.input_text
    assert turn.total_tokens == 20 == turn.conversation.total_tokens
    assert not PendingSpanContent.objects.exists()


@pytest.fixture
def recorded(db):
    """Real SDK spans and log records kept in memory, to post (and re-post) by hand."""
    tracer_provider, span_memory = TracerProvider(resource=RESOURCE), InMemorySpanExporter()
    tracer_provider.add_span_processor(SimpleSpanProcessor(span_memory))
    logger_provider, log_memory = LoggerProvider(resource=RESOURCE), InMemoryLogRecordExporter()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_memory))
    emit_chat(tracer_provider.get_tracer("bot"), logger_provider.get_logger("bot"))
    logger_provider.get_logger("bot").emit(LogRecord(body="user logged in"))  # not GenAI
    logger_provider.get_logger("bot").emit(LogRecord(event_name="gen_ai.user.message", body={"content": "orphan"}))
    yield protobuf_body(span_memory.get_finished_spans()), encode_logs(log_memory.get_finished_logs()).SerializeToString()
    tracer_provider.shutdown()
    logger_provider.shutdown()


def test_resent_logs_store_nothing_twice_and_uncorrelated_events_are_rejected(post_otlp, chatbot, recorded):
    spans, logs = recorded
    for _ in range(2):
        response = post_otlp("/v1/logs", logs)
        assert response.status_code == 200
        partial = ExportLogsServiceResponse.FromString(response.content).partial_success
        assert partial.rejected_log_records == 1 and "not correlated" in partial.error_message
    assert len(PendingSpanContent.objects.get().events) == 3  # no duplicates from the re-send
    for _ in range(2):
        assert post_otlp("/v1/traces", spans).status_code == 200
    assert post_otlp("/v1/logs", logs).status_code == 200  # after the span: applied at once
    assert Turn.objects.count() == 1 and LLMCall.objects.count() == 1
    assert Turn.objects.get().user_message == "Is the blue jacket in stock?"
    assert not PendingSpanContent.objects.exists()


def test_sweeper_applies_content_that_raced_its_span_and_purges_stale(post_otlp, chatbot, recorded, settings):
    spans, logs = recorded
    assert post_otlp("/v1/logs", logs).status_code == 200
    row = PendingSpanContent.objects.get()
    # The race: the span was stored while its content was being written, and took no content.
    Pending = PendingSpanContent  # noqa: N806
    Pending.objects.filter(pk=row.pk).update(trace_id="0" * 32)
    assert post_otlp("/v1/traces", spans).status_code == 200
    assert not Turn.objects.exists()
    Pending.objects.filter(pk=row.pk).update(trace_id=row.trace_id, received_at=timezone.now() - timedelta(minutes=5))
    assert pending_content_sweep() == {"applied": 1, "purged": 0, "steps_purged": 0, "langfuse_observations_purged": 0,
                                       "steps_claimed": 0}
    assert Turn.objects.get().bot_response == "Yes, in sizes M and L."

    stale = PendingSpanContent.objects.create(chatbot=chatbot, trace_id="a" * 32, span_id="b" * 16,
                                              events=[], first_event_at=timezone.now())
    PendingSpanContent.objects.filter(pk=stale.pk).update(
        received_at=timezone.now() - timedelta(hours=settings.OTLP_PENDING_CONTENT_HOURS + 1))
    assert pending_content_sweep()["purged"] == 1
    assert not PendingSpanContent.objects.exists()


def test_logs_need_a_key(post_otlp, recorded):
    assert post_otlp("/v1/logs", recorded[1], key="").status_code == 401


@pytest.mark.parametrize("logs_first", [True, False])
def test_content_from_log_events_is_redacted_on_the_call_as_on_the_turn(post_otlp, chatbot, logs_first):
    tracer_provider, span_memory = TracerProvider(resource=RESOURCE), InMemorySpanExporter()
    tracer_provider.add_span_processor(SimpleSpanProcessor(span_memory))
    logger_provider, log_memory = LoggerProvider(resource=RESOURCE), InMemoryLogRecordExporter()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_memory))
    emit_chat(tracer_provider.get_tracer("bot"), logger_provider.get_logger("bot"),
              question="Mail the invoice to jane.doe@example.com", answer="Sent to jane.doe@example.com.")
    spans = protobuf_body(span_memory.get_finished_spans())
    logs = encode_logs(log_memory.get_finished_logs()).SerializeToString()
    for path, body in ([("/v1/logs", logs), ("/v1/traces", spans)] if logs_first else
                       [("/v1/traces", spans), ("/v1/logs", logs)]):
        assert post_otlp(path, body).status_code == 200
    call, turn = LLMCall.objects.get(), Turn.objects.get()
    assert "jane.doe" not in call.input_text + call.output_text
    assert "[EMAIL]" in call.input_text and "[EMAIL]" in call.output_text
    assert turn.user_message == "Mail the invoice to [EMAIL]"
