"""The per-process API-key cache (apps.chatbots.api.authentication): bot requests skip the key
query, and revocation or a chatbot change still takes effect on the next request."""

import json

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.chatbots.api.authentication import STAMP_KEY, api_keys_stamp_bump
from apps.chatbots.models import ApiKey
from apps.chatbots.services import api_key_create, api_key_revoke
from apps.conversations.models import Turn

URL = "/api/v1/ingest/turns"


def post(client, raw_key, turn_id, **fields):
    body = {"conversation_id": "c-1", "turn_id": turn_id, "user_message": "Mail me at ann@example.com",
            "bot_response": "Noted.", **fields}
    return client.post(URL, json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {raw_key}")


def key_queries(queries) -> list[str]:
    return [q["sql"] for q in queries if "chatbots_apikey" in q["sql"] and q["sql"].lstrip().startswith("SELECT")]


@pytest.mark.django_db
def test_a_known_key_is_not_read_from_the_database_again(client, chatbot):
    _, raw = api_key_create(chatbot=chatbot)
    with CaptureQueriesContext(connection) as first:
        assert post(client, raw, "t-1").status_code == 201
    with CaptureQueriesContext(connection) as second:
        assert post(client, raw, "t-2").status_code == 201
    assert len(key_queries(first.captured_queries)) == 1
    assert key_queries(second.captured_queries) == []


@pytest.mark.django_db
def test_a_wrong_secret_never_matches_a_cached_key(client, chatbot):
    _, raw = api_key_create(chatbot=chatbot)
    assert post(client, raw, "t-1").status_code == 201
    forged = raw[:-4] + ("aaaa" if not raw.endswith("aaaa") else "bbbb")
    assert post(client, forged, "t-2").status_code == 401


@pytest.mark.django_db
def test_revocation_is_seen_by_the_next_request_of_a_cached_key(client, chatbot):
    key, raw = api_key_create(chatbot=chatbot)
    assert post(client, raw, "t-1").status_code == 201
    assert post(client, raw, "t-2").status_code == 201  # now served from the cache
    api_key_revoke(key=key)
    assert post(client, raw, "t-3").status_code == 401


@pytest.mark.django_db
def test_a_revocation_by_another_process_is_seen_through_the_stamp(client, chatbot):
    """Another process revokes: the row changes and the shared stamp moves (no signal here)."""
    key, raw = api_key_create(chatbot=chatbot)
    assert post(client, raw, "t-1").status_code == 201
    ApiKey.objects.filter(pk=key.pk).update(revoked_at=timezone.now())
    assert post(client, raw, "t-2").status_code == 201  # the stamp has not moved: still cached
    api_keys_stamp_bump()
    assert post(client, raw, "t-3").status_code == 401


@pytest.mark.django_db
def test_a_missing_stamp_trusts_nothing_cached(client, chatbot):
    """Redis flushed (or unreachable, where the cache answers a miss): keys are read again."""
    key, raw = api_key_create(chatbot=chatbot)
    assert post(client, raw, "t-1").status_code == 201
    ApiKey.objects.filter(pk=key.pk).update(revoked_at=timezone.now())
    cache.delete(STAMP_KEY)
    assert post(client, raw, "t-2").status_code == 401
    assert cache.get(STAMP_KEY)  # a fresh stamp was set, which no older entry carries


@pytest.mark.django_db
def test_a_chatbot_change_reaches_the_next_request(client, chatbot):
    chatbot.pii_redaction_enabled = True
    chatbot.save()
    _, raw = api_key_create(chatbot=chatbot)
    assert post(client, raw, "t-1").status_code == 201
    assert "ann@example.com" not in Turn.objects.get(external_id="t-1").user_message
    chatbot.pii_redaction_enabled = False
    chatbot.save(update_fields=["pii_redaction_enabled"])
    assert post(client, raw, "t-2").status_code == 201
    assert "ann@example.com" in Turn.objects.get(external_id="t-2").user_message


@pytest.mark.django_db
def test_the_cache_can_be_switched_off(client, chatbot, settings):
    settings.API_KEY_CACHE_SECONDS = 0
    _, raw = api_key_create(chatbot=chatbot)
    assert post(client, raw, "t-1").status_code == 201
    with CaptureQueriesContext(connection) as second:
        assert post(client, raw, "t-2").status_code == 201
    assert len(key_queries(second.captured_queries)) == 1


@pytest.mark.django_db
def test_a_cached_key_costs_one_redis_round_trip_for_stamp_and_throttle(client, chatbot, monkeypatch, settings):
    """Issue 22: the stamp GET and the throttle's count share one pipeline. A spy on redis-py's
    socket write counts round trips to the real Redis (each pipeline is one write)."""
    if not settings.CACHES["default"]["BACKEND"].endswith("FailOpenRedisCache"):
        pytest.skip("needs Redis as the cache (REDIS_URL=redis://…)")
    import redis.connection

    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {
        **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "ingest": "3/min"}}
    chatbot.judge_sample_rate = 0  # no Celery publish (also Redis) in the count
    chatbot.save()
    _, raw = api_key_create(chatbot=chatbot)
    assert post(client, raw, "t-1").status_code == 201  # fetches the key, caches it
    sent = []
    original = redis.connection.AbstractConnection.send_packed_command

    def spy(self, command, *args, **kwargs):
        sent.append(command)
        return original(self, command, *args, **kwargs)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", spy)
    assert post(client, raw, "t-2").status_code == 201
    assert len(sent) == 1, sent
    assert post(client, raw, "t-3").status_code == 201
    assert post(client, raw, "t-4").status_code == 429  # counted once per request: the 4th of 3/min
