from typing import Any

from django.db import transaction

from .models import ApiKey, Chatbot


def api_key_create(*, chatbot: Chatbot, name: str = "default", actor: Any = None) -> tuple[ApiKey, str]:
    """A new key for `chatbot`; the raw key is returned once and never stored."""
    key = ApiKey(chatbot=chatbot, name=name)
    return key, api_key_issue(key=key, actor=actor)


def api_key_issue(*, key: ApiKey, actor: Any = None) -> str:
    """Give an unsaved ApiKey its secret and save it; returns the raw key (shown once).

    The audit receivers (apps.audit.receivers) record "apikey.created", as for a key saved from
    any other path.
    """
    key.prefix, raw_key = ApiKey.generate()
    key.key_hash = ApiKey.hash_key(raw_key)
    key.created_by = actor if getattr(actor, "is_authenticated", False) else None
    key.save()
    return raw_key


def api_key_revoke(*, key: ApiKey) -> bool:
    """Revoke at once (the next request with it gets 401). False if it was already revoked.

    The row is locked so two revocations at once record one "apikey.revoked" (audit receivers).
    """
    with transaction.atomic():
        locked = ApiKey.objects.select_for_update().get(pk=key.pk)
        if locked.revoked_at is not None:
            return False
        locked.revoke()
    key.refresh_from_db(fields=["revoked_at"])
    return True


def api_key_curl_example(*, base_url: str, raw_key: str) -> str:
    """A ready-to-paste request that ingests one turn with `raw_key` (the README's example)."""
    return (f"curl -X POST {base_url.rstrip('/')}/api/v1/ingest/turns \\\n"
            f"  -H 'Authorization: Bearer {raw_key}' \\\n"
            "  -H 'Content-Type: application/json' \\\n"
            """  -d '{"conversation_id": "curl-test-1", "turn_id": "curl-test-1-1",\n"""
            """       "user_message": "Where is my order?", "bot_response": "It ships tomorrow.", "latency_ms": 900}'""")
