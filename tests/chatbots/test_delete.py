"""Deleting a chatbot removes its keys, rules and alert rules (the audit receivers must cope)."""

import pytest

from apps.alerts.models import AlertRule
from apps.chatbots.models import Chatbot
from apps.chatbots.services import api_key_create
from apps.risk.models import DetectionRule


@pytest.mark.django_db
def test_deleting_a_chatbot_in_the_admin_cascades(chatbot, admin_client):
    api_key_create(chatbot=chatbot)
    DetectionRule.objects.create(chatbot=chatbot, name="x", keywords=["a"])
    AlertRule.objects.create(chatbot=chatbot, name="r", metric="error_rate", threshold=5)
    response = admin_client.post(f"/admin/chatbots/chatbot/{chatbot.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Chatbot.objects.filter(pk=chatbot.pk).exists()
