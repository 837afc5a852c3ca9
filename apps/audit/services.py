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
    """Write one AuditEvent. `data` must hold ids and counts, never personal data.

    The target is named by its internal id (`audit_object_repr`), never by `str()`: a
    conversation's string is the bot's id for it (`whatsapp:+49…`), a cluster's is a title
    drawn from end users' messages, and audit rows outlive both (erasure keeps them).
    """
    user = actor if getattr(actor, "is_authenticated", False) else None
    return AuditEvent.objects.create(
        actor=user,
        actor_label=actor_label or (user.get_username() if user else "system"),
        action=action,
        object_type=target._meta.label_lower if target is not None else "",
        object_id=str(target.pk) if target is not None else "",
        object_repr=audit_object_repr(target) if target is not None else "",
        chatbot=chatbot,
        data=data or {},
    )


def audit_object_repr(target: models.Model) -> str:
    """How an audit row names its object: model and internal id, e.g. "conversation 42"."""
    return f"{target._meta.verbose_name} {target.pk}"[:200]
