"""Embedding backends: the OpenAI path against a real local server, the cache, the local model."""

from __future__ import annotations

import os

import numpy as np
import pytest

from apps.clustering.choices import RunStatus
from apps.clustering.embeddings import (
    embedding_backend_for,
    embedding_batches,
    local_embeddings_available,
)
from apps.clustering.models import Cluster, TurnEmbedding
from apps.clustering.runs import cluster_run_create
from apps.clustering.tasks import cluster_run_execute
from apps.conversations.models import LLMCall, Turn
from tests.support.openai_server import OpenAIServer, ScriptedResponse

pytestmark = pytest.mark.django_db


@pytest.fixture
def openai_server(settings):
    with OpenAIServer(embedding_dimensions=256) as server:
        settings.OPENAI_BASE_URL = server.base_url
        settings.OPENAI_API_KEY = "sk-test"
        yield server


def run_now(chatbot, **kwargs):
    run = cluster_run_create(chatbot=chatbot, **kwargs)
    cluster_run_execute(run.pk)
    run.refresh_from_db()
    return run


def partition_of(run):
    return {frozenset(c.members.values_list("turn_id", flat=True)) for c in run.clusters.filter(is_noise=False)}


def test_openai_backend_clusters_and_records_calls(chatbot, themed_turns, openai_server):
    run = run_now(chatbot, days=7, backend="openai")

    assert run.status == RunStatus.DONE, run.message
    assert run.embedding_model == "text-embedding-3-small"
    # The test server's vectors are hashed bags of words (stop words included), so themes are
    # only roughly separable; every turn is accounted for exactly once.
    members = [turn_id for cluster in partition_of(run) for turn_id in cluster]
    members += list(run.clusters.filter(is_noise=True).values_list("members__turn_id", flat=True))
    assert sorted(members) == sorted(i for ids in themed_turns.values() for i in ids)
    requests = openai_server.requests_to("/embeddings")
    assert len(requests) == 1
    assert requests[0]["json"]["model"] == "text-embedding-3-small"
    assert requests[0]["headers"]["Authorization"] == "Bearer sk-test"
    assert len(requests[0]["json"]["input"]) == 24
    call = LLMCall.objects.get(purpose="embedding")
    assert call.chatbot == chatbot and call.model == "text-embedding-3-small" and call.success
    # The server counts words as tokens; the seeded price is $0.02 per 1M input tokens.
    words = sum(len(t.split()) for t in Turn.objects.values_list("user_message", flat=True))
    assert call.input_tokens == words and call.output_tokens == 0
    assert float(call.cost_usd) == pytest.approx(words * 0.02 / 1_000_000, abs=1e-6)
    assert TurnEmbedding.objects.filter(embedder="openai:text-embedding-3-small:user").count() == 24
    assert run.parameters["embeddings_computed"] == 24 and run.parameters["embeddings_cached"] == 0


def test_embedding_cache_prevents_recomputation(chatbot, themed_turns, openai_server):
    first = run_now(chatbot, days=7, backend="openai")
    assert len(openai_server.requests_to("/embeddings")) == 1

    second = run_now(chatbot, days=7, backend="openai")
    assert len(openai_server.requests_to("/embeddings")) == 1  # no new request at all
    assert second.parameters["embeddings_cached"] == 24 and second.parameters["embeddings_computed"] == 0
    assert partition_of(first) == partition_of(second)

    # A changed text (e.g. redacted afterwards) is embedded again, and only that one.
    turn = Turn.objects.get(pk=themed_turns["refund"][0])
    turn.user_message = "refund my money for the broken order please"
    turn.save(update_fields=["user_message"])
    run_now(chatbot, days=7, backend="openai")
    requests = openai_server.requests_to("/embeddings")
    assert len(requests) == 2 and requests[1]["json"]["input"] == [turn.user_message]
    assert TurnEmbedding.objects.count() == 24
    # Another text mode is another embedder: cached separately.
    run_now(chatbot, days=7, backend="openai", text_mode="user_bot")
    assert len(openai_server.requests_to("/embeddings")) == 3
    assert TurnEmbedding.objects.filter(embedder="openai:text-embedding-3-small:user_bot").count() == 24


def test_batches_respect_limits(chatbot, themed_turns, openai_server, settings):
    settings.EMBEDDING_BATCH_SIZE = 10
    run = run_now(chatbot, days=7, backend="openai")
    sizes = [len(r["json"]["input"]) for r in openai_server.requests_to("/embeddings")]
    assert sizes == [10, 10, 4]
    assert run.parameters["embedding_requests"] == 3
    assert LLMCall.objects.filter(purpose="embedding").count() == 3


def test_batching_by_token_budget():
    texts = ["a" * 300] * 5  # ~101 estimated tokens each
    batches = embedding_batches(texts, max_inputs=100, max_tokens=250)
    assert [len(b.texts) for b in batches] == [2, 2, 1]
    assert [b.start for b in batches] == [0, 2, 4]
    assert embedding_batches([], max_inputs=10, max_tokens=10) == []


def test_provider_error_fails_the_run_with_the_reason(chatbot, themed_turns, openai_server):
    openai_server.script_embeddings(ScriptedResponse(status=401, body={"error": {"message": "bad key"}}))
    run = run_now(chatbot, days=7, backend="openai")
    assert run.status == RunStatus.FAILED
    assert "HTTP 401" in run.message and "bad key" in run.message
    call = LLMCall.objects.get(purpose="embedding")
    assert not call.success and "401" in call.error
    assert not TurnEmbedding.objects.exists() and not Cluster.objects.exists()


def test_llm_titles_when_a_label_model_is_set(chatbot, themed_turns, openai_server, settings):
    settings.CLUSTER_LABEL_MODEL = "gpt-4o-mini"

    def title(request):
        prompt = request["messages"][-1]["content"]
        for theme in ("refund", "password", "delivery"):
            if theme in prompt.split("\n")[0]:
                return f'"{theme.title()} problems with the shop today."'
        return "Misc"

    openai_server.chat_handler = title
    run = run_now(chatbot, days=7)  # tfidf vectors, LLM titles

    labels = set(run.clusters.values_list("label", flat=True))
    # Quotes and the trailing full stop are stripped, and the title is cut to 5 words.
    assert labels == {"Refund problems with the shop", "Password problems with the shop",
                      "Delivery problems with the shop"}
    calls = LLMCall.objects.filter(purpose="labeling")
    assert calls.count() == 3 and all(c.success and c.model == "gpt-4o-mini" for c in calls)
    assert all(c.input_tokens > 0 and c.output_tokens > 0 for c in calls)


def test_label_model_failure_falls_back_to_keywords(chatbot, themed_turns, openai_server, settings):
    settings.CLUSTER_LABEL_MODEL = "gpt-4o-mini"
    openai_server.script_chat(*[ScriptedResponse(status=400) for _ in range(3)])
    run = run_now(chatbot, days=7)
    assert run.status == RunStatus.DONE
    assert "3 titles fell back to keywords" in run.message
    labels = list(run.clusters.values_list("label", flat=True))
    assert len(labels) == 3 and all(labels)
    assert LLMCall.objects.filter(purpose="labeling", success=False).count() == 3


def test_local_minilm_backend(chatbot, themed_turns):
    if not local_embeddings_available():
        if os.environ.get("CHATMON_REQUIRE_LOCAL_EMBEDDINGS") == "1":
            pytest.fail("CHATMON_REQUIRE_LOCAL_EMBEDDINGS=1 but sentence-transformers is not installed")
        pytest.skip("sentence-transformers is not installed (pip install 'chatmon[local-embeddings]')")
    backend = embedding_backend_for(name="local")
    vectors = backend.embed(["I want a refund", "please give my money back", "reset my password"])
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # Meaning, not shared words: the two refund wordings are closer than refund vs password.
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]

    run = run_now(chatbot, days=7, backend="local")
    assert run.status == RunStatus.DONE, run.message
    assert partition_of(run) == {frozenset(ids) for ids in themed_turns.values()}
    assert TurnEmbedding.objects.filter(embedder="local:all-MiniLM-L6-v2:user").count() == 24
    again = run_now(chatbot, days=7, backend="local")
    assert again.parameters["embeddings_cached"] == 24 and again.parameters["embedding_requests"] == 0
