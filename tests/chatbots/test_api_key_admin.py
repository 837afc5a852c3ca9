"""Creating a key in the admin: shown once, stored as a hash, audited, and it works."""

import re

import pytest

from apps.audit.models import AuditEvent
from apps.chatbots.models import ApiKey


def _cookie_texts(response) -> list[str]:
    """Every Set-Cookie value, and the messages cookie decoded (signed, not encrypted)."""
    from django.contrib.messages.storage.cookie import CookieStorage
    from django.test import RequestFactory

    texts = []
    for morsel in response.cookies.values():
        texts.append(morsel.OutputString())
        if morsel.key == CookieStorage.cookie_name:
            decoded = CookieStorage(RequestFactory().get("/"))._decode(morsel.value) or []
            texts.extend(str(message) for message in decoded)
    return texts


@pytest.mark.django_db
def test_admin_add_key_shows_it_once_and_audits(admin_client, chatbot, client):
    r = admin_client.post("/admin/chatbots/apikey/add/", {"chatbot": chatbot.pk, "name": "prod"})
    key = ApiKey.objects.get(name="prod")
    assert not any(f"_{key.prefix}_" in text for text in _cookie_texts(r)), "the key travels in a cookie"
    # The key is in this response's page, not behind a redirect that reads it back from a cookie.
    assert r.status_code == 200
    assert "no-store" in r["Cache-Control"]
    raw = re.search(r'id="new-api-key" readonly size="80" value="([^"]+)"', r.content.decode()).group(1)
    assert key.key_hash == ApiKey.hash_key(raw) and key.created_by.username == "alice"
    assert key.prefix in raw
    assert not any(raw in text or key.key_hash in text for text in _cookie_texts(r))
    assert raw not in str(admin_client.session.items())
    # Shown once: no later page has it.
    for path in ("/admin/chatbots/apikey/", f"/admin/chatbots/apikey/{key.pk}/change/", "/admin/"):
        later = admin_client.get(path)
        assert raw not in later.content.decode()
        assert not any(raw in text for text in _cookie_texts(later))
    events = AuditEvent.objects.filter(object_id=str(key.pk))
    assert [(e.action, e.actor.username) for e in events] == [("apikey.created", "alice")]
    ok = client.post("/api/v1/ingest/turns", '{"conversation_id":"c","user_message":"hi"}', content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert ok.status_code == 201


@pytest.mark.django_db
def test_editing_a_key_still_redirects_with_a_message(admin_client, chatbot):
    from tests.factories import make_api_key

    key, raw = make_api_key(chatbot)
    r = admin_client.post(f"/admin/chatbots/apikey/{key.pk}/change/", {"name": "renamed"})
    assert r.status_code == 302
    assert not any(raw in text for text in _cookie_texts(r))


@pytest.mark.django_db
def test_admin_revoke_action_revokes_once_and_names_the_user(admin_client, chatbot):
    from tests.factories import make_api_key

    key, _ = make_api_key(chatbot)
    AuditEvent.objects.all().delete()
    for _ in range(2):  # the second time the key is already revoked: nothing new
        response = admin_client.post("/admin/chatbots/apikey/", {"action": "revoke_keys", "_selected_action": [key.pk]})
        assert response.status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert [(e.action, e.actor.username) for e in AuditEvent.objects.all()] == [("apikey.revoked", "alice")]
