from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.audit.services import audit_event_record

from .models import ApiKey, Chatbot


def api_key_create(*, chatbot: Chatbot, name: str = "default", actor: Any = None) -> tuple[ApiKey, str]:
    """A new key for `chatbot`; the raw key is returned once and never stored."""
    key = ApiKey(chatbot=chatbot, name=name)
    return key, api_key_issue(key=key, actor=actor)


def api_key_issue(*, key: ApiKey, actor: Any = None) -> str:
    """Give an unsaved ApiKey its secret, save it and audit it; returns the raw key (shown once)."""
    key.prefix, raw_key = ApiKey.generate()
    key.key_hash = ApiKey.hash_key(raw_key)
    key.created_by = actor if getattr(actor, "is_authenticated", False) else None
    with transaction.atomic():
        key.save()
        audit_event_record(action="api_key.create", actor=actor, target=key, chatbot=key.chatbot,
                           data={"prefix": key.prefix, "name": key.name})
    return raw_key


def api_key_revoke(*, key: ApiKey, actor: Any = None) -> bool:
    """Revoke at once (the next request with it gets 401). False if it was already revoked."""
    with transaction.atomic():
        changed = ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        if changed:
            audit_event_record(action="api_key.revoke", actor=actor, target=key, chatbot=key.chatbot,
                               data={"prefix": key.prefix})
    key.refresh_from_db(fields=["revoked_at"])
    return bool(changed)

