import hashlib
import hmac

from apps.privacy.hashing import end_user_hash


def test_same_user_same_id_per_chatbot_and_different_across_chatbots(settings):
    settings.END_USER_HASH_KEY = "k" * 50
    a = end_user_hash(chatbot_id=1, user_id="jane@example.com")
    assert a == end_user_hash(chatbot_id=1, user_id="jane@example.com")
    assert a != end_user_hash(chatbot_id=2, user_id="jane@example.com")
    assert a != end_user_hash(chatbot_id=1, user_id="john@example.com")
    assert len(a) == 64


def test_is_a_keyed_hmac_not_a_bare_hash(settings):
    settings.END_USER_HASH_KEY = "first-secret"
    first = end_user_hash(chatbot_id=1, user_id="jane@example.com")
    # A list of candidate emails hashed without the key does not find the user.
    assert first not in {
        hashlib.sha256(candidate.encode()).hexdigest()
        for candidate in ("jane@example.com", "1:jane@example.com", "jane@example.com:1")
    }
    assert first == hmac.new(b"first-secret", b"1:jane@example.com", hashlib.sha256).hexdigest()
    settings.END_USER_HASH_KEY = "second-secret"
    assert end_user_hash(chatbot_id=1, user_id="jane@example.com") != first


def test_ingest_stores_only_the_hash(bot_client, chatbot):
    from apps.conversations.models import Conversation

    response = bot_client.post("/api/v1/ingest/turns", {"conversation_id": "c1", "user_id": "jane@example.com",
                               "user_message": "hi", "bot_response": "hello"}, content_type="application/json")
    assert response.status_code == 201
    conversation = Conversation.objects.get(chatbot=chatbot, external_id="c1")
    assert conversation.end_user_hash == end_user_hash(chatbot_id=chatbot.pk, user_id="jane@example.com")
    assert "jane" not in conversation.end_user_hash
