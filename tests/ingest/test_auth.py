import json

import pytest

from apps.chatbots.models import ApiKey
from apps.chatbots.services import api_key_create, api_key_revoke
from apps.conversations.models import Conversation

TURN = {"conversation_id": "c-1", "turn_id": "t-1", "user_message": "Hi", "bot_response": "Hello!"}


def post(client, body, key=None):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}
    return client.post("/api/v1/ingest/turns", json.dumps(body), content_type="application/json", **headers)


@pytest.mark.django_db
def test_missing_key_is_401(client):
    response = post(client, TURN)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.django_db
@pytest.mark.parametrize("header", ["Bearer", "Bearer cm_nope", "Token abc", "Bearer cm_00000000_" + "x" * 43, "Basic dXNlcjpwYXNz"])
def test_malformed_or_unknown_key_is_401(client, chatbot, header):
    response = client.post("/api/v1/ingest/turns", json.dumps(TURN), content_type="application/json",
                           HTTP_AUTHORIZATION=header)
    assert response.status_code == 401


@pytest.mark.django_db
def test_key_with_right_prefix_but_wrong_secret_is_401(client, chatbot):
    key, raw = api_key_create(chatbot=chatbot)
    forged = raw[:-4] + ("aaaa" if not raw.endswith("aaaa") else "bbbb")
    assert post(client, TURN, forged).status_code == 401


@pytest.mark.django_db
def test_revoked_key_is_401_at_once(client, chatbot):
    key, raw = api_key_create(chatbot=chatbot)
    assert post(client, TURN, raw).status_code == 201
    api_key_revoke(key=key)
    assert post(client, {**TURN, "turn_id": "t-2"}, raw).status_code == 401


@pytest.mark.django_db
def test_keys_are_stored_only_as_hashes(chatbot):
    key, raw = api_key_create(chatbot=chatbot)
    row = ApiKey.objects.get(pk=key.pk)
    assert raw not in (row.key_hash, row.prefix) and len(raw) >= 50
    assert row.key_hash == ApiKey.hash_key(raw) and raw.startswith(f"cm_{row.prefix}_")


@pytest.mark.django_db
def test_a_key_writes_only_to_its_own_chatbot(client, chatbot, other_chatbot, other_api_key):
    # The other bot uses the same conversation id: it gets a conversation of its own.
    assert post(client, TURN, other_api_key).status_code == 201
    assert Conversation.objects.get(external_id="c-1").chatbot == other_chatbot
    assert not Conversation.objects.filter(chatbot=chatbot).exists()


@pytest.mark.django_db
def test_same_external_ids_under_two_chatbots_stay_apart(client, api_key, other_api_key):
    first = post(client, TURN, api_key)
    second = post(client, TURN, other_api_key)
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] != second.json()["id"]
    assert Conversation.objects.filter(external_id="c-1").count() == 2


@pytest.mark.django_db
def test_last_used_is_written_at_most_once_a_minute(client, chatbot, django_assert_max_num_queries):
    key, raw = api_key_create(chatbot=chatbot)
    post(client, TURN, raw)
    first_used = ApiKey.objects.get(pk=key.pk).last_used_at
    assert first_used is not None
    post(client, {**TURN, "turn_id": "t-2"}, raw)
    assert ApiKey.objects.get(pk=key.pk).last_used_at == first_used
