"""The real Langfuse SDK (5.x) pointed at chatmon with LANGFUSE_BASE_URL: the bot's code is
Langfuse's documented usage, unchanged; only the base URL and the keys differ
(LANGFUSE_PUBLIC_KEY = the key's `cm_<prefix>`, LANGFUSE_SECRET_KEY = the whole key).

The SDK sends OTLP protobuf with gzip and Basic auth to /api/public/otel/v1/traces, scores to
/api/public/scores, and auth_check() reads /api/public/projects. The model is
tests.support.openai_server.OpenAIServer (it counts words as tokens).
"""

import base64
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from langfuse import Langfuse, observe, propagate_attributes
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider

from apps.chatbots.models import ApiKey
from apps.conversations.models import Conversation, LLMCall, Turn
from apps.feedback.models import Feedback
from apps.privacy.hashing import end_user_hash
from apps.scores.models import Score
from tests.support.openai_server import OpenAIServer

pytestmark = pytest.mark.django_db(transaction=True)

ANSWER = "Your order shipped yesterday."


def _public_key(api_key: str) -> str:
    return f"cm_{ApiKey.parse_prefix(api_key)}"


@contextmanager
def langfuse_client(live_server, api_key: str, monkeypatch) -> Iterator[Langfuse]:
    # The environment a bot already has, with chatmon's URL and keys: `langfuse.openai` and
    # @observe find the client through it.
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", _public_key(api_key))
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", api_key)
    monkeypatch.setenv("LANGFUSE_BASE_URL", live_server.url)
    monkeypatch.setenv("LANGFUSE_RELEASE", "2026.05.1")
    # A provider and HTTP client of the test's own, closed afterwards: Langfuse would otherwise
    # install a global provider whose keep-alive connections outlive the test (and hold the live
    # server's database connections open).
    tracer_provider, http = TracerProvider(), httpx.Client()
    client = Langfuse(tracer_provider=tracer_provider, httpx_client=http)
    try:
        yield client
    finally:
        client.shutdown()
        tracer_provider.shutdown()
        http.close()
        # Langfuse keeps every client it made; with two, @observe and the LangChain handler trace
        # nothing ("multiple langfuse clients"): the next test starts with none.
        from langfuse._client.resource_manager import LangfuseResourceManager

        LangfuseResourceManager.reset()


def test_observe_openai_integration_and_scores(live_server, chatbot, api_key, monkeypatch):
    from langfuse.openai import openai as langfuse_openai

    trace_ids = []
    with OpenAIServer(chat_handler=lambda request: ANSWER) as server, \
            langfuse_client(live_server, api_key, monkeypatch) as langfuse:
        assert langfuse.auth_check()

        @observe()
        def handle_message(question: str) -> str:
            with propagate_attributes(session_id="lf-session", user_id="customer-1", tags=["web"]):
                trace_ids.append(langfuse.get_current_trace_id())
                client = langfuse_openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
                completion = client.chat.completions.create(model="gpt-4o-mini", messages=[
                    {"role": "system", "content": "You are the shop's assistant."},
                    {"role": "user", "content": question}])
                return completion.choices[0].message.content

        assert handle_message("Where is my order?") == ANSWER
        assert handle_message("Can I change the address?") == ANSWER
        langfuse.flush()
        langfuse.create_score(name="user-feedback", value=0, trace_id=trace_ids[0], comment="Too vague")
        langfuse.create_score(name="user-feedback", value=1, trace_id=trace_ids[1])
        langfuse.create_score(name="helpfulness", value=0.25, trace_id=trace_ids[0], data_type="NUMERIC",
                              score_id="score-help-1")
        langfuse.create_score(name="resolved", value=1, trace_id=trace_ids[1], data_type="BOOLEAN")
        langfuse.flush()

    conversation = Conversation.objects.get(chatbot=chatbot, external_id="lf-session")
    assert conversation.end_user_hash == end_user_hash(chatbot_id=chatbot.pk, user_id="customer-1")
    first, second = Turn.objects.filter(conversation=conversation).order_by("sequence")
    assert (first.user_message, first.bot_response) == ("Where is my order?", ANSWER)
    assert second.user_message == "Can I change the address?"
    assert first.model == "gpt-4o-mini"
    assert first.metadata["otel"]["release"] == "2026.05.1" and first.metadata["otel"]["tags"] == ["web"]
    [call] = first.llm_calls.all()
    # langfuse.openai's generation: the server counts system 5 + user 4 words, answer 4.
    assert (call.model, call.input_tokens, call.output_tokens) == ("gpt-4o-mini", 9, 4)
    assert call.output_text == ANSWER and call.function_name == "OpenAI-generation"
    assert LLMCall.objects.filter(chatbot=chatbot).count() == 2  # the @observe spans are turns only

    assert [(f.turn_id, f.rating, f.comment) for f in Feedback.objects.order_by("turn__sequence")] == [
        (first.pk, "down", "Too vague"), (second.pk, "up", "")]
    first.refresh_from_db()
    assert (first.thumbs_down, first.thumbs_up) == (1, 0)
    scores = {s.name: s for s in Score.objects.filter(chatbot=chatbot)}
    assert set(scores) == {"helpfulness", "resolved"}
    assert (scores["helpfulness"].turn_id, scores["helpfulness"].value, scores["helpfulness"].source) == (
        first.pk, 0.25, "langfuse")
    assert (scores["resolved"].turn_id, scores["resolved"].data_type, scores["resolved"].value) == (
        second.pk, "boolean", 1)


def test_manual_observations_exported_twice_are_stored_once(live_server, chatbot, api_key, monkeypatch):
    # An exporter retry (a timeout after the server stored the batch) sends the batch again.
    original_export = OTLPSpanExporter.export

    def export_twice(self, spans):
        original_export(self, spans)
        return original_export(self, spans)

    monkeypatch.setattr(OTLPSpanExporter, "export", export_twice)
    with langfuse_client(live_server, api_key, monkeypatch) as langfuse:
        with langfuse.start_as_current_observation(name="support-chat", input={"question": "Do you ship to Norway?"},
                                                   version="bot-1.4") as root:
            with propagate_attributes(session_id="manual-session", user_id="customer-2"):
                with langfuse.start_as_current_observation(name="shipping-lookup", as_type="tool",
                                                           input={"country": "NO"}) as tool:
                    tool.update(output={"ships": True, "days": 5})
                with langfuse.start_as_current_observation(name="faq-search", as_type="retriever",
                                                           input={"query": "norway shipping"}) as retriever:
                    retriever.update(output=[{"id": "faq-12", "text": "We ship to Norway."}])
                with langfuse.start_as_current_observation(
                        name="answer", as_type="generation", model="gpt-4o-mini",
                        input=[{"role": "user", "content": "Do you ship to Norway?"}]) as generation:
                    generation.update(output={"role": "assistant", "content": "Yes, in about 5 days."},
                                      usage_details={"input": 20, "output": 6}, cost_details={"total": 0.0021})
                root.update(output={"answer": "Yes, in about 5 days."})
            trace_id = langfuse.get_current_trace_id()
        langfuse.flush()
        langfuse.create_score(name="thumbs", value=1, trace_id=trace_id, data_type="BOOLEAN", score_id="s-1")
        langfuse.create_score(name="thumbs", value=1, trace_id=trace_id, data_type="BOOLEAN", score_id="s-1")
        langfuse.flush()

    turn = Turn.objects.get(chatbot=chatbot)
    assert (turn.conversation.external_id, turn.user_message, turn.bot_response) == (
        "manual-session", "Do you ship to Norway?", "Yes, in about 5 days.")
    assert turn.metadata["otel"]["version"] == "bot-1.4"
    assert turn.end_user_hash == end_user_hash(chatbot_id=chatbot.pk, user_id="customer-2")
    calls = {c.function_name: c for c in LLMCall.objects.filter(chatbot=chatbot)}
    assert set(calls) == {"answer"}
    assert all(c.turn_id == turn.pk for c in calls.values())
    answer = calls["answer"]
    assert (answer.model, answer.input_tokens, answer.output_tokens, str(answer.cost_usd)) == (
        "gpt-4o-mini", 20, 6, "0.002100")
    # The tool and retriever observations are steps of the turn (stored once too).
    steps = {s.kind: s for s in turn.steps.all()}
    assert set(steps) == {"tool", "retrieval"} and turn.steps.count() == 2
    tool = steps["tool"]
    assert (tool.name, tool.success) == ("shipping-lookup", True)
    assert steps["retrieval"].name == "faq-search" and "faq-12" in steps["retrieval"].output_text
    assert "norway shipping" in steps["retrieval"].input_text
    assert '"days": 5' in tool.output_text and '"NO"' in tool.input_text
    assert (turn.conversation.total_tokens, turn.conversation.turn_count) == (26, 1)
    assert Feedback.objects.get().rating == "up"


def test_keys(client, chatbot, api_key, other_api_key):
    def basic(public: str, secret: str) -> str:
        return "Basic " + base64.b64encode(f"{public}:{secret}".encode()).decode()

    ok = client.get("/api/public/projects", HTTP_AUTHORIZATION=basic(_public_key(api_key), api_key))
    assert ok.status_code == 200 and ok.json()["data"][0]["name"] == chatbot.name
    for header in (basic(_public_key(other_api_key), api_key),  # the public key of another key
                   basic(_public_key(api_key), api_key[:-1] + "x"), "Basic !!", ""):
        answer = client.get("/api/public/projects", HTTP_AUTHORIZATION=header)
        assert answer.status_code == 401, header
        assert "LANGFUSE_PUBLIC_KEY" in answer.json()["message"]
    assert client.get("/api/public/projects", HTTP_AUTHORIZATION=f"Bearer {api_key}").status_code == 200


def test_score_batches_answer_per_item(client, chatbot, api_key):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {api_key}"}
    scores = [{"id": "a", "name": "user-feedback", "value": 3, "traceId": "0" * 32},
              {"id": "b", "name": "x", "value": 1, "dataType": "CORRECTION", "sessionId": "nope"}]
    # No turn for the trace yet: the SDK retries a 503, by which time its spans have arrived.
    waiting = client.post("/api/public/scores", data=scores, content_type="application/json", **headers)
    assert waiting.status_code == 503 and waiting["Retry-After"]
    rejected = client.post("/api/public/scores", data=[{"id": "c", "name": "", "value": 1, "traceId": "1" * 32}],
                           content_type="application/json", **headers)
    assert rejected.status_code == 207
    assert rejected.json()["rejected"] == 1 and rejected.json()["errors"][0]["message"]
    assert client.post("/api/public/scores", data="[", content_type="application/json", **headers).status_code == 400
    # A control character in an id can never match a span: a 207 rejection, not a 503 to retry.
    nul = client.post("/api/public/scores", data=[{"id": "d", "name": "x", "value": 1, "traceId": "a\u0000b"}],
                      content_type="application/json", **headers)
    assert nul.status_code == 207 and nul.json()["rejected"] == 1
