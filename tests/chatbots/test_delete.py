"""Deleting a chatbot removes its keys, rules and alert rules (the audit receivers must cope)."""

import pytest

from apps.alerts.models import AlertRule
from apps.audit.models import AuditEvent
from apps.chatbots.models import ApiKey, Chatbot
from apps.chatbots.services import api_key_create
from apps.risk.models import DetectionRule


@pytest.mark.django_db
def test_deleting_a_chatbot_in_the_admin_cascades(chatbot, other_chatbot, admin_client, alice):
    # Migrations seed global default rules and alert rules.
    seeded_rules = set(DetectionRule.objects.values_list("pk", flat=True))
    seeded_alert_rules = set(AlertRule.objects.values_list("pk", flat=True))
    key = api_key_create(chatbot=chatbot)[0]
    rule = DetectionRule.objects.create(chatbot=chatbot, name="x", keywords=["a"])
    alert_rule = AlertRule.objects.create(chatbot=chatbot, name="r", metric="error_rate", threshold=5)
    # Rows of another chatbot and global rules (chatbot empty) stay.
    kept_key = api_key_create(chatbot=other_chatbot)[0]
    kept_rules = {DetectionRule.objects.create(chatbot=other_chatbot, name="o", keywords=["b"]).pk,
                  DetectionRule.objects.create(chatbot=None, name="global", keywords=["c"]).pk}
    kept_alert_rules = {AlertRule.objects.create(chatbot=other_chatbot, name="o", metric="error_rate", threshold=5).pk,
                        AlertRule.objects.create(chatbot=None, name="all", metric="error_rate", threshold=5).pk}

    response = admin_client.post(f"/admin/chatbots/chatbot/{chatbot.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not Chatbot.objects.filter(pk=chatbot.pk).exists()
    assert list(ApiKey.objects.values_list("pk", flat=True)) == [kept_key.pk]
    assert set(DetectionRule.objects.values_list("pk", flat=True)) == seeded_rules | kept_rules
    assert set(AlertRule.objects.values_list("pk", flat=True)) == seeded_alert_rules | kept_alert_rules
    # Each removed configuration row is audited as deleted, by the admin user, naming the chatbot.
    deleted = {(e.action, e.object_id): e for e in AuditEvent.objects.filter(action__endswith=".deleted")}
    assert set(deleted) == {("apikey.deleted", str(key.pk)), ("detectionrule.deleted", str(rule.pk)),
                            ("alertrule.deleted", str(alert_rule.pk))}
    assert {(e.actor_id, e.data["chatbot_id"]) for e in deleted.values()} == {(alice.pk, chatbot.pk)}
