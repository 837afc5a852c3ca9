"""Reliability under real faults: a broker that is gone, a database that drops, two writers
at once. Each test breaks the real part (a closed port, a TCP proxy cut mid-test)."""


import pytest
from django.db import close_old_connections, connection
from django.test import Client

from apps.conversations.models import Conversation, Turn
from apps.evaluations.choices import EvaluationStatus
from apps.evaluations.models import Evaluation
from tests.factories import make_api_key, make_chatbot
from tests.support.tcp_proxy import TcpProxy, closed_port
from tests.support.threads import raised, run_together

pytestmark = pytest.mark.services


def _bot_client(raw_key: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {raw_key}")


def _turn(i: int, conversation: str = "c1") -> dict:
    return {"conversation_id": conversation, "turn_id": f"t{i}", "user_message": f"question {i}",
            "bot_response": f"answer {i}", "tokens": {"prompt": 10, "completion": 5}, "cost_usd": "0.001"}


def test_broker_unreachable_turns_are_stored_and_the_sweeper_judges_them(postgres, settings):
    from tests.evaluations.conftest import celery_broker

    chatbot = make_chatbot(judge_sample_rate=1.0)
    _, raw = make_api_key(chatbot)
    client = _bot_client(raw)
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"max_retries": 1, "interval_start": 0, "interval_step": 0.1}
    with celery_broker(f"redis://127.0.0.1:{closed_port()}/0"):
        single = client.post("/api/v1/ingest/turns", _turn(1), content_type="application/json")
        batch = client.post("/api/v1/ingest/turns", {"turns": [_turn(2), _turn(3)]}, content_type="application/json")
    assert single.status_code == 201, single.content
    assert batch.status_code == 207 and [r["status"] for r in batch.json()["results"]] == [201, 201]
    assert Turn.objects.filter(chatbot=chatbot, judge_status="pending").count() == 3
    assert not Evaluation.objects.exists()

    # The broker is back (eager here: the in-process "worker"): the sweeper catches up.
    from apps.evaluations.tasks import judge_sweep

    settings.JUDGE_SWEEP_AFTER_MINUTES = 0
    assert judge_sweep.apply().result == 3
    assert Evaluation.objects.filter(turn__chatbot=chatbot, status=EvaluationStatus.DONE).count() == 3
    assert not Turn.objects.filter(chatbot=chatbot, judge_status="pending").exists()


def test_database_unavailable_answers_503_with_retry_after_and_recovers(postgres):
    chatbot = make_chatbot(judge_enabled=False)
    _, raw = make_api_key(chatbot)
    client = _bot_client(raw)
    settings_dict = connection.settings_dict
    original = (settings_dict["HOST"], settings_dict["PORT"])
    with TcpProxy(original[0] or "127.0.0.1", int(original[1] or 5432)) as proxy:
        connection.close()
        settings_dict["HOST"], settings_dict["PORT"] = "127.0.0.1", proxy.port
        try:
            assert client.post("/api/v1/ingest/turns", _turn(1), content_type="application/json").status_code == 201
            proxy.stop()  # the database goes away mid-session: open connections die, new ones are refused
            down = client.post("/api/v1/ingest/turns", _turn(2), content_type="application/json")
            assert down.status_code == 503, down.content
            assert down["Retry-After"] == "5"
            proxy.start()  # back on the same port: the next request reconnects by itself
            close_old_connections()
            up = client.post("/api/v1/ingest/turns", _turn(2), content_type="application/json")
            assert up.status_code == 201, up.content
        finally:
            connection.close()
            settings_dict["HOST"], settings_dict["PORT"] = original
    assert list(Turn.objects.filter(chatbot=chatbot).values_list("external_id", flat=True).order_by("sequence")) == ["t1", "t2"]


def test_two_writers_ingesting_the_same_batch_store_it_once_with_exact_summaries(postgres):
    chatbot = make_chatbot(judge_enabled=False)
    _, raw = make_api_key(chatbot)
    batch = {"turns": [_turn(i, conversation=f"c{i % 5}") for i in range(200)]}

    def writer(_index: int) -> list[int]:
        response = _bot_client(raw).post("/api/v1/ingest/turns", batch, content_type="application/json")
        return [r["status"] for r in response.json()["results"]]

    answers = run_together(2, writer)
    assert not raised(answers), answers
    # Every turn is created by exactly one writer; the other sees a replay.
    assert sorted(answers[0][i] + answers[1][i] for i in range(200)) == [401] * 200
    assert Turn.objects.filter(chatbot=chatbot).count() == 200
    for conversation in Conversation.objects.filter(chatbot=chatbot):
        turns = Turn.objects.filter(conversation=conversation)
        assert conversation.turn_count == turns.count() == 40
        assert conversation.total_tokens == 40 * 15
        assert sorted(turns.values_list("sequence", flat=True)) == list(range(1, 41))
