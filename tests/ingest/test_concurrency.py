"""Concurrent ingest into one conversation keeps its summary exact (real row locks: PostgreSQL)."""

import json

import pytest
from django.test import Client

from apps.conversations.models import Conversation, Turn
from tests.conftest import require_postgres
from tests.support.threads import raised, run_together

URL = "/api/v1/ingest/turns"


@pytest.mark.django_db(transaction=True)
def test_threads_ingesting_one_conversation_keep_the_summary_exact(api_key):
    require_postgres("row-lock concurrency")
    threads, per_thread = 8, 10
    statuses: list[int] = []

    def work(i):
        client = Client(HTTP_AUTHORIZATION=f"Bearer {api_key}")
        for j in range(per_thread):
            body = {"conversation_id": "shared", "turn_id": f"{i}-{j}", "user_message": "hi", "error": j % 2 == 0,
                    "tokens": {"prompt": 3, "completion": 4}, "cost_usd": "0.001"}
            statuses.append(client.post(URL, json.dumps(body), content_type="application/json").status_code)

    errors = raised(run_together(threads, work))
    assert not errors, errors
    assert statuses.count(201) == threads * per_thread
    conversation = Conversation.objects.get(external_id="shared")
    assert conversation.turn_count == Turn.objects.filter(conversation=conversation).count() == threads * per_thread
    assert conversation.total_tokens == 7 * threads * per_thread
    assert str(conversation.cost_usd.normalize()) == str(0.001 * threads * per_thread)
    assert conversation.error_count == threads * per_thread // 2
    assert sorted(Turn.objects.filter(conversation=conversation).values_list("sequence", flat=True)) == list(range(1, 81))


@pytest.mark.django_db(transaction=True)
def test_the_same_batch_sent_twice_at_once_stores_each_turn_once(api_key):
    require_postgres("row-lock concurrency")
    batch = {"turns": [{"conversation_id": f"c{i % 3}", "turn_id": f"t{i}", "user_message": "hello"} for i in range(60)]}
    results = []

    def work(_):
        client = Client(HTTP_AUTHORIZATION=f"Bearer {api_key}")
        results.append(client.post(URL, json.dumps(batch), content_type="application/json").json()["results"])

    errors = raised(run_together(4, work))
    assert not errors, errors
    assert Turn.objects.count() == 60
    for conversation in Conversation.objects.all():
        assert conversation.turn_count == 20
    statuses = [r["status"] for batch_results in results for r in batch_results]
    assert statuses.count(201) == 60 and statuses.count(200) == 180
    ids = {r["id"] for batch_results in results for r in batch_results}
    assert len(ids) == 60


@pytest.mark.django_db(transaction=True)
def test_concurrent_turns_of_one_user_without_a_conversation_id_land_in_one_session(api_key):
    require_postgres("row-lock concurrency")
    from django.utils import timezone

    at = timezone.now().isoformat()

    def work(i):
        client = Client(HTTP_AUTHORIZATION=f"Bearer {api_key}")
        body = {"user_id": "same-user", "channel": "website", "user_message": f"hi {i}", "timestamp": at}
        assert client.post(URL, json.dumps(body), content_type="application/json").status_code == 201

    errors = raised(run_together(8, work))
    assert not errors, errors
    assert Conversation.objects.count() == 1
    assert Conversation.objects.get().turn_count == Turn.objects.count() == 8
