"""The span tree → turns and LLM calls, without a database: plain functions on requests built
in memory from real SDK spans (no `db` fixture, so any query would fail the test)."""

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from apps.otel.spans import (
    span_call_raw,
    span_tree_read,
    span_turn_raw,
    span_turns_choose,
    text_clip,
)
from tests.otel.conftest import chat_span, recording_tracer


def _request(memory) -> ExportTraceServiceRequest:
    return encode_spans(memory.get_finished_spans())


def test_one_chat_span_is_a_turn_and_its_call():
    with recording_tracer() as (tracer, memory):
        chat_span(tracer, user="Where is my order?", answer="It shipped.", conversation="conv-1")
        with tracer.start_as_current_span("GET /health"):
            pass
    tree = span_tree_read(_request(memory))
    span_turns_choose(tree)

    assert tree.ignored == 1  # the HTTP span is not GenAI
    [span] = tree.spans
    assert (span.conversation_id, span.turn_key) == ("conv-1", span.key)
    call = span_call_raw(span)
    assert (call["call_id"], call["turn_id"], call["conversation_id"]) == (span.key, span.key, "conv-1")
    assert (call["model"], call["input_tokens"], call["output_tokens"], call["error"]) == ("gpt-4o-mini", 21, 7, False)
    turn = span_turn_raw(span, call)
    assert (turn["user_message"], turn["bot_response"], turn["latency_ms"]) == (
        "Where is my order?", "It shipped.", call["duration_ms"])


def test_conversation_and_turn_come_through_non_genai_ancestors():
    agent = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "shop", "session.id": "sess-9"}
    with (
        recording_tracer() as (tracer, memory),
        tracer.start_as_current_span("invoke_agent shop", attributes=agent),
        tracer.start_as_current_span("POST /tools"),  # not GenAI: must not break the chain
    ):
        chat_span(tracer, user="Refund?", answer="Done.", conversation=None)
    tree = span_tree_read(_request(memory))
    span_turns_choose(tree)

    chat, agent_span = tree.spans  # the SDK finishes the inner span first
    assert chat.conversation_id == agent_span.conversation_id == "sess-9"
    # The agent span has no content of its own: the chat span is the turn, the agent a call of it.
    assert chat.turn_key == agent_span.turn_key == chat.key
    assert span_call_raw(agent_span)["function_name"] == "shop"


def test_of_two_answers_to_one_user_message_the_last_is_the_turn():
    with recording_tracer() as (tracer, memory), tracer.start_as_current_span("handler"):
        chat_span(tracer, user="Hello", answer="First draft")
        chat_span(tracer, user="Hello", answer="Final answer")
    tree = span_tree_read(_request(memory))
    span_turns_choose(tree)

    first, last = tree.spans
    assert first.turn_key == last.turn_key == last.key


def test_a_chat_span_without_content_waits_for_its_log_events():
    no_content = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini"}
    with recording_tracer() as (tracer, memory), tracer.start_as_current_span("chat gpt-4o-mini", attributes=no_content):
        pass
    tree = span_tree_read(_request(memory))
    span_turns_choose(tree)

    [span] = tree.spans
    assert span.content.empty
    assert span.conversation_id == span.trace_id  # no conversation attribute anywhere
    assert span.turn_key == span.key  # a turn made later from log events finds its call
    assert span_call_raw(span)["input"] == ""


def test_text_is_clipped_to_the_ingest_limit(settings):
    settings.INGEST_MAX_TEXT_CHARS = 20
    assert text_clip("short\x00") == "short\ufffd"
    clipped = text_clip("x" * 50)
    assert len(clipped) == 20 and clipped.endswith(" … [truncated]")
