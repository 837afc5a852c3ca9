"""Issue 22: one POST of one turn is one transaction of two statements on PostgreSQL — the
conversation's upsert+lock, then the turn's INSERT … ON CONFLICT DO NOTHING (which tells a
replay) with the summary UPDATE in the same statement (a data-modifying CTE that updates only
if the turn was inserted) — and a replay still answers 200 with the original and changes nothing.
Outside tests' own transaction: test_single_turn_transaction.py."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.conversations.models import Conversation, Turn
from tests.conftest import require_postgres

pytestmark = pytest.mark.django_db
URL = "/api/v1/ingest/turns"


def turn(turn_id: str, **fields):
    return {
        "conversation_id": "conv-1",
        "turn_id": turn_id,
        "user_message": "Where is my order?",
        "bot_response": "It ships today.",
        "tokens": {"prompt": 10, "completion": 5},
        **fields,
    }


def _statements(call) -> tuple[object, list[str]]:
    with CaptureQueriesContext(connection) as captured:
        response = call()
    # Under the test's own transaction the ingest transaction is a savepoint (BEGIN/COMMIT outside
    # tests, which Django does not log); the savepoint's two statements are that transaction's.
    sqls = [query["sql"] for query in captured.captured_queries]
    transaction_markers = [s for s in sqls if s.startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))]
    assert len(transaction_markers) == 2, sqls  # one transaction
    return response, [s for s in sqls if s not in transaction_markers]


def test_a_single_turn_is_two_statements_and_a_replay_changes_nothing(post_json):
    require_postgres("INSERT … ON CONFLICT DO NOTHING RETURNING")
    assert (
        post_json(URL, turn("warm-up")).status_code == 201
    )  # the key cache and rule cache fill here

    response, statements = _statements(lambda: post_json(URL, turn("t1")))
    assert response.status_code == 201
    assert [s.split()[0] for s in statements] == ["INSERT", "WITH"], statements
    assert statements[1].startswith('WITH "inserted" AS (INSERT INTO "conversations_turn"'), statements
    assert "ON CONFLICT" in statements[1] and 'UPDATE "conversations_conversation"' in statements[1]

    replay, replay_statements = _statements(
        lambda: post_json(URL, turn("t1", user_message="changed on retry"))
    )
    assert replay.status_code == 200
    assert replay.json() == response.json()
    assert not any(s.startswith("UPDATE") for s in replay_statements), replay_statements
    conversation = Conversation.objects.get(external_id="conv-1")
    assert conversation.turn_count == 2 and conversation.total_tokens == 30
    assert Turn.objects.get(external_id="t1").user_message == "Where is my order?"


def test_the_replay_of_the_first_turn_of_a_conversation(post_json):
    first = post_json(URL, turn("only", conversation_id="conv-new"))
    again = post_json(URL, turn("only", conversation_id="conv-new"))
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert Conversation.objects.get(external_id="conv-new").turn_count == 1


def test_the_hot_statements_run_prepared_and_store_the_same(post_json):
    """The two statements bind on the server and, after DB_PREPARE_THRESHOLD uses on the
    connection, run as prepared statements (pg_prepared_statements lists them); what is stored is
    what client-side binding stored (texts, JSON, decimals, timestamps)."""
    require_postgres("server-side binding and prepared statements")
    assert connection.connection is None or connection.connection.prepare_threshold == 5
    for i in range(7):
        assert post_json(URL, turn(f"p{i}", metadata={"locale": "en-GB", "n": i}, cost_usd="0.00125",
                                   timestamp=f"2026-11-30T10:00:0{i}Z")).status_code == 201
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    assert any(s.startswith('INSERT INTO "conversations_conversation"') for s in prepared), prepared
    assert any(s.startswith('WITH "inserted" AS (INSERT INTO "conversations_turn"') for s in prepared), prepared
    stored = Turn.objects.get(external_id="p6")
    assert stored.metadata["n"] == 6 and str(stored.cost_usd) == "0.001250"
    assert stored.timestamp.isoformat() == "2026-11-30T10:00:06+00:00"
    conversation = Conversation.objects.get(external_id="conv-1")
    assert conversation.turn_count == 7


def test_a_turn_with_its_llm_calls_is_three_statements_and_its_replay_stores_none(post_json):
    """The calls go in with the turn and the summary (one CTE), after the one lookup of call ids
    the conversation already has; the totals are the calls', and a replay adds nothing."""
    require_postgres("a data-modifying CTE")
    from apps.conversations.models import LLMCall

    assert post_json(URL, turn("warm-up")).status_code == 201
    calls = [{"call_id": f"call-{n}", "model": "gpt-4o-mini", "input_tokens": 100 * n, "output_tokens": 7,
              "input": "Where is my order?", "output": "It ships today."} for n in (1, 2)]
    body = turn("with-calls", llm_calls=calls)
    del body["tokens"]
    response, statements = _statements(lambda: post_json(URL, body))
    assert response.status_code == 201, response.content
    assert [s.split()[0] for s in statements] == ["INSERT", "SELECT", "WITH"], statements
    assert 'INSERT INTO "conversations_llmcall"' in statements[2], statements
    stored = Turn.objects.get(external_id="with-calls")
    assert sorted(stored.llm_calls.values_list("external_id", "input_tokens", "turn_id")) == [
        ("call-1", 100, stored.pk), ("call-2", 200, stored.pk)]
    assert stored.total_tokens == 314
    conversation = Conversation.objects.get(external_id="conv-1")
    assert conversation.total_tokens == 15 + 314

    replay = post_json(URL, body)
    assert replay.status_code == 200 and replay.json() == response.json()
    assert LLMCall.objects.filter(conversation=conversation).count() == 2
    conversation.refresh_from_db()
    assert (conversation.turn_count, conversation.total_tokens) == (2, 15 + 314)
