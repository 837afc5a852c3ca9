"""Phoenix's OpenInference and Traceloop's OpenLLMetry instrumentors around the real `openai`
client, exported with the OTLP/HTTP exporter to chatmon: what a bot switching from Phoenix or
Traceloop changes is the endpoint and the Authorization header, nothing in its code.

The model is tests.support.openai_server.OpenAIServer (it counts words as tokens). Both
instrumentors live beside opentelemetry-instrumentation-openai-v2 in one process: they patch
the same openai methods, so each test instruments one and uninstruments it afterwards.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import openai
import pytest
from openinference.instrumentation import using_attributes
from openinference.instrumentation.openai import OpenAIInstrumentor as OpenInferenceInstrumentor
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.openai import OpenAIInstrumentor as OpenLLMetryInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from apps.conversations.models import Conversation, LLMCall, Turn
from apps.feedback.models import Feedback
from apps.privacy.hashing import end_user_hash
from tests.otel.conftest import RESOURCE
from tests.support.openai_server import OpenAIServer

pytestmark = pytest.mark.django_db(transaction=True)

SYSTEM = "You are the shop's assistant."


@contextmanager
def instrumented(instrumentor, endpoint: str, api_key: str) -> Iterator[tuple[openai.OpenAI, object]]:
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(
        endpoint=f"{endpoint}/v1/traces", headers={"Authorization": f"Bearer {api_key}"},
        compression=Compression.Gzip, timeout=20)))
    instrumentor.instrument(tracer_provider=provider)
    try:
        with OpenAIServer(chat_handler=lambda request: "Your order shipped yesterday.") as server:
            yield openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0), provider.get_tracer("bot")
        assert provider.force_flush(30_000)
    finally:
        instrumentor.uninstrument()
        provider.shutdown()


def _ask(client: openai.OpenAI, question: str) -> None:
    client.chat.completions.create(model="gpt-4o-mini", messages=[
        {"role": "system", "content": SYSTEM}, {"role": "user", "content": question}])


def test_openinference_openai(live_server, chatbot, api_key):
    with instrumented(OpenInferenceInstrumentor(), live_server.url, api_key) as (client, _tracer):
        # OpenInference's own context managers put session.id / user.id on the spans.
        with using_attributes(session_id="phoenix-session", user_id="customer-42"):
            _ask(client, "Where is my order?")
            _ask(client, "When will it arrive?")
        client.embeddings.create(model="text-embedding-3-small", input="order status")

    conversation = Conversation.objects.get(chatbot=chatbot, external_id="phoenix-session")
    assert conversation.end_user_hash == end_user_hash(chatbot_id=chatbot.pk, user_id="customer-42")
    turns = list(Turn.objects.filter(conversation=conversation).order_by("sequence"))
    assert [t.user_message for t in turns] == ["Where is my order?", "When will it arrive?"]
    assert {t.bot_response for t in turns} == {"Your order shipped yesterday."}
    for turn in turns:
        [call] = turn.llm_calls.all()
        # The test server counts words: system 5 + question 4; the answer is 4 words.
        assert (call.model, call.provider, call.function_name) == ("gpt-4o-mini", "openai", "chat")
        assert (call.input_tokens, call.output_tokens) == (9, 4)
        assert SYSTEM in call.input_text
        assert turn.total_tokens == 13
    embedding = LLMCall.objects.get(chatbot=chatbot, function_name="embeddings")
    assert embedding.model == "text-embedding-3-small" and embedding.input_tokens == 2


def test_openllmetry_openai_inside_a_traceloop_workflow(live_server, chatbot, api_key):
    with instrumented(OpenLLMetryInstrumentor(), live_server.url, api_key) as (client, tracer):
        # What traceloop-sdk's @workflow and Traceloop.set_association_properties write on the
        # bot's own span; the instrumentation's chat span below it uses the GenAI attributes.
        workflow = {"traceloop.span.kind": "workflow", "traceloop.entity.name": "answer",
                    "traceloop.entity.input": '{"args": ["Where is my order?"], "kwargs": {}}',
                    "traceloop.association.properties.session_id": "traceloop-session",
                    "traceloop.association.properties.user_id": "customer-9"}
        with tracer.start_as_current_span("answer.workflow", attributes=workflow) as span:
            _ask(client, "Where is my order?")
            span.set_attribute("traceloop.entity.output", '"Your order shipped yesterday."')
            context = span.get_span_context()
    # The bot's thumbs for that answer, through chatmon's feedback API: the turn id of an OTLP
    # turn is its span's f"{trace_id}:{span_id}" in hex, which the bot knows.
    feedback = httpx.post(f"{live_server.url}/api/v1/feedback", headers={"Authorization": f"Bearer {api_key}"},
                          json={"conversation_id": "traceloop-session", "rating": "down", "comment": "late",
                                "turn_id": f"{context.trace_id:032x}:{context.span_id:016x}"})
    assert feedback.status_code == 201, feedback.text

    conversation = Conversation.objects.get(chatbot=chatbot, external_id="traceloop-session")
    assert conversation.end_user_hash == end_user_hash(chatbot_id=chatbot.pk, user_id="customer-9")
    turn = Turn.objects.get(conversation=conversation)
    assert (turn.user_message, turn.bot_response) == ("Where is my order?", "Your order shipped yesterday.")
    assert turn.model == "gpt-4o-mini"  # the workflow has no model: its chat call's
    [call] = turn.llm_calls.all()
    assert (call.model, call.function_name, call.input_tokens, call.output_tokens) == ("gpt-4o-mini", "chat", 9, 4)
    # The workflow span is the turn, not an LLM call of its own.
    assert LLMCall.objects.filter(chatbot=chatbot).count() == 1
    turn.refresh_from_db()
    assert (turn.thumbs_down, turn.is_flagged) == (1, True)
    assert Feedback.objects.get(turn=turn).comment == "late"


def test_openinference_decorators_make_tool_and_retriever_steps(live_server, chatbot, api_key):
    """Phoenix's own tracer (OITracer: @tracer.chain, @tracer.tool, @tracer.retriever) around the
    bot's functions, the OpenInference OpenAI instrumentor under them."""
    from openinference.instrumentation import OITracer, TraceConfig

    with instrumented(OpenInferenceInstrumentor(), live_server.url, api_key) as (client, plain_tracer):
        tracer = OITracer(plain_tracer, config=TraceConfig())

        @tracer.tool
        def order_status(order: int) -> str:
            """The shipping status of an order."""
            return "shipped"

        @tracer.retriever
        def shipping_policies(query: str) -> list[str]:
            return ["Parcels arrive in 2-4 days."]

        @tracer.chain
        def handle_message(question: str) -> str:
            order_status(50231)
            shipping_policies("delivery time")
            reply = client.chat.completions.create(model="gpt-4o-mini", messages=[
                {"role": "system", "content": SYSTEM}, {"role": "user", "content": question}])
            return reply.choices[0].message.content

        with using_attributes(session_id="phoenix-steps", user_id="customer-43"):
            assert handle_message("Where is order 50231?") == "Your order shipped yesterday."

    turn = Turn.objects.get(conversation__external_id="phoenix-steps")
    assert (turn.user_message, turn.bot_response) == ("Where is order 50231?", "Your order shipped yesterday.")
    assert turn.end_user_hash == end_user_hash(chatbot_id=chatbot.pk, user_id="customer-43")
    [call] = turn.llm_calls.all()
    assert (call.model, call.input_tokens, call.output_tokens) == ("gpt-4o-mini", 9, 4)  # system 5 words + question 4
    steps = {s.name: s for s in turn.steps.all()}
    assert set(steps) == {"order_status", "shipping_policies"}
    assert (steps["order_status"].kind, steps["order_status"].output_text) == ("tool", "shipped")
    assert "50231" in steps["order_status"].input_text
    assert steps["shipping_policies"].kind == "retrieval"
    assert "delivery time" in steps["shipping_policies"].input_text
