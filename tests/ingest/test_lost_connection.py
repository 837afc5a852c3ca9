"""Issue 22: ingest does not ping its database connection before each request (Django's
CONN_HEALTH_CHECKS, one round trip of six on a single turn). A connection the server closed in
between — a restart, an idle timeout, an administrator — is found by the first statement of the
ingest transaction instead; nothing was committed, so the transaction runs again on a new
connection and the bot still gets its 201, with the turn stored once."""

import time

import pytest
from django.db import connection

from apps.conversations.models import Conversation, Turn
from tests.conftest import require_postgres

pytestmark = pytest.mark.django_db(transaction=True)
URL = "/api/v1/ingest/turns"


def turn(turn_id: str) -> dict:
    return {"conversation_id": "conv-lost", "turn_id": turn_id, "user_message": "Where is my order?",
            "bot_response": "It ships today.", "tokens": {"prompt": 10, "completion": 5}}


def _backend_terminate(pid: int) -> None:
    other = connection.copy()
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
            for _ in range(100):  # until the server has really ended it
                cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
                if cursor.fetchone()[0] == 0:
                    return
                time.sleep(0.02)
        raise AssertionError(f"backend {pid} still there")
    finally:
        other.close()


def _request_start() -> None:
    """What Django does for a new request on a kept connection: its health check is due again."""
    connection.health_check_done = False


def test_a_connection_the_server_ended_is_replaced_and_the_turn_stored_once(post_json, monkeypatch):
    require_postgres("pg_terminate_backend")
    assert connection.settings_dict["CONN_HEALTH_CHECKS"], "the test is about skipping the health check"
    assert post_json(URL, turn("t0")).status_code == 201
    pid = connection.connection.info.backend_pid
    _backend_terminate(pid)

    pings = []
    real_is_usable = connection.is_usable
    monkeypatch.setattr(connection, "is_usable", lambda: pings.append(1) or real_is_usable())
    _request_start()
    response = post_json(URL, turn("t1"))

    assert response.status_code == 201, response.content
    assert pings == [], "ingest pinged the connection before its transaction"
    assert connection.connection.info.backend_pid != pid  # a new connection stored it
    assert Turn.objects.filter(external_id="t1").count() == 1
    assert Conversation.objects.get(external_id="conv-lost").turn_count == 2

    # The same on the next request, with nothing lost: the new connection is simply used.
    _request_start()
    assert post_json(URL, turn("t2")).status_code == 201
    assert Conversation.objects.get(external_id="conv-lost").turn_count == 3


def test_other_requests_keep_their_health_check(client, monkeypatch):
    require_postgres("a kept connection")
    from django.contrib.auth.models import User

    User.objects.count()  # the connection is open
    pings = []
    real_is_usable = connection.is_usable
    monkeypatch.setattr(connection, "is_usable", lambda: pings.append(1) or real_is_usable())
    _request_start()
    User.objects.count()
    assert pings == [1]
