"""POST /v1/traces: the real OTLP/HTTP exporter and OTLP bodies built from real SDK spans."""

import gzip
import json

import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.trace import SpanKind

from apps.conversations.models import Conversation, LLMCall, Turn
from tests.otel.conftest import (
    chat_span,
    exporting_tracer,
    json_body,
    messages,
    protobuf_body,
    recording_tracer,
    trace_response,
)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip, Compression.Deflate])
def test_sdk_exporter_stores_conversation_turn_and_call(live_server, chatbot, api_key, compression,
                                                       gpt_4o_mini_price):
    with exporting_tracer(live_server.url, api_key, compression=compression) as tracer:
        chat_span(tracer, user="Where is my order #50231?", answer="It shipped yesterday.",
                  input_tokens=21, output_tokens=7, extra={"user.id": "customer-42"})

    conversation = Conversation.objects.get(chatbot=chatbot, external_id="conv-otel-1")
    turn = Turn.objects.get(conversation=conversation)
    call = LLMCall.objects.get(conversation=conversation)
    assert turn.user_message == "Where is my order #50231?"
    assert turn.bot_response == "It shipped yesterday."
    assert turn.model == "gpt-4o-mini"
    assert turn.external_id == call.external_id  # trace_id:span_id
    trace_id, span_id = call.external_id.split(":")
    assert len(trace_id) == 32 and len(span_id) == 16
    assert call.turn_id == turn.pk
    assert (call.input_tokens, call.output_tokens, call.tokens_estimated) == (21, 7, False)
    assert call.provider == "openai" and call.model == "gpt-4o-mini" and call.function_name == "chat"
    assert call.success and call.duration_ms is not None
    assert "Where is my order #50231?" in call.input_text and call.output_text == "It shipped yesterday."
    assert call.metadata["otel"]["service_name"] == "shop-bot"
    # Totals come from the ingest services: the turn is measured by its call.
    assert turn.total_tokens == 28 and conversation.total_tokens == 28
    assert call.cost_usd > 0 and turn.total_cost_usd == call.cost_usd == conversation.cost_usd
    assert conversation.turn_count == 1
    assert conversation.end_user_hash and "customer-42" not in conversation.end_user_hash


@pytest.mark.django_db(transaction=True)
def test_sdk_exporter_many_spans_in_one_export(live_server, chatbot, api_key):
    with exporting_tracer(live_server.url, api_key) as tracer:
        for i in range(40):
            chat_span(tracer, user=f"Question {i}?", answer=f"Answer {i}.", conversation=f"conv-{i % 4}")
    assert Conversation.objects.filter(chatbot=chatbot).count() == 4
    assert Turn.objects.filter(chatbot=chatbot).count() == 40
    assert LLMCall.objects.filter(chatbot=chatbot).count() == 40
    assert sorted(Conversation.objects.values_list("turn_count", flat=True)) == [10, 10, 10, 10]


def test_resent_export_stores_nothing_twice(post_otlp, chatbot):
    with recording_tracer() as (tracer, memory):
        chat_span(tracer)
        chat_span(tracer, user="And the invoice?", answer="Attached to your email.")
    body = protobuf_body(memory.get_finished_spans())
    for _ in range(3):
        response = post_otlp("/v1/traces", body)
        assert response.status_code == 200
        assert not trace_response(response.content).HasField("partial_success")
    conversation = Conversation.objects.get(chatbot=chatbot)
    assert Turn.objects.count() == 2 and LLMCall.objects.count() == 2
    assert conversation.turn_count == 2 and conversation.total_tokens == 2 * 28


def test_json_body_with_hex_ids(post_otlp, chatbot):
    with recording_tracer() as (tracer, memory):
        chat_span(tracer, user="Do you ship to Norway?", answer="Yes, in 3 to 5 days.")
    spans = memory.get_finished_spans()
    body = json_body(spans)
    assert f'"{spans[0].context.trace_id:032x}"' in body.decode()  # really hex, not base64
    response = post_otlp("/v1/traces", body, content_type="application/json")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert json.loads(response.content) == {}
    call = LLMCall.objects.get()
    assert call.external_id == f"{spans[0].context.trace_id:032x}:{spans[0].context.span_id:016x}"
    assert Turn.objects.get().bot_response == "Yes, in 3 to 5 days."
    # Same spans as protobuf: the same ids, so nothing new.
    assert post_otlp("/v1/traces", protobuf_body(spans)).status_code == 200
    assert LLMCall.objects.count() == 1 and Turn.objects.count() == 1


def test_json_body_gzip_int64_strings_and_unknown_fields(post_otlp, chatbot):
    document = {
        "resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "bot"}}]},
            "futureField": {"x": 1},
            "scopeSpans": [{"spans": [{
                "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
                "name": "chat gpt-4o", "kind": 3, "somethingNew": True,
                "startTimeUnixNano": "1735689600000000000", "endTimeUnixNano": "1735689601250000000",
                "attributes": [
                    {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                    {"key": "gen_ai.system", "value": {"stringValue": "openai"}},
                    {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
                    {"key": "gen_ai.usage.prompt_tokens", "value": {"intValue": "120"}},
                    {"key": "gen_ai.usage.completion_tokens", "value": {"intValue": "30"}},
                    {"key": "session.id", "value": {"stringValue": "sess-9"}},
                    {"key": "gen_ai.prompt.0.role", "value": {"stringValue": "user"}},
                    {"key": "gen_ai.prompt.0.content", "value": {"stringValue": "Cancel my order"}},
                    {"key": "gen_ai.completion.0.role", "value": {"stringValue": "assistant"}},
                    {"key": "gen_ai.completion.0.content", "value": {"stringValue": "Done, it is cancelled."}},
                ],
            }]}],
        }],
    }
    response = post_otlp("/v1/traces", gzip.compress(json.dumps(document).encode()),
                         content_type="application/json", HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 200, response.content
    call = LLMCall.objects.get()
    assert call.external_id == "5b8efff798038103d269b633813fc60c:eee19b7ec3c1b174"
    assert (call.provider, call.model, call.input_tokens, call.output_tokens) == ("openai", "gpt-4o", 120, 30)
    assert call.duration_ms == 1250
    turn = Turn.objects.get()
    assert turn.conversation.external_id == "sess-9"
    assert (turn.user_message, turn.bot_response) == ("Cancel my order", "Done, it is cancelled.")
    assert turn.latency_ms == 1250


def test_partial_success_reports_unusable_genai_spans(post_otlp, chatbot):
    with recording_tracer() as (tracer, memory):
        chat_span(tracer, conversation="conv-ok")
        chat_span(tracer, conversation="x" * 300)  # longer than a conversation id may be
        chat_span(tracer, conversation="conv-ok", extra={"gen_ai.usage.input_tokens": -5})
        tracer.start_span("GET /orders", kind=SpanKind.SERVER).end()  # not GenAI: ignored, not rejected
    response = post_otlp("/v1/traces", protobuf_body(memory.get_finished_spans()))
    assert response.status_code == 200
    partial = trace_response(response.content).partial_success
    assert partial.rejected_spans == 2
    assert "conversation_id" in partial.error_message and "input_tokens" in partial.error_message
    assert LLMCall.objects.count() == 1 and Turn.objects.count() == 1


def test_non_genai_spans_are_ignored(post_otlp, chatbot):
    with (recording_tracer() as (tracer, memory),
          tracer.start_as_current_span("POST /chat", kind=SpanKind.SERVER, attributes={"http.method": "POST"}),
          tracer.start_as_current_span("SELECT orders", attributes={"db.system": "postgresql"})):
        pass
    response = post_otlp("/v1/traces", protobuf_body(memory.get_finished_spans()))
    assert response.status_code == 200
    assert not trace_response(response.content).HasField("partial_success")
    assert not Conversation.objects.exists() and not LLMCall.objects.exists()


def test_failed_span_is_an_unsuccessful_call_and_an_error_turn(post_otlp, chatbot):
    with recording_tracer() as (tracer, memory):
        chat_span(tracer, error=True)
    assert post_otlp("/v1/traces", protobuf_body(memory.get_finished_spans())).status_code == 200
    call = LLMCall.objects.get()
    assert not call.success and call.error == "RateLimitError: 429 Too Many Requests"
    turn = Turn.objects.get()
    assert turn.has_error and turn.conversation.error_count == 1


def test_agent_trace_makes_one_turn_with_its_calls(post_otlp, chatbot):
    """invoke_agent → chat (asks for a tool) → execute_tool → chat (answers): one turn, three calls, a step."""
    question = "What is the status of order 50231?"
    with (recording_tracer() as (tracer, memory),
          tracer.start_as_current_span("POST /chat", kind=SpanKind.SERVER, attributes={"session.id": "web-session-7"}),
          tracer.start_as_current_span("invoke_agent support", attributes={
              "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support"})):
        tool_call = [{"role": "assistant", "parts": [{"type": "tool_call", "id": "c1",
                                                      "name": "order_status", "arguments": {"id": 50231}}]}]
        with tracer.start_as_current_span("chat gpt-4o-mini", attributes={
                "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": 50, "gen_ai.usage.output_tokens": 10,
                "gen_ai.input.messages": messages(("user", question)),
                "gen_ai.output.messages": json.dumps(tool_call)}):
            pass
        with tracer.start_as_current_span("execute_tool order_status", attributes={
                "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "order_status"}):
            pass
        final_input = json.loads(messages(("user", question))) + tool_call + [
            {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "response": "shipped"}]}]
        with tracer.start_as_current_span("chat gpt-4o-mini", attributes={
                "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": 80, "gen_ai.usage.output_tokens": 12,
                "gen_ai.input.messages": json.dumps(final_input),
                "gen_ai.output.messages": messages(("assistant", "Order 50231 has shipped."))}):
            pass
    response = post_otlp("/v1/traces", protobuf_body(memory.get_finished_spans()))
    assert response.status_code == 200 and not trace_response(response.content).HasField("partial_success")
    turn = Turn.objects.get()
    assert turn.conversation.external_id == "web-session-7"  # inherited through a non-GenAI span
    assert (turn.user_message, turn.bot_response) == (question, "Order 50231 has shipped.")
    calls = LLMCall.objects.filter(conversation=turn.conversation)
    assert calls.count() == 3 and set(calls.values_list("turn_id", flat=True)) == {turn.pk}
    assert sorted(calls.values_list("function_name", flat=True)) == ["chat", "chat", "support"]
    tool = turn.steps.get()  # the tool span is a step of the turn, not an LLM call
    assert (tool.kind, tool.name, tool.success) == ("tool", "order_status", True)
    assert turn.total_tokens == 50 + 10 + 80 + 12 == turn.conversation.total_tokens


def test_siblings_answering_the_same_user_message_make_one_turn(post_otlp, chatbot):
    with recording_tracer() as (tracer, memory), tracer.start_as_current_span("handle message"):
        chat_span(tracer, answer="order_status", conversation="c1")  # intent classification
        chat_span(tracer, answer="It shipped yesterday.", conversation="c1")  # the answer
    assert post_otlp("/v1/traces", protobuf_body(memory.get_finished_spans())).status_code == 200
    turn = Turn.objects.get()
    assert turn.bot_response == "It shipped yesterday."
    assert LLMCall.objects.filter(turn=turn).count() == 2


def test_span_without_content_is_a_call_without_turn(post_otlp, chatbot):
    with recording_tracer() as (tracer, memory):
        with tracer.start_as_current_span("chat gpt-4o-mini", attributes={
                "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 9,
                "gen_ai.usage.output_tokens": 4}):
            pass
        with tracer.start_as_current_span("embeddings text-embedding-3-small", attributes={
                "gen_ai.operation.name": "embeddings", "gen_ai.request.model": "text-embedding-3-small",
                "gen_ai.usage.input_tokens": 5}):
            pass
    assert post_otlp("/v1/traces", protobuf_body(memory.get_finished_spans())).status_code == 200
    assert not Turn.objects.exists()
    chat = LLMCall.objects.get(function_name="chat")
    assert (chat.input_tokens, chat.output_tokens, chat.input_text) == (9, 4, "")
    assert chat.turn_external_id == chat.external_id  # a turn may still come from log events
    conversation = chat.conversation
    assert conversation.external_id == chat.external_id.split(":")[0]  # no id: the trace id
    embedding = LLMCall.objects.get(function_name="embeddings")
    assert (embedding.input_tokens, embedding.output_tokens) == (5, 0)
    assert conversation.total_tokens == 13  # the embedding was its own trace, so its own conversation
    assert embedding.conversation_id != conversation.pk
