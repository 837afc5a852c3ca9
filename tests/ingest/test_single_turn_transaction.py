"""Issue 22: a single turn's writes outside any surrounding transaction (the way gunicorn runs
them, unlike tests wrapped in one): the upsert+lock, then one statement for the turn, its calls
and the summary. What must hold: the turn and summary are committed (another connection sees
them), after-commit work runs (the judge of a sampled turn), a replay answers 200 and changes
nothing, and the connection is back in autocommit for whatever comes next."""

import json

import pytest
from django.db import connection, transaction

from apps.conversations.choices import JudgeStatus
from apps.conversations.models import Conversation
from tests.conftest import require_postgres
from tests.factories import make_api_key, make_chatbot

pytestmark = pytest.mark.django_db(transaction=True)
URL = "/api/v1/ingest/turns"


def _seen_elsewhere(sql: str, params: list) -> tuple:
    """A row read on another connection: only what was committed."""
    other = connection.copy()
    try:
        with other.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()
    finally:
        other.close()


def test_a_single_turn_commits_in_its_own_transaction(client):
    require_postgres("the single turn's CTE")
    chatbot = make_chatbot(judge_sample_rate=1.0)
    _, key = make_api_key(chatbot)

    def post(turn_id: str, text: str = "Where is my order?"):
        return client.post(URL, json.dumps({"conversation_id": "c-commit", "turn_id": turn_id, "user_message": text,
                                            "bot_response": "It ships today.", "tokens": {"prompt": 10, "completion": 5}}),
                           content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}")

    first = post("t1")
    assert first.status_code == 201, first.content
    assert (connection.in_atomic_block, connection.get_autocommit()) == (False, True)
    second = post("t2")
    assert second.status_code == 201
    assert _seen_elsewhere(
        "SELECT turn_count, total_tokens FROM conversations_conversation WHERE external_id = %s", ["c-commit"]
    ) == (2, 30)
    assert _seen_elsewhere(
        "SELECT count(*) FROM conversations_turn t JOIN conversations_conversation c ON c.id = t.conversation_id "
        "WHERE c.external_id = %s", ["c-commit"]
    ) == (2,)
    # The judge of a sampled turn is enqueued on commit (eager in tests): it ran.
    conversation = Conversation.objects.get(external_id="c-commit")
    assert set(conversation.turns.values_list("judge_status", flat=True)) == {JudgeStatus.DONE}

    replay = post("t2", text="changed on retry")
    assert replay.status_code == 200 and replay.json() == second.json()
    conversation.refresh_from_db()
    assert (conversation.turn_count, conversation.total_tokens) == (2, 30)
    assert conversation.turns.get(external_id="t2").user_message == "Where is my order?"

    # The connection carries on as usual: a transaction of the caller's own commits or rolls back.
    with pytest.raises(RuntimeError), transaction.atomic():
        Conversation.objects.filter(pk=conversation.pk).update(channel="rolled-back")
        raise RuntimeError
    assert Conversation.objects.get(pk=conversation.pk).channel == ""
