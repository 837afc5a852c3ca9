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
    assert AuditEvent.objects.filter(action="api_key.create", object_id=str(key.pk)).count() == 1
    ok = client.post("/api/v1/ingest/turns", '{"conversation_id":"c","user_message":"hi"}', content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert ok.status_code == 201
