from typing import Any

from django.db import models

from .models import AuditEvent


def audit_event_record(
    *,
    action: str,
    actor: Any = None,
    actor_label: str = "",
    target: models.Model | None = None,
    chatbot: Any = None,
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Write one AuditEvent. `data` must hold ids and counts, never personal data."""
    user = actor if getattr(actor, "is_authenticated", False) else None
    return AuditEvent.objects.create(
        actor=user,
        actor_label=actor_label or (user.get_username() if user else "system"),
        action=action,
        object_type=target._meta.label_lower if target is not None else "",
        object_id=str(target.pk) if target is not None else "",
        object_repr=str(target)[:200] if target is not None else "",
        chatbot=chatbot,
        data=data or {},
    )
