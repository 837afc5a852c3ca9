"""Erasure leaves nothing of the end user anywhere (issue 15 §6).

One end user ("carol") writes a unique marker into every text field and metadata they can reach,
through every ingest path: REST turns (with listed LLM calls), REST llm-calls, OTLP traces and
OTLP logs (real OpenTelemetry SDK spans and log records, as protobuf bodies), feedback comments
through the public widget endpoint and the bot API, and a clustering run whose titles come from
a labeling model (the local OpenAI-compatible server, which quotes the examples it is given, as
a model may). A second end user ("dave") has turns in the same conversation. A review action
writes audit rows about carol's own conversation, whose bot id holds the marker.

After `DELETE /api/v1/end-users/%20carol%20` (the id as ingest saw it, plus whitespace), every
column of every table in the database holds no marker, the answer's counts are the rows that
went, and dave's turns are all there with the shared conversation's summary recomputed.
"""

import json
from decimal import Decimal
from urllib.parse import quote

import pytest
from django.db import connection
from django.test import Client
from opentelemetry._logs import LogRecord
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from apps.audit.models import AuditEvent
from apps.clustering.models import Cluster, ClusterMember, ClusterRun, TurnEmbedding
from apps.clustering.runs import cluster_run_create
from apps.clustering.tasks import cluster_run_execute
from apps.conversations.models import Conversation, LLMCall, Turn
from apps.evaluations.models import Evaluation
from apps.feedback.models import Feedback
from apps.feedback.tokens import feedback_token_for
from apps.privacy.hashing import end_user_hash
from apps.review.services import conversations_review_status_set
from tests.otel.conftest import messages, protobuf_body
from tests.support.openai_server import OpenAIServer

MARKER = "zqvmarkerq"  # a word: it also becomes a c-TF-IDF keyword of carol's cluster


def m(label: str) -> str:
    return f"{label} {MARKER} {MARKER}-{label}"


def _marker_rows() -> list[tuple[str, str]]:
    """(table, row) of every row of every table that holds the marker, whatever the column."""
    hits: list[tuple[str, str]] = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                text = " ".join(
                    bytes(v).decode("utf-8", "replace") if isinstance(v, bytes | memoryview) else str(v) for v in row
                )
                if MARKER in text.lower():
                    hits.append((table, text[:300]))
    return hits


@pytest.fixture
def labeling_server(settings):
    """The labeling model: a title quoting the first example message it was shown."""

    def title(request):
        prompt = request["messages"][-1]["content"]
        example = next((line[2:] for line in prompt.splitlines() if line.startswith("- ")), "misc")
        return " ".join(example.split()[:4])

    with OpenAIServer(chat_handler=title) as server:
        settings.OPENAI_BASE_URL = server.base_url
        settings.OPENAI_API_KEY = "sk-test"
        settings.CLUSTER_LABEL_MODEL = "gpt-4o-mini"
        yield server


def _otlp_bodies(*, conversation: str, user_id: str, late_conversation: str) -> tuple[bytes, ...]:
    """A chat span with content (traces); a content-less span plus its log events (logs); and a
    second content-less span with its log events, in a conversation it opens."""
    resource = Resource.create({"service.name": m("service")})
    tracer_provider, spans = TracerProvider(resource=resource), InMemorySpanExporter()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    logger_provider, logs = LoggerProvider(resource=resource), InMemoryLogRecordExporter()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    tracer, logger = tracer_provider.get_tracer("bot"), logger_provider.get_logger("bot")
    base = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.usage.input_tokens": 11, "gen_ai.usage.output_tokens": 5, "user.id": user_id,
            "gen_ai.conversation.id": conversation}
    with tracer.start_as_current_span(m("span"), attributes={
        **base, "gen_ai.input.messages": messages(("system", m("system")), ("user", m("otel user"))),
        "gen_ai.output.messages": messages(("assistant", m("otel answer"))),
        "gen_ai.response.id": m("response"),
    }):
        pass
    traced = protobuf_body(spans.get_finished_spans())
    spans.clear()
    with tracer.start_as_current_span("chat gpt-4o-mini", attributes={**base, "enduser.id": user_id}):
        logger.emit(LogRecord(event_name="gen_ai.user.message", body={"content": m("log user")},
                              attributes={"gen_ai.system": "openai"}))
        logger.emit(LogRecord(event_name="gen_ai.choice", attributes={"gen_ai.system": "openai"}, body={
            "index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": m("log answer")}}))
    logged_span = protobuf_body(spans.get_finished_spans())
    log_body = encode_logs(logs.get_finished_logs()).SerializeToString()
    spans.clear()
    logs.clear()
    with tracer.start_as_current_span("chat gpt-4o-mini", attributes={
            **base, "gen_ai.conversation.id": late_conversation, "user.id": f" {user_id} "}):
        logger.emit(LogRecord(event_name="gen_ai.user.message", body={"content": m("late log user")},
                              attributes={"gen_ai.system": "openai"}))
        logger.emit(LogRecord(event_name="gen_ai.choice", attributes={"gen_ai.system": "openai"}, body={
            "index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": m("late log answer")}}))
    early_span = protobuf_body(spans.get_finished_spans())
    late_log_body = encode_logs(logs.get_finished_logs()).SerializeToString()
    tracer_provider.shutdown()
    logger_provider.shutdown()
    return traced, logged_span, log_body, early_span, late_log_body


@pytest.fixture
def post_otlp(api_key):
    """POST an OTLP protobuf body with the chatbot's key, as an exporter does."""
    exporter = Client(headers={"Authorization": f"Bearer {api_key}"})
    return lambda path, body: exporter.post(path, data=body, content_type="application/x-protobuf")


def _post_ok(client, path: str, body, **extra):
    response = client.post(path, body, content_type="application/json", **extra)
    assert response.status_code in (200, 201, 207), response.content
    if response.status_code == 207:
        assert all(r["status"] in (200, 201) for r in response.json()["results"]), response.content
    return response


@pytest.mark.django_db
def test_erasure_leaves_no_trace_of_the_user_in_any_table(
    bot_client, chatbot, api_key, alice, labeling_server, settings, post_otlp
):
    settings.CLUSTERING_MIN_TURNS = 4
    settings.CLUSTERING_MIN_CLUSTER_SIZE = 2
    own = f"whatsapp:+49{MARKER}"  # carol's own conversation, named by a phone number

    # 1. REST turns: carol first in the shared conversation, then dave; carol's own conversation.
    carol_turn = {
        "user_id": "carol", "user_message": m("refund broken blender"), "bot_response": m("answer"),
        "error": m("error"), "intent": m("intent"), "metadata": {"note": m("meta"), MARKER: 1},
        "llm_calls": [{"call_id": m("call"), "function_name": m("function"), "input": m("call input"),
                       "output": m("call output"), "error": m("call error"), "metadata": {"k": m("call meta")},
                       "input_tokens": 30, "output_tokens": 10, "cost_usd": "0.003"}],
    }
    turns = [
        {**carol_turn, "conversation_id": "shared", "turn_id": m("turn")},
        {**carol_turn, "conversation_id": "shared", "turn_id": "c2", "user_id": " carol ", "llm_calls": []},
        {"conversation_id": "shared", "turn_id": "d1", "user_id": "dave", "user_message": "password reset fails",
         "bot_response": "Try the link again.", "fallback_used": True, "metadata": {"plan": "pro"},
         "tokens": {"prompt": 12, "completion": 4}, "cost_usd": "0.001"},
        {"conversation_id": "shared", "turn_id": "d2", "user_id": "dave", "user_message": "password still fails",
         "bot_response": "Let me check.", "tokens": {"prompt": 9, "completion": 3}, "cost_usd": "0.002"},
        {"conversation_id": "shared", "turn_id": "d3", "user_id": "dave", "user_message": "password login error",
         "bot_response": "Escalating.", "tokens": {"prompt": 5, "completion": 5}, "cost_usd": "0.0005"},
        {**carol_turn, "conversation_id": own, "turn_id": "o1", "llm_calls": []},
        {**carol_turn, "conversation_id": own, "turn_id": "o2", "llm_calls": []},
    ]
    _post_ok(bot_client, "/api/v1/ingest/turns", {"turns": turns})

    # 2. REST llm-calls, after the turn they name.
    _post_ok(bot_client, "/api/v1/ingest/llm-calls", {"llm_calls": [
        {"conversation_id": "shared", "turn_id": "c2", "call_id": "late", "function_name": m("late fn"),
         "input": m("late input"), "output": m("late output"), "metadata": {"k": m("late meta")},
         "input_tokens": 7, "output_tokens": 2}]})

    # 3. OTLP traces and logs (logs first: their content waits for the span), user.id with spaces.
    # Then the other order: a content-less span first (stored as an LLM call, in a conversation
    # it opens), its log events after, which build the turn.
    traced, logged_span, log_body, early_span, late_log_body = _otlp_bodies(
        conversation="shared", user_id="  carol", late_conversation="span-first")
    assert post_otlp("/v1/traces", traced).status_code == 200
    assert post_otlp("/v1/logs", log_body).status_code == 200
    assert post_otlp("/v1/traces", logged_span).status_code == 200
    assert post_otlp("/v1/traces", early_span).status_code == 200
    assert not Turn.objects.filter(conversation__external_id="span-first").exists()
    assert post_otlp("/v1/logs", late_log_body).status_code == 200
    carol = end_user_hash(chatbot_id=chatbot.pk, user_id="carol")
    dave = end_user_hash(chatbot_id=chatbot.pk, user_id="dave")
    late_turn = Turn.objects.get(conversation__external_id="span-first")
    assert MARKER in late_turn.user_message and late_turn.end_user_hash == carol
    assert "end_user_hash" not in late_turn.metadata["otel"]  # the carrier is the call's, not the turn's
    carol_turns = list(Turn.objects.filter(chatbot=chatbot).exclude(conversation__external_id="shared",
                                                                   external_id__in=["d1", "d2", "d3"]))
    assert len(carol_turns) == 7
    assert any(MARKER in t.user_message for t in carol_turns if t.external_id not in ("c2", "o1", "o2"))

    # 4. Feedback: carol's thumbs-down with comments through the widget on her turns, and through
    # the bot API on dave's turn; dave votes on his own turns. The widget is a browser: no key.
    widget = Client(headers={"Origin": "https://shop.example"})
    for turn in carol_turns:
        token = feedback_token_for(turn_id=turn.pk, chatbot_id=chatbot.pk)
        response = widget.post("/api/v1/feedback", {"token": token, "rating": "down", "comment": m("comment")},
                               content_type="application/json")
        assert response.status_code == 201, response.content
    _post_ok(bot_client, "/api/v1/feedback", {"conversation_id": "shared", "turn_id": "d1", "user_id": "carol ",
                                              "rating": "down", "comment": m("bot api comment")})
    dave_turns = {t.external_id: t for t in Turn.objects.filter(external_id__in=["d1", "d2", "d3"])}
    for external_id, rating in (("d1", "down"), ("d2", "down"), ("d3", "up")):
        token = feedback_token_for(turn_id=dave_turns[external_id].pk, chatbot_id=chatbot.pk)
        response = widget.post("/api/v1/feedback", {"token": token, "rating": rating, "comment": "meh"},
                               content_type="application/json")
        assert response.status_code == 201, response.content
    assert Feedback.objects.filter(voter_key=carol).count() == 8

    # 5. The judge's verdict quotes the turn (planted: the judge itself is tested in tests/evaluations).
    for turn in carol_turns:
        Evaluation.objects.create(turn=turn, chatbot=chatbot, evaluator="heuristic", evaluator_version="v",
                                  reasoning=m("reasoning"), signals={"quote": m("signal")})

    # 6. Clustering (embeddings and titles from the local server): the titles quote carol's
    # messages, the keywords hold the marker.
    run = cluster_run_create(chatbot=chatbot, days=7, backend="openai")
    cluster_run_execute(run.pk)
    run.refresh_from_db()
    assert run.status == "done", run.message
    assert LLMCall.objects.filter(purpose="labeling", input_text__contains=MARKER).exists()
    assert any(MARKER in " ".join(c.keywords) + c.label for c in Cluster.objects.filter(run=run))

    # 7. A reviewer acts on carol's own conversation: audit rows about it.
    conversations_review_status_set(
        conversation_ids=[Conversation.objects.get(external_id=own).pk], actor=alice, status="resolved",
    )

    assert _marker_rows(), "the marker was planted"
    carol_turn_ids = [t.pk for t in carol_turns]
    expected = {
        "conversations": Conversation.objects.filter(chatbot=chatbot).exclude(external_id="shared").count(),
        "turns": len(carol_turns),
        "llm_calls": LLMCall.objects.filter(turn_id__in=carol_turn_ids).count()
        + LLMCall.objects.filter(purpose="labeling", input_text__contains=MARKER).count(),
        "evaluations": Evaluation.objects.filter(turn_id__in=carol_turn_ids).count(),
        "feedback": Feedback.objects.filter(turn_id__in=carol_turn_ids).count()
        + Feedback.objects.filter(voter_key=carol).exclude(turn_id__in=carol_turn_ids).count(),
        "embeddings": TurnEmbedding.objects.filter(turn_id__in=carol_turn_ids).count(),
        "cluster_memberships": ClusterMember.objects.filter(turn_id__in=carol_turn_ids).count(),
    }
    assert all(expected.values()), expected
    expected["sessions"] = 0  # every path here names its conversation
    expected["dataset_items"] = expected["experiment_results"] = 0  # none were made from her turns

    response = bot_client.delete(f"/api/v1/end-users/{quote(' carol ')}")
    assert response.status_code == 200, response.content
    assert response.json()["deleted"] == expected

    assert _marker_rows() == []

    # Dave's turns, votes and memberships stay; the shared conversation summarises them alone.
    shared = Conversation.objects.get(chatbot=chatbot, external_id="shared")
    left = list(Turn.objects.filter(conversation=shared).order_by("sequence"))
    assert [t.external_id for t in left] == ["d1", "d2", "d3"]
    assert (shared.end_user_hash, shared.metadata) == (dave, {"plan": "pro"})
    assert shared.turn_count == 3
    assert shared.total_tokens == sum(t.total_tokens for t in left) == 38
    assert shared.cost_usd == sum((t.total_cost_usd for t in left), Decimal(0)) == Decimal("0.0035")
    assert (shared.error_count, shared.fallback_count) == (0, 1)
    d1 = next(t for t in left if t.external_id == "d1")
    assert (d1.thumbs_up, d1.thumbs_down) == (0, 1)  # carol's bot-API vote went, dave's stays
    assert (shared.thumbs_up, shared.thumbs_down) == (1, 2)
    assert shared.max_risk_score == max(t.risk_score for t in left)
    assert shared.is_flagged and shared.flag_reasons == ["thumbs_down"]
    assert shared.started_at == left[0].timestamp and shared.last_activity_at == max(t.timestamp for t in left)
    assert Feedback.objects.filter(turn__in=left).count() == 3
    # d1 and d2 (thumbs-down) were clustered, d3 (thumbs-up) was not.
    assert ClusterMember.objects.filter(turn__in=left).count() == 2
    assert ClusterRun.objects.get(pk=run.pk).turn_count == 2
    # What is left of the clusters is drawn from dave's messages only.
    for cluster in Cluster.objects.filter(run=run):
        texts = " ".join(cluster.members.values_list("turn__user_message", flat=True)).lower()
        assert cluster.size == cluster.members.count() and all(k in texts for k in cluster.keywords)
    event = AuditEvent.objects.get(action="privacy.end_user_erased")
    assert event.data["deleted"] == expected
    assert json.dumps(event.data).count(carol[:12]) == 1
    assert {t.end_user_hash for t in left} == {dave}  # each turn records its end user


@pytest.mark.django_db
def test_whitespace_around_the_id_is_the_same_end_user_on_every_path(bot_client, chatbot):
    _post_ok(bot_client, "/api/v1/ingest/turns", {"turns": [
        {"conversation_id": "c1", "turn_id": "1", "user_id": " carol ", "user_message": "hello"},
        {"conversation_id": "c2", "turn_id": "1", "user_id": "carol", "user_message": "hi again"},
    ]})
    assert set(Conversation.objects.values_list("end_user_hash", flat=True)) == {
        end_user_hash(chatbot_id=chatbot.pk, user_id="carol")
    }
    response = bot_client.delete("/api/v1/end-users/%20carol%20")
    assert response.status_code == 200
    assert response.json()["deleted"]["conversations"] == 2 and response.json()["deleted"]["turns"] == 2
    assert not Turn.objects.exists()


@pytest.mark.django_db
def test_erasing_the_second_user_of_a_conversation_deletes_only_their_turns(bot_client, chatbot):
    _post_ok(bot_client, "/api/v1/ingest/turns", {"turns": [
        {"conversation_id": "c1", "turn_id": "1", "user_id": "carol", "user_message": "first",
         "tokens": {"prompt": 10, "completion": 5}, "error": "timeout"},
        {"conversation_id": "c1", "turn_id": "2", "user_id": "erin", "user_message": "second",
         "tokens": {"prompt": 7, "completion": 3}, "metadata": {"erin": True}},
        {"conversation_id": "c1", "turn_id": "3", "user_id": "erin", "user_message": "third",
         "tokens": {"prompt": 1, "completion": 1}},
    ]})
    response = bot_client.delete("/api/v1/end-users/erin")
    assert response.json()["deleted"]["turns"] == 2 and response.json()["deleted"]["conversations"] == 0
    conversation = Conversation.objects.get(external_id="c1")
    assert list(conversation.turns.values_list("external_id", flat=True)) == ["1"]
    assert (conversation.turn_count, conversation.total_tokens, conversation.error_count) == (1, 15, 1)
    assert conversation.end_user_hash == end_user_hash(chatbot_id=chatbot.pk, user_id="carol")

    # Erasing the first user now leaves nothing: the conversation goes whole.
    response = bot_client.delete("/api/v1/end-users/carol")
    assert response.json()["deleted"]["conversations"] == 1 and response.json()["deleted"]["turns"] == 1
    assert not Conversation.objects.exists()


@pytest.mark.django_db
def test_title_calls_recorded_before_they_named_their_cluster_go_when_they_quote_the_user(bot_client, chatbot):
    _post_ok(bot_client, "/api/v1/ingest/turns", {"turns": [
        {"conversation_id": "c1", "turn_id": "1", "user_id": "carol", "user_message": "my blender broke"},
        {"conversation_id": "c2", "turn_id": "1", "user_id": "dave", "user_message": "parcel is late"},
    ]})
    carol_turn, dave_turn = Turn.objects.order_by("conversation__external_id")
    run = ClusterRun.objects.create(chatbot=chatbot, window_start=carol_turn.timestamp,
                                    window_end=carol_turn.timestamp, backend="tfidf")
    cluster = Cluster.objects.create(run=run, index=0, label="Broken blender", size=2)
    for turn in (carol_turn, dave_turn):
        ClusterMember.objects.create(cluster=cluster, turn=turn, is_representative=True)
    legacy = dict(chatbot=chatbot, purpose="labeling", function_name="clustering.title")
    LLMCall.objects.create(**legacy, input_text="Keywords: blender\nExample user messages:\n- my blender broke")
    LLMCall.objects.create(**legacy, input_text="Keywords: parcel\nExample user messages:\n- parcel is late")

    assert bot_client.delete("/api/v1/end-users/carol").json()["deleted"]["llm_calls"] == 1
    assert list(LLMCall.objects.values_list("input_text", flat=True)) == [
        "Keywords: parcel\nExample user messages:\n- parcel is late"
    ]
    cluster.refresh_from_db()
    assert cluster.size == 1 and cluster.label != "Broken blender" and "blender" not in cluster.keywords


@pytest.mark.django_db
def test_a_span_whose_log_content_never_came_is_erased_with_its_end_user(chatbot, post_otlp, bot_client):
    *_, early_span, _ = _otlp_bodies(conversation="shared", user_id="carol", late_conversation="span-only")
    assert post_otlp("/v1/traces", early_span).status_code == 200
    call = LLMCall.objects.get(conversation__external_id="span-only")
    assert call.turn_id is None and call.metadata["otel"]["end_user_hash"] == end_user_hash(
        chatbot_id=chatbot.pk, user_id="carol")
    assert _marker_rows()  # the resource's service.name
    deleted = bot_client.delete("/api/v1/end-users/carol").json()["deleted"]
    assert (deleted["llm_calls"], deleted["conversations"]) == (1, 1)
    assert _marker_rows() == []
