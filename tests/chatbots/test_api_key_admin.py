"""Creating a key in the admin: shown once, stored as a hash, audited, and it works."""

import pytest

from apps.audit.models import AuditEvent
from apps.chatbots.models import ApiKey


@pytest.mark.django_db
def test_admin_add_key_shows_it_once_and_audits(admin_client, chatbot, client):
    r = admin_client.post("/admin/chatbots/apikey/add/", {"chatbot": chatbot.pk, "name": "prod"}, follow=True)
    assert r.status_code == 200
    msgs = [str(m) for m in r.context["messages"]]
    raw = next(m for m in msgs if "New API key" in m).split(": ", 1)[1].split(" ")[0]
    key = ApiKey.objects.get(name="prod")
    assert key.key_hash == ApiKey.hash_key(raw) and key.created_by.username == "alice"
    events = AuditEvent.objects.filter(object_id=str(key.pk))
    assert [(e.action, e.actor.username) for e in events] == [("apikey.created", "alice")]
    ok = client.post("/api/v1/ingest/turns", '{"conversation_id":"c","user_message":"hi"}', content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert ok.status_code == 201


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
