from django.urls import reverse

from apps.alerts.models import AlertRule, NotificationChannel
from apps.audit.models import AuditEvent
from apps.chatbots.models import ApiKey
from apps.risk.models import DetectionRule
from tests.factories import make_api_key


def actions() -> list[str]:
    return list(AuditEvent.objects.order_by("id").values_list("action", flat=True))


def test_api_key_creation_revocation_and_deletion_are_audited(chatbot):
    key, raw = make_api_key(chatbot, name="rotation")
    key.revoke()
    key.revoke()  # already revoked: nothing new
    key.delete()
    assert actions() == ["apikey.created", "apikey.revoked", "apikey.deleted"]
    events = list(AuditEvent.objects.order_by("id"))
    assert all(e.data.get("prefix") == key.prefix for e in events)
    assert raw not in str([e.__dict__ for e in events]) and key.key_hash not in str([e.__dict__ for e in events])
    assert events[0].chatbot_id == chatbot.pk and events[2].data["chatbot_id"] == chatbot.pk


def test_keys_issued_and_revoked_through_the_services_are_audited_once(chatbot):
    from apps.chatbots.services import api_key_create, api_key_revoke

    key, _ = api_key_create(chatbot=chatbot, name="service")
    assert api_key_revoke(key=key) is True
    assert api_key_revoke(key=key) is False
    assert actions() == ["apikey.created", "apikey.revoked"]


def test_revocation_in_the_admin_names_the_user(admin_client, chatbot):
    key, _ = make_api_key(chatbot)
    AuditEvent.objects.all().delete()
    # Whatever page the lead builds, a save made during a request by alice is hers.
    from django.test import RequestFactory

    from apps.audit.middleware import AuditActorMiddleware

    request = RequestFactory().post("/")
    from django.contrib.auth import get_user_model

    request.user = get_user_model().objects.get(username="alice")
    AuditActorMiddleware(lambda r: (ApiKey.objects.get(pk=key.pk).revoke(), None)[1])(request)
    event = AuditEvent.objects.get(action="apikey.revoked")
    assert event.actor.username == "alice" and event.actor_label == "alice"


def test_rule_and_channel_changes_are_audited_without_values(chatbot):
    rule = DetectionRule.objects.create(chatbot=chatbot, name="Refunds", keywords=["refund"], points=10)
    rule.points = 20
    rule.save()
    rule.save()  # no change: no event
    alert = AlertRule.objects.create(name="Errors", metric="error_rate", threshold=5)
    alert.state, alert.last_value = "alerting", 9.0  # the checker's own bookkeeping is not a change
    alert.save()
    channel = NotificationChannel.objects.create(name="Ops", kind="webhook",
                                                 config={"url": "https://hooks.example/x", "secret": "s3cr3t-value"})
    channel.config = {"url": "https://hooks.example/y", "secret": "n3w-s3cr3t"}
    channel.save()
    channel.delete()
    rule.delete()
    assert actions() == ["detectionrule.created", "detectionrule.updated", "alertrule.created",
                         "notificationchannel.created", "notificationchannel.updated", "notificationchannel.deleted",
                         "detectionrule.deleted"]
    updated = AuditEvent.objects.get(action="detectionrule.updated")
    assert updated.data == {"fields": ["points"]} and updated.actor_label == "system"
    assert "s3cr3t" not in str(list(AuditEvent.objects.values()))


def test_audit_log_is_read_only_and_filterable_in_the_admin(admin_client, chatbot):
    make_api_key(chatbot)
    url = reverse("admin:audit_auditevent_changelist")
    page = admin_client.get(url, {"action": "apikey.created"})
    assert page.status_code == 200 and b"apikey.created" in page.content
    event = AuditEvent.objects.get()
    assert admin_client.post(reverse("admin:audit_auditevent_delete", args=[event.pk]), {"post": "yes"}).status_code == 403
    assert admin_client.get(reverse("admin:audit_auditevent_add")).status_code == 403
