"""OTLP spans → steps of a turn: GenAI execute_tool, database client spans (db.query.text and the
legacy db.statement), retrieval spans, OpenInference TOOL/RETRIEVER, Langfuse tool/retriever,
OpenLLMetry tool. Spans are made by the real OpenTelemetry SDK and sent as OTLP protobuf."""

import json

import pytest
from opentelemetry.trace import SpanKind, Status, StatusCode

from apps.conversations.models import LLMCall, Step, Turn
from apps.otel.models import PendingStep
from tests.otel.conftest import messages, protobuf_body, recording_tracer, trace_response

pytestmark = pytest.mark.django_db

QUESTION = "What is the status of order 50231?"
ANSWER = "Order 50231 has shipped."


def _agent_trace(tracer):
    """POST /chat → invoke_agent → chat, execute_tool, db query ×2, retrieval, chat (answers)."""
    with tracer.start_as_current_span(
        "invoke_agent support",
        attributes={
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": "support",
            "gen_ai.conversation.id": "steps-session",
            "user.id": "customer-9",
            "gen_ai.input.messages": messages(("user", QUESTION)),
            "gen_ai.output.messages": messages(("assistant", ANSWER)),
        },
    ):
        with tracer.start_as_current_span(
            "execute_tool order_status",
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "order_status",
                "gen_ai.tool.call.id": "call-1",
                "gen_ai.tool.call.arguments": json.dumps(
                    {"order": 50231, "email": "jane.doe@example.com"}
                ),
                "gen_ai.tool.call.result": json.dumps({"status": "shipped"}),
            },
        ):
            with tracer.start_as_current_span(
                "SELECT orders",
                kind=SpanKind.CLIENT,
                attributes={
                    "db.system.name": "postgresql",
                    "db.collection.name": "orders",
                    "db.query.text": "SELECT status FROM orders WHERE id = 50231",
                    "db.response.returned_rows": 1,
                },
            ):
                pass
            with tracer.start_as_current_span(
                "UPDATE",
                kind=SpanKind.CLIENT,
                attributes={
                    "db.system": "mysql",
                    "db.statement": "UPDATE orders SET seen = 1 WHERE id = 50231",
                },
            ) as span:
                span.set_attribute("error.type", "OperationalError")
                span.set_status(Status(StatusCode.ERROR, "lock wait timeout"))
        with tracer.start_as_current_span(
            "retrieval shipping-policies",
            attributes={
                "gen_ai.operation.name": "retrieval",
                "gen_ai.data_source.id": "shipping-policies",
                "input.value": "shipping times",
            },
        ):
            pass
        with tracer.start_as_current_span(
            "chat gpt-4o-mini",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": 80,
                "gen_ai.usage.output_tokens": 12,
                "gen_ai.input.messages": messages(("user", QUESTION)),
                "gen_ai.output.messages": messages(("assistant", ANSWER)),
            },
        ):
            pass


def test_tool_sql_and_retrieval_spans_are_steps_of_the_turn(post_otlp, chatbot, admin_client):
    with recording_tracer() as (tracer, memory):
        _agent_trace(tracer)
    body = protobuf_body(memory.get_finished_spans())
    response = post_otlp("/v1/traces", body)
    assert response.status_code == 200 and not trace_response(response.content).HasField(
        "partial_success"
    )

    turn = Turn.objects.get()
    assert (turn.conversation.external_id, turn.user_message, turn.bot_response) == (
        "steps-session",
        QUESTION,
        ANSWER,
    )
    # Steps, not LLM calls: the agent and the chat are the calls.
    assert sorted(LLMCall.objects.filter(turn=turn).values_list("function_name", flat=True)) == [
        "chat",
        "support",
    ]
    steps = list(Step.objects.filter(turn=turn).order_by("position"))
    assert [(s.kind, s.name) for s in steps] == [
        ("tool", "order_status"),
        ("sql", "SELECT orders"),
        ("sql", "UPDATE"),
        ("retrieval", "shipping-policies"),
    ]
    tool, select, update, retrieval = steps
    assert (
        "jane.doe@example.com" not in tool.input_text and "50231" in tool.input_text
    )  # redacted like every text
    assert tool.output_text == '{"status": "shipped"}' and tool.success
    assert tool.metadata["otel"]["tool_call_id"] == "call-1"
    assert (
        tool.external_id
        == f"{tool.metadata['otel']['trace_id']}:{tool.metadata['otel']['span_id']}"
    )
    assert (select.input_text, select.rows, select.success) == (
        "SELECT status FROM orders WHERE id = 50231",
        1,
        True,
    )
    assert select.metadata["otel"]["db_system"] == "postgresql"
    assert select.duration_ms is not None and select.conversation_id == turn.conversation_id
    assert (update.success, update.error) == (False, "OperationalError: lock wait timeout")
    assert update.input_text == "UPDATE orders SET seen = 1 WHERE id = 50231"
    assert retrieval.input_text == "shipping times"

    stats = admin_client.get("/api/v1/stats/steps", {"hours": 24, "kind": "sql"}).json()
    assert stats["count"] == 2 and stats["error_rate"] == 0.5

    # The exporter retries (a timeout after chatmon stored the batch): nothing is stored twice.
    assert post_otlp("/v1/traces", body).status_code == 200
    assert Step.objects.count() == 4 and Turn.objects.count() == 1 and LLMCall.objects.count() == 2


def test_a_step_exported_before_its_turn_waits_for_it(post_otlp, chatbot):
    """SimpleSpanProcessor (or a full batch) sends children first: the tool span comes alone."""
    with recording_tracer() as (tracer, memory):
        _agent_trace(tracer)
    spans = memory.get_finished_spans()
    tool = [s for s in spans if s.name.startswith("execute_tool")]
    rest = [s for s in spans if not s.name.startswith("execute_tool")]
    assert post_otlp("/v1/traces", protobuf_body(tool)).status_code == 200
    assert not Step.objects.exists()
    pending = PendingStep.objects.get()
    assert "jane.doe@example.com" not in json.dumps(pending.step)  # waits redacted
    assert post_otlp("/v1/traces", protobuf_body(rest)).status_code == 200
    turn = Turn.objects.get()
    assert sorted(turn.steps.values_list("name", flat=True)) == [
        "SELECT orders",
        "UPDATE",
        "order_status",
        "shipping-policies",
    ]
    assert not PendingStep.objects.exists()
    # Sent again in either order: still one of each.
    post_otlp("/v1/traces", protobuf_body(tool))
    post_otlp("/v1/traces", protobuf_body(rest))
    assert Step.objects.count() == 4 and not PendingStep.objects.exists()


def test_a_step_exported_after_its_turn_joins_it(post_otlp, chatbot):
    with recording_tracer() as (tracer, memory):
        _agent_trace(tracer)
    spans = memory.get_finished_spans()
    late = [s for s in spans if s.name == "SELECT orders"]
    assert (
        post_otlp("/v1/traces", protobuf_body([s for s in spans if s not in late])).status_code
        == 200
    )
    assert Step.objects.count() == 3
    response = post_otlp("/v1/traces", protobuf_body(late))
    assert response.status_code == 200 and not trace_response(response.content).HasField(
        "partial_success"
    )
    select = Step.objects.get(name="SELECT orders")
    assert select.turn == Turn.objects.get() and select.rows == 1
    assert select.position == 3  # after the steps stored with the turn
    post_otlp("/v1/traces", protobuf_body(late))
    assert Step.objects.count() == 4


def test_a_late_step_of_a_no_content_conversation_is_stored_without_text(post_otlp, chatbot):
    with recording_tracer() as (tracer, memory):
        _agent_trace(tracer)
    spans = memory.get_finished_spans()
    late = [s for s in spans if s.name == "SELECT orders"]
    assert post_otlp("/v1/traces", protobuf_body([s for s in spans if s not in late])).status_code == 200
    # The end user withdraws content consent between the two exports.
    Turn.objects.get().conversation.__class__.objects.update(consent="no_content")
    assert post_otlp("/v1/traces", protobuf_body(late)).status_code == 200
    select = Step.objects.get(name="SELECT orders")
    assert "orders" not in select.input_text and select.input_text.startswith("[withheld")
    assert select.rows == 1  # counts are kept


def test_the_sweep_gives_a_pending_step_to_a_turn_stored_by_another_path(post_otlp, chatbot):
    from datetime import timedelta

    from django.utils import timezone

    from apps.ingest.services import turns_ingest_batch
    from apps.otel.tasks import pending_content_sweep

    with recording_tracer() as (tracer, memory):
        _agent_trace(tracer)
    spans = memory.get_finished_spans()
    tool = [s for s in spans if s.name.startswith("execute_tool")]
    post_otlp("/v1/traces", protobuf_body(tool))
    trace_id = PendingStep.objects.get().trace_id
    agent = next(s for s in spans if s.name.startswith("invoke_agent"))
    # The turn arrives by another path (here the REST ingest, under the span's id).
    turns_ingest_batch(
        chatbot=chatbot,
        items=[
            {
                "conversation_id": "steps-session",
                "turn_id": f"{trace_id}:{agent.context.span_id:016x}",
                "user_message": QUESTION,
                "bot_response": ANSWER,
            }
        ],
    )
    assert (
        pending_content_sweep()["steps_claimed"] == 0
    )  # too recent: the export may still claim it
    PendingStep.objects.update(received_at=timezone.now() - timedelta(minutes=2))
    assert pending_content_sweep()["steps_claimed"] == 1
    assert (
        Turn.objects.get().steps.get().name == "order_status" and not PendingStep.objects.exists()
    )


def test_pending_steps_of_a_trace_that_never_gets_a_turn_expire(post_otlp, chatbot, settings):
    from datetime import timedelta

    from django.utils import timezone

    from apps.otel.tasks import pending_content_sweep

    with recording_tracer() as (tracer, memory):
        _agent_trace(tracer)
    tool = [s for s in memory.get_finished_spans() if s.name.startswith("execute_tool")]
    post_otlp("/v1/traces", protobuf_body(tool))
    assert pending_content_sweep()["steps_purged"] == 0
    PendingStep.objects.update(
        received_at=timezone.now() - timedelta(hours=settings.OTLP_PENDING_CONTENT_HOURS + 1)
    )
    assert pending_content_sweep()["steps_purged"] == 1 and not PendingStep.objects.exists()


def test_database_spans_of_a_trace_without_a_turn_are_ignored(post_otlp, chatbot):
    with (
        recording_tracer() as (tracer, memory),
        tracer.start_as_current_span("GET /health", kind=SpanKind.SERVER),
        tracer.start_as_current_span(
            "SELECT", attributes={"db.system": "postgresql", "db.statement": "SELECT 1"}
        ),
    ):
        pass
    response = post_otlp("/v1/traces", protobuf_body(memory.get_finished_spans()))
    assert response.status_code == 200 and not trace_response(response.content).HasField(
        "partial_success"
    )
    assert (
        not Step.objects.exists()
        and not PendingStep.objects.exists()
        and not LLMCall.objects.exists()
    )


def test_convention_tool_and_retriever_spans(post_otlp, chatbot):
    """OpenInference TOOL / RETRIEVER, Langfuse tool / retriever, OpenLLMetry tool."""
    with recording_tracer() as (tracer, memory):
        with tracer.start_as_current_span(
            "agent",
            attributes={
                "openinference.span.kind": "AGENT",
                "session.id": "oi-session",
                "input.value": "Which shoes are waterproof?",
                "output.value": "The Trail 2 is waterproof.",
            },
        ):
            with tracer.start_as_current_span(
                "catalog_search",
                attributes={
                    "openinference.span.kind": "TOOL",
                    "tool.name": "catalog_search",
                    "tool.parameters": '{"q": "waterproof"}',
                    "output.value": '["Trail 2"]',
                },
            ):
                pass
            with tracer.start_as_current_span(
                "retrieve",
                attributes={
                    "openinference.span.kind": "RETRIEVER",
                    "input.value": "waterproof shoes",
                    "retrieval.documents.0.document.id": "doc-1",
                    "retrieval.documents.0.document.content": "Trail 2: waterproof membrane",
                    "retrieval.documents.0.document.score": 0.91,
                    "retrieval.documents.1.document.id": "doc-2",
                    "retrieval.documents.1.document.content": "Road 5: breathable mesh",
                },
            ):
                pass
        with tracer.start_as_current_span(
            "handle",
            attributes={
                "langfuse.observation.type": "span",
                "session.id": "lf-session",
                "langfuse.observation.input": json.dumps(
                    {"args": ["Do you ship to Norway?"], "kwargs": {}}
                ),
                "langfuse.observation.output": json.dumps("Yes."),
            },
        ):
            with tracer.start_as_current_span(
                "shipping-lookup",
                attributes={
                    "langfuse.observation.type": "tool",
                    "langfuse.observation.input": '{"country": "NO"}',
                    "langfuse.observation.level": "ERROR",
                    "langfuse.observation.status_message": "timeout",
                },
            ):
                pass
            with tracer.start_as_current_span(
                "faq-search",
                attributes={
                    "langfuse.observation.type": "retriever",
                    "langfuse.observation.input": '"norway"',
                    "langfuse.observation.output": '[{"id": "faq-3"}]',
                },
            ):
                pass
        workflow = {
            "traceloop.span.kind": "workflow",
            "traceloop.association.properties.session_id": "tl-session",
            "traceloop.entity.input": json.dumps({"args": ["Can I return shoes?"], "kwargs": {}}),
            "traceloop.entity.output": json.dumps("Yes, within 30 days."),
        }
        tool = {
            "traceloop.span.kind": "tool",
            "traceloop.entity.name": "policy_lookup",
            "traceloop.entity.input": '{"topic": "returns"}',
            "traceloop.entity.output": '"30 days"',
        }
        with (
            tracer.start_as_current_span("support.workflow", attributes=workflow),
            tracer.start_as_current_span("policy_lookup.tool", attributes=tool),
        ):
            pass
    assert post_otlp("/v1/traces", protobuf_body(memory.get_finished_spans())).status_code == 200

    def steps_of(session):
        turn = Turn.objects.get(conversation__external_id=session)
        return {s.name: s for s in turn.steps.all()}

    phoenix = steps_of("oi-session")
    assert (phoenix["catalog_search"].kind, phoenix["catalog_search"].input_text) == (
        "tool",
        '{"q": "waterproof"}',
    )
    documents = json.loads(phoenix["retrieve"].output_text)
    assert phoenix["retrieve"].kind == "retrieval" and phoenix["retrieve"].rows == 2
    assert documents[0] == {"id": "doc-1", "content": "Trail 2: waterproof membrane", "score": 0.91}
    langfuse = steps_of("lf-session")
    assert (
        langfuse["shipping-lookup"].kind,
        langfuse["shipping-lookup"].success,
        langfuse["shipping-lookup"].error,
    ) == ("tool", False, "timeout")
    assert (langfuse["faq-search"].kind, langfuse["faq-search"].output_text) == (
        "retrieval",
        '[{"id": "faq-3"}]',
    )
    openllmetry = steps_of("tl-session")
    assert (openllmetry["policy_lookup"].kind, openllmetry["policy_lookup"].output_text) == (
        "tool",
        '"30 days"',
    )
    # Of the OpenInference AGENT, two chains and five steps, only the agent is an LLM call (as ever).
    assert list(LLMCall.objects.values_list("function_name", flat=True)) == ["agent"]
