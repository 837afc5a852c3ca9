"""Audit receivers for configuration changes made anywhere (admin, API, shell, migrations).

API keys (created, revoked, deleted), detection rules, alert rules and notification channels
(created, changed, deleted). Receivers rather than edits in each app: one place, and nothing
escapes by being saved from an unexpected path. Values are never logged — only which fields
changed (a channel's config holds webhook secrets).
"""

from typing import Any

from django.apps import apps
from django.db.models import Model
from django.db.models.signals import post_delete, post_save, pre_save

from .middleware import current_actor
from .services import audit_event_record

# Fields the system itself moves (alert checker state, timestamps, key usage): not a "change".
_IGNORED_FIELDS = {
    "updated_at", "created_at", "last_used_at", "state", "last_value", "last_sample_size",
    "last_checked_at", "last_error",
}


def _action(instance: Model, verb: str) -> str:
    return f"{instance._meta.model_name}.{verb}"


def _chatbot_of(instance: Model) -> Any:
    return getattr(instance, "chatbot", None) if getattr(instance, "chatbot_id", None) else None


def _record(instance: Model, verb: str, data: dict[str, Any]) -> None:
    user, label = current_actor()
    chatbot = _chatbot_of(instance)
    if verb == "deleted" and getattr(instance, "chatbot_id", None):
        # The chatbot itself may be going (cascade): a foreign key to it would fail at commit.
        chatbot, data = None, {**data, "chatbot_id": instance.chatbot_id}
    audit_event_record(
        action=_action(instance, verb), actor=user, actor_label=label, target=instance, chatbot=chatbot, data=data,
    )


def _before_save(sender: type[Model], instance: Model, raw: bool = False, **kwargs: Any) -> None:
    instance._audit_previous = None
    if raw or instance.pk is None:
        return
    instance._audit_previous = sender._default_manager.filter(pk=instance.pk).values().first()


def _after_save(sender: type[Model], instance: Model, created: bool, raw: bool = False, **kwargs: Any) -> None:
    if raw:
        return
    previous = getattr(instance, "_audit_previous", None)
    if created or previous is None:
        data = {"prefix": instance.prefix, "name": instance.name} if sender._meta.model_name == "apikey" else {}
        _record(instance, "created", data)
        return
    update_fields = kwargs.get("update_fields")
    changed = sorted(
        f.attname for f in sender._meta.concrete_fields
        if f.attname not in _IGNORED_FIELDS
        and (update_fields is None or f.name in update_fields)
        and previous.get(f.attname) != getattr(instance, f.attname)
    )
    if not changed:
        return
    if sender._meta.model_name == "apikey" and "revoked_at" in changed:
        verb = "revoked" if instance.revoked_at else "restored"
        _record(instance, verb, {"prefix": instance.prefix})
        changed.remove("revoked_at")
        if not changed:
            return
    _record(instance, "updated", {"fields": changed})


def _after_delete(sender: type[Model], instance: Model, **kwargs: Any) -> None:
    _record(instance, "deleted", {"prefix": instance.prefix} if sender._meta.model_name == "apikey" else {})


# Configuration models whose changes are audited, by label: the audit app sits below the apps
# that own them, so it names them instead of importing them.
AUDITED_MODELS = ("chatbots.ApiKey", "risk.DetectionRule", "alerts.AlertRule", "alerts.NotificationChannel")


def audit_receivers_connect() -> None:
    for label in AUDITED_MODELS:
        model = apps.get_model(label)
        uid = f"audit-{model._meta.label_lower}"
        pre_save.connect(_before_save, sender=model, dispatch_uid=f"{uid}-pre")
        post_save.connect(_after_save, sender=model, dispatch_uid=f"{uid}-post")
        post_delete.connect(_after_delete, sender=model, dispatch_uid=f"{uid}-delete")
