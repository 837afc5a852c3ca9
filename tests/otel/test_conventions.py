"""OpenInference, OpenLLMetry and Langfuse spans → turns and LLM calls, without a database.

Spans are made with the real OpenTelemetry SDK, their attributes as each convention's own code
writes them (openinference-semantic-conventions' SpanAttributes, opentelemetry-semantic-
conventions-ai's SpanAttributes, langfuse._client.attributes.LangfuseOtelSpanAttributes). The
end-to-end tests with the real instrumentors are in test_instrumentors.py and test_langfuse.py.
"""

import json

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from apps.otel.conventions import loose_messages
from apps.otel.spans import (
    span_call_raw,
    span_is_structural,
    span_tree_read,
    span_turn_raw,
    span_turns_choose,
)
from tests.otel.conftest import recording_tracer


def _tree(memory):
    tree = span_tree_read(encode_spans(memory.get_finished_spans()))
    span_turns_choose(tree)
    return tree


def _by_name(tree):
    return {s.name: s for s in tree.spans}


def test_openinference_agent_with_llm_and_tool_spans():
    chain = {"openinference.span.kind": "AGENT", "agent.name": "shop-agent", "session.id": "sess-oi",
             "user.id": "customer-7", "input.value": json.dumps({"input": "Where is order 12?"}),
             "output.value": "Order 12 shipped yesterday.", "metadata": json.dumps({"tier": "gold"}),
             "tag.tags": ["beta"]}
    llm = {
        "openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini", "llm.provider": "openai",
        "llm.input_messages.0.message.role": "system", "llm.input_messages.0.message.content": "Be brief.",
        "llm.input_messages.1.message.role": "user",
        "llm.input_messages.1.message.contents.0.message_content.type": "text",
        "llm.input_messages.1.message.contents.0.message_content.text": "Where is order 12?",
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "order_status",
        "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": '{"order": 12}',
        "llm.token_count.prompt": 30, "llm.token_count.completion": 9, "llm.token_count.total": 39,
        "llm.cost.total": 0.0004,
    }
    tool = {"openinference.span.kind": "TOOL", "tool.name": "order_status", "input.value": '{"order": 12}',
            "output.value": '{"status": "shipped"}'}
    with recording_tracer() as (tracer, memory), tracer.start_as_current_span("agent", attributes=chain):
        with tracer.start_as_current_span("ChatCompletion", attributes=llm):
            pass
        with tracer.start_as_current_span("order_status", attributes=tool):
            pass
    tree = _tree(memory)
    spans = _by_name(tree)
    agent, chat, tool_span = spans["agent"], spans["ChatCompletion"], spans["order_status"]

    # The agent answers the user: it is the turn; the LLM call and the tool are its calls.
    assert agent.turn_key == chat.turn_key == tool_span.turn_key == agent.key
    assert {s.conversation_id for s in tree.spans} == {"sess-oi"}
    assert {s.user_id for s in tree.spans} == {"customer-7"}
    call = span_call_raw(chat)
    assert (call["model"], call["provider"], call["function_name"]) == ("gpt-4o-mini", "openai", "chat")
    assert (call["input_tokens"], call["output_tokens"], call["cost_usd"]) == (30, 9, "0.0004")
    assert json.loads(call["output"])[0]["tool_calls"][0]["function"]["name"] == "order_status"
    tool_call = span_call_raw(tool_span)
    assert (tool_call["function_name"], tool_call["model"], tool_call["cost_usd"]) == ("order_status", "", 0)
    assert tool_call["input"] == '{"order": 12}'
    turn = span_turn_raw(agent, span_call_raw(agent))
    assert (turn["user_message"], turn["bot_response"], turn["user_id"]) == (
        "Where is order 12?", "Order 12 shipped yesterday.", "customer-7")
    otel = turn["metadata"]["otel"]
    assert otel["convention"] == "openinference" and otel["metadata"] == {"tier": "gold"} and otel["tags"] == ["beta"]


def test_openinference_chains_inside_the_turn_are_structure():
    outer = {"openinference.span.kind": "CHAIN", "input.value": "Hi there", "output.value": "Hello! How can I help?"}
    inner = {"openinference.span.kind": "CHAIN", "input.value": '{"question": "Hi there"}',
             "output.value": '{"text": "Hello! How can I help?"}'}
    with (recording_tracer() as (tracer, memory), tracer.start_as_current_span("RunnableSequence", attributes=outer),
          tracer.start_as_current_span("ChatPromptTemplate", attributes=inner)):
        pass
    spans = _by_name(_tree(memory))
    outer_span, inner_span = spans["RunnableSequence"], spans["ChatPromptTemplate"]
    assert span_is_structural(outer_span) and span_is_structural(inner_span)
    assert outer_span.turn_key == inner_span.turn_key == outer_span.key  # the outermost wins
    assert inner_span.content.user_message() == "Hi there"  # {"question": …} read too


def test_openllmetry_workflow_with_legacy_indexed_attributes():
    workflow = {
        "traceloop.span.kind": "workflow", "traceloop.entity.name": "support_answer",
        "traceloop.workflow.name": "support_answer",
        "traceloop.entity.input": json.dumps({"args": ["Can I return shoes?"], "kwargs": {}}),
        "traceloop.entity.output": json.dumps("Yes, within 30 days."),
        "traceloop.association.properties.session_id": "sess-tl",
        "traceloop.association.properties.user_id": "user-tl",
        "traceloop.association.properties.plan": "pro",
    }
    chat = {  # opentelemetry-instrumentation-openai before the GenAI message attributes
        "llm.request.type": "chat", "gen_ai.system": "OpenAI", "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "Can I return shoes?",
        "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.content": "Yes, within 30 days.",
        "gen_ai.usage.prompt_tokens": 11, "gen_ai.usage.completion_tokens": 5, "llm.usage.total_tokens": 16,
    }
    tool = {"traceloop.span.kind": "tool", "traceloop.entity.name": "policy_lookup",
            "traceloop.entity.input": json.dumps({"args": [], "kwargs": {"topic": "returns"}})}
    with recording_tracer() as (tracer, memory), tracer.start_as_current_span("support_answer.workflow",
                                                                                attributes=workflow):
        with tracer.start_as_current_span("policy_lookup.tool", attributes=tool):
            pass
        with tracer.start_as_current_span("openai.chat", attributes=chat):
            pass
    spans = _by_name(_tree(memory))
    root, chat_span, tool_span = spans["support_answer.workflow"], spans["openai.chat"], spans["policy_lookup.tool"]
    assert root.turn_key == chat_span.turn_key == tool_span.turn_key == root.key
    assert {s.conversation_id for s in spans.values()} == {"sess-tl"}
    call = span_call_raw(chat_span)
    assert (call["model"], call["input_tokens"], call["output_tokens"]) == ("gpt-4o-mini", 11, 5)
    assert call["metadata"]["otel"]["total_tokens"] == 16
    assert span_call_raw(tool_span)["function_name"] == "policy_lookup"
    turn = span_turn_raw(root, span_call_raw(root))
    assert (turn["user_message"], turn["bot_response"], turn["user_id"]) == (
        "Can I return shoes?", "Yes, within 30 days.", "user-tl")
    assert turn["metadata"]["otel"]["metadata"] == {"plan": "pro"}
    assert turn["metadata"]["otel"]["trace_name"] == "support_answer"


def test_langfuse_observations():
    root = {  # what langfuse 5.x writes for @observe() around the bot's handler
        "langfuse.observation.type": "span", "langfuse.internal.is_app_root": True,
        "langfuse.observation.input": json.dumps({"args": ["Is the store open?"], "kwargs": {}}),
        "langfuse.observation.output": json.dumps("Yes, until 8 pm."),
        "session.id": "sess-lf", "user.id": "user-lf", "langfuse.trace.name": "chat",
        "langfuse.trace.tags": ["web"], "langfuse.version": "v2", "langfuse.trace.metadata.plan": '"pro"',
    }
    generation = {
        "langfuse.observation.type": "generation", "langfuse.observation.model.name": "gpt-4o-mini",
        "langfuse.observation.input": json.dumps([{"role": "user", "content": "Is the store open?"}]),
        "langfuse.observation.output": json.dumps({"role": "assistant", "content": "Yes, until 8 pm."}),
        "langfuse.observation.usage_details": json.dumps({"prompt_tokens": 12, "completion_tokens": 6,
                                                          "total_tokens": 18}),
        "langfuse.observation.cost_details": json.dumps({"input": 0.00001, "output": 0.00002}),
        "session.id": "sess-lf", "user.id": "user-lf",
    }
    failed_tool = {"langfuse.observation.type": "tool", "langfuse.observation.level": "ERROR",
                   "langfuse.observation.status_message": "timeout", "session.id": "sess-lf"}
    event = {"langfuse.observation.type": "event", "langfuse.observation.input": '"clicked"'}
    with recording_tracer() as (tracer, memory), tracer.start_as_current_span("handle", attributes=root):
        with tracer.start_as_current_span("answer", attributes=generation):
            pass
        with tracer.start_as_current_span("opening-hours", attributes=failed_tool):
            pass
        with tracer.start_as_current_span("clicked", attributes=event):
            pass
    spans = _by_name(_tree(memory))
    handle = spans["handle"]
    assert {s.turn_key for s in spans.values()} == {handle.key}
    call = span_call_raw(spans["answer"])
    assert (call["function_name"], call["model"], call["input_tokens"], call["output_tokens"]) == (
        "answer", "gpt-4o-mini", 12, 6)
    assert call["cost_usd"] == "0.00003"
    tool = span_call_raw(spans["opening-hours"])
    assert (tool["function_name"], tool["error"]) == ("opening-hours", "timeout")
    assert span_is_structural(spans["clicked"])
    turn = span_turn_raw(handle, span_call_raw(handle))
    assert (turn["user_message"], turn["bot_response"], turn["user_id"], turn["conversation_id"]) == (
        "Is the store open?", "Yes, until 8 pm.", "user-lf", "sess-lf")
    otel = turn["metadata"]["otel"]
    assert (otel["trace_name"], otel["tags"], otel["version"], otel["metadata"]) == ("chat", ["web"], "v2",
                                                                                    {"plan": "pro"})


def test_loose_inputs_and_outputs():
    def text(value, output=False):
        return [(m.role, m.text) for m in loose_messages(value, output=output)]

    assert text("plain question") == [("user", "plain question")]
    assert text('{"messages": [{"role": "user", "content": "hi"}], "model": "m"}') == [("user", "hi")]
    assert text({"args": [], "kwargs": {"question": "why?", "user": {"id": 1}}}) == [("user", "why?")]
    assert text('{"choices": [{"message": {"role": "assistant", "content": "ok"}}]}', output=True) == [
        ("assistant", "ok")]
    assert text({"answer": "42", "sources": []}, output=True) == [("assistant", "42")]
    assert text({"unrelated": {"deep": True}}) == []
    assert text('{"broken json') == [("user", '{"broken json')]
