"""The official OpenAI instrumentation around the real `openai` client, exported to chatmon.

The bot here is what a user writes: opentelemetry-sdk, the OTLP/HTTP exporters and
OpenAIInstrumentor, no chatmon code. The model is tests.support.openai_server.OpenAIServer.
The installed opentelemetry-instrumentation-openai-v2 follows the latest GenAI conventions:
OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=span_only puts the messages on the span
(gen_ai.input.messages / gen_ai.output.messages), event_only sends them as a
gen_ai.client.inference.operation.details log event, unset sends no content.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import openai
import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from apps.conversations.models import Conversation, LLMCall, Turn
from apps.otel.models import PendingSpanContent
from tests.otel.conftest import RESOURCE
from tests.support.openai_server import OpenAIServer

pytestmark = pytest.mark.django_db(transaction=True)


@contextmanager
def instrumented_bot(endpoint: str, api_key: str, monkeypatch, *, content: str | None,
                     flush_logs_first: bool = True) -> Iterator[tuple[openai.OpenAI, object]]:
    if content is None:
        monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
    else:
        monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", content)
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
    headers = {"Authorization": f"Bearer {api_key}"}
    tracer_provider = TracerProvider(resource=RESOURCE)
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(
        endpoint=f"{endpoint}/v1/traces", headers=headers, compression=Compression.Gzip, timeout=20)))
    logger_provider = LoggerProvider(resource=RESOURCE)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(
        endpoint=f"{endpoint}/v1/logs", headers=headers, timeout=20)))
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, logger_provider=logger_provider)
    try:
        with OpenAIServer(chat_handler=lambda request: "Your order shipped yesterday.") as server:
            client = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
            yield client, tracer_provider.get_tracer("shop-bot")
        providers = [logger_provider, tracer_provider] if flush_logs_first else [tracer_provider, logger_provider]
        for provider in providers:
            assert provider.force_flush(30_000)
    finally:
        instrumentor.uninstrument()
        tracer_provider.shutdown()
        logger_provider.shutdown()


def ask(client: openai.OpenAI, tracer, question: str, session: str) -> None:
    # The bot's own request span carries the session; the instrumentation's chat span inherits it.
    with tracer.start_as_current_span("handle_message", attributes={"session.id": session}):
        client.chat.completions.create(model="gpt-4o-mini", messages=[
            {"role": "system", "content": "You are the shop's assistant."},
            {"role": "user", "content": question},
        ])


def test_content_on_spans(live_server, chatbot, api_key, monkeypatch):
    with instrumented_bot(live_server.url, api_key, monkeypatch, content="span_only") as (client, tracer):
        ask(client, tracer, "Where is my order?", "session-1")
        ask(client, tracer, "When will it arrive?", "session-1")
        client.embeddings.create(model="text-embedding-3-small", input="order status")

    conversation = Conversation.objects.get(chatbot=chatbot, external_id="session-1")
    turns = list(Turn.objects.filter(conversation=conversation).order_by("sequence"))
    assert [t.user_message for t in turns] == ["Where is my order?", "When will it arrive?"]
    assert all(t.bot_response == "Your order shipped yesterday." for t in turns)
    chat_calls = LLMCall.objects.filter(conversation=conversation, function_name="chat")
    assert chat_calls.count() == 2
    for call in chat_calls:
        # OpenAIServer counts words: system 5 + user 4/4 words; the answer is 4 words.
        assert (call.input_tokens, call.output_tokens) == (9, 4)
        assert (call.provider, call.model) == ("openai", "gpt-4o-mini")
        assert call.turn is not None and "You are the shop's assistant." in call.input_text
    assert conversation.total_tokens == 2 * 13
    embedding = LLMCall.objects.get(chatbot=chatbot, function_name="embeddings")
    assert embedding.model == "text-embedding-3-small" and embedding.input_tokens == 2


@pytest.mark.parametrize("flush_logs_first", [True, False])
def test_content_as_log_events(live_server, chatbot, api_key, monkeypatch, flush_logs_first):
    with instrumented_bot(live_server.url, api_key, monkeypatch, content="event_only",
                          flush_logs_first=flush_logs_first) as (client, tracer):
        ask(client, tracer, "Can I change the delivery address?", "session-2")

    turn = Turn.objects.get(conversation__external_id="session-2")
    assert turn.user_message == "Can I change the delivery address?"
    assert turn.bot_response == "Your order shipped yesterday."
    call = LLMCall.objects.get(conversation__external_id="session-2")
    assert call.turn == turn and "Can I change the delivery address?" in call.input_text
    assert call.output_text == "Your order shipped yesterday."
    assert turn.total_tokens == call.input_tokens + call.output_tokens == turn.conversation.total_tokens
    assert not PendingSpanContent.objects.exists()


def test_without_content_the_calls_still_arrive(live_server, chatbot, api_key, monkeypatch):
    with instrumented_bot(live_server.url, api_key, monkeypatch, content=None) as (client, tracer):
        ask(client, tracer, "Where is my order?", "session-3")
    call = LLMCall.objects.get(conversation__external_id="session-3")
    assert (call.input_tokens, call.output_tokens, call.input_text) == (9, 4, "")
    assert not Turn.objects.exists()


def test_failed_openai_call_is_recorded(live_server, chatbot, api_key, monkeypatch):
    from tests.support.openai_server import ScriptedResponse

    with instrumented_bot(live_server.url, api_key, monkeypatch, content="span_only") as (client, tracer):
        server_url = client.base_url
        with OpenAIServer() as failing:
            failing.script_chat(ScriptedResponse(status=500))
            broken = openai.OpenAI(base_url=failing.base_url, api_key="sk-test", max_retries=0)
            with pytest.raises(openai.InternalServerError):
                ask(broken, tracer, "Hello?", "session-4")
        assert server_url
    call = LLMCall.objects.get(conversation__external_id="session-4")
    assert not call.success and "InternalServerError" in call.error
