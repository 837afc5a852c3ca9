"""The alerts admin as a logged-in superuser: rules, events (acknowledge, timeline), channels, deliveries."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.alerts.models import AlertEvent, AlertRule, Delivery, NotificationChannel


def _count_queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


@pytest.fixture
def firing_rules(chatbot, make_rule, run_check, now, webhook_channel):
    """Three firing rules (one per chatbot scope), checked once, with a delivery each."""
    rules = [
        make_rule(name=f"Silence {i}", chatbot=chatbot if i % 2 else None, metric="turn_volume", comparison="lt",
                  threshold=1, channels=[webhook_channel])
        for i in range(3)
    ]
    run_check(now)
    return rules


def test_rule_list_shows_last_value_time_and_error(admin_client, firing_rules, make_rule, chatbot, run_check, now):
    broken = make_rule(name="Broken", chatbot=chatbot)
    AlertRule.objects.filter(pk=broken.pk).update(metric="gone")
    run_check(now)

    response = admin_client.get(reverse("admin:alerts_alertrule_changelist"))
    html = response.content.decode()
    assert "Silence 1" in html
    assert "Turn volume (count) &lt; 1 over 10 min" in html
    assert "unknown metric" in html
    assert "Firing" in html and "Error" in html


def test_rule_list_query_count_does_not_grow_with_rules(admin_client, firing_rules, make_rule, chatbot):
    url = reverse("admin:alerts_alertrule_changelist")
    few = _count_queries(admin_client, url)
    for i in range(10):
        make_rule(name=f"more {i}", chatbot=chatbot)
    assert _count_queries(admin_client, url) == few


def test_rule_change_page_and_check_now(admin_client, firing_rules):
    rule = firing_rules[0]
    response = admin_client.get(reverse("admin:alerts_alertrule_change", args=[rule.pk]))
    assert response.status_code == 200
    assert "Last check" in response.content.decode()

    response = admin_client.post(
        reverse("admin:alerts_alertrule_changelist"),
        {"action": "check_now", "_selected_action": [rule.pk]}, follow=True,
    )
    assert f"{rule.name}: 0 → firing" in response.content.decode()


def test_event_list_and_timeline(admin_client, firing_rules, receiver):
    url = reverse("admin:alerts_alertevent_changelist")
    few = _count_queries(admin_client, url)
    assert few <= 12
    event = AlertEvent.objects.first()
    response = admin_client.get(reverse("admin:alerts_alertevent_change", args=[event.pk]))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Fired: Turn volume (count) &lt; 1 over 10 min" in html
    assert "Alert firing → Ops webhook: Sent" in html  # the timeline
    assert "Deliveries" in html or "deliveries" in html  # the inline


def test_event_list_query_count_does_not_grow(admin_client, firing_rules, make_rule, run_check, now, chatbot):
    url = reverse("admin:alerts_alertevent_changelist")
    few = _count_queries(admin_client, url)
    for i in range(5):
        make_rule(name=f"more {i}", chatbot=chatbot, metric="turn_volume", comparison="lt", threshold=1)
    run_check(now + timedelta(minutes=1))
    assert AlertEvent.objects.count() == 8
    assert _count_queries(admin_client, url) == few


def test_acknowledge_action(admin_client, firing_rules, alice, run_check, now, receiver):
    event = AlertEvent.objects.first()
    response = admin_client.post(
        reverse("admin:alerts_alertevent_changelist"),
        {"action": "acknowledge", "_selected_action": [event.pk]}, follow=True,
    )
    assert "Acknowledged 1 event(s)." in response.content.decode()
    event.refresh_from_db()
    assert (event.status, event.acknowledged_by) == ("acknowledged", alice)
    assert event.acknowledged_at is not None
    # Acknowledged events are not re-notified.
    before = len(receiver.requests)
    run_check(now + timedelta(hours=3))
    assert len(receiver.requests) == before + 2  # the two other rules, not the acknowledged one


def test_events_cannot_be_added_by_hand(admin_client, db):
    assert admin_client.get(reverse("admin:alerts_alertevent_add")).status_code == 403


def test_send_test_notification_action(admin_client, receiver, webhook_channel):
    response = admin_client.post(
        reverse("admin:alerts_notificationchannel_changelist"),
        {"action": "send_test_notification", "_selected_action": [webhook_channel.pk]}, follow=True,
    )
    assert "Test notification sent to 1 channel(s)." in response.content.decode()
    assert receiver.requests[0].json()["kind"] == "test"
    assert Delivery.objects.get().kind == "test"


def test_send_test_notification_reports_failures(admin_client, receiver, webhook_channel):
    from tests.support.webhook_receiver import ScriptedReply

    receiver.script(ScriptedReply(status=410, body=b"gone"))
    response = admin_client.post(
        reverse("admin:alerts_notificationchannel_changelist"),
        {"action": "send_test_notification", "_selected_action": [webhook_channel.pk]}, follow=True,
    )
    assert "Ops webhook: HTTP 410 Gone" in response.content.decode()


def test_channel_form_rejects_a_bad_config(admin_client, db):
    response = admin_client.post(reverse("admin:alerts_notificationchannel_add"), {
        "name": "Hook", "kind": "webhook", "config": '{"url": "https://hooks.example/x"}', "is_enabled": "on",
    })
    assert response.status_code == 200
    assert "secret" in response.content.decode()
    assert not NotificationChannel.objects.exists()


def test_deliveries_are_read_only(admin_client, firing_rules):
    delivery = Delivery.objects.first()
    assert admin_client.get(reverse("admin:alerts_delivery_add")).status_code == 403
    url = reverse("admin:alerts_delivery_change", args=[delivery.pk])
    assert admin_client.get(url).status_code == 200
    assert admin_client.post(url, {"status": "failed"}).status_code == 403
    assert _count_queries(admin_client, reverse("admin:alerts_delivery_changelist")) <= 10


def test_resend_failed_delivery(admin_client, receiver, webhook_channel, django_capture_on_commit_callbacks):
    from apps.alerts.deliveries import channel_test_send
    from tests.support.webhook_receiver import ScriptedReply

    receiver.script(ScriptedReply(status=404))
    failed = channel_test_send(channel_id=webhook_channel.pk)
    assert failed.status == "failed"
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            reverse("admin:alerts_delivery_changelist"), {"action": "resend", "_selected_action": [failed.pk]}
        )
    assert list(Delivery.objects.order_by("id").values_list("status", flat=True)) == ["failed", "sent"]



def test_risk_alert_link_opens_the_filtered_event_list(admin_client, chatbot, webhook_channel, receiver,
                                                      django_capture_on_commit_callbacks):
    from apps.alerts.risk_alerts import risk_turns_notify
    from tests.factories import make_turn

    chatbot.alert_on_risk = True
    chatbot.save()
    webhook_channel.chatbots.add(chatbot)
    turn = make_turn(chatbot=chatbot, risk_score=90, is_flagged=True)
    with django_capture_on_commit_callbacks(execute=True):
        risk_turns_notify(turn_ids=[turn.pk])

    link = receiver.requests[0].json()["links"]["turns"]
    response = admin_client.get(link.removeprefix("https://chatmon.example"))
    assert response.status_code == 200
    assert f"Risky turn {turn.pk}" in response.content.decode()
