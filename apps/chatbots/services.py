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
