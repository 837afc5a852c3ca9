"""The notification document each kind stores and sends: the same keys webhook receivers have
always seen, sent in one order (PostgreSQL's jsonb does not keep the stored order); reading it
back gives the same notification."""

from datetime import timedelta

from apps.alerts.deliveries import channel_test_send
from apps.alerts.models import Delivery
from apps.alerts.notifications import Notification
from apps.alerts.risk_alerts import risk_turns_notify
from tests.factories import make_turn

HEAD = ["kind", "title", "text", "severity", "rule", "metric"]
RULE_KEYS = [*HEAD, "metric_label", "comparison", "value", "unit", "threshold", "window_minutes", "sample_size",
             "chatbot", "event", "links"]
TEST_KEYS = [*HEAD, "value", "threshold", "window_minutes", "sample_size", "chatbot", "event", "links"]
RISK_KEYS = [*HEAD, "value", "threshold", "window_minutes", "sample_size", "chatbot", "count", "turns", "links"]


def _round_trips(delivery: Delivery) -> bool:
    return Notification.from_payload(delivery.payload).as_payload() == delivery.payload


def test_rule_notification_document(chatbot, make_rule, run_check, now, receiver, webhook_channel):
    make_rule(chatbot=chatbot, metric="turn_volume", comparison="lt", threshold=1, channels=[webhook_channel])
    run_check(now)
    delivery = Delivery.objects.get()
    assert sorted(delivery.payload) == sorted(RULE_KEYS)
    assert delivery.payload["kind"] == delivery.kind == "firing"
    assert list(receiver.requests[0].json()) == [*RULE_KEYS, "delivery_id"]
    assert _round_trips(delivery)


def test_risk_notification_document(chatbot, webhook_channel, receiver, django_capture_on_commit_callbacks, now):
    chatbot.alert_on_risk = True
    chatbot.save()
    webhook_channel.chatbots.add(chatbot)
    turns = [make_turn(chatbot=chatbot, risk_score=90, is_flagged=True, risk_reasons=["pii"]) for _ in range(2)]
    with django_capture_on_commit_callbacks(execute=True):
        risk_turns_notify(turn_ids=[turns[0].pk], now=now - timedelta(minutes=30))
        risk_turns_notify(turn_ids=[turns[1].pk], now=now)
    for delivery in Delivery.objects.order_by("id"):
        assert sorted(delivery.payload) == sorted(RISK_KEYS)
        assert delivery.payload["turns"][0]["reasons"] == ["pii"]
        assert _round_trips(delivery)


def test_channel_test_document(webhook_channel, receiver):
    delivery = channel_test_send(channel_id=webhook_channel.pk)
    assert delivery.status == "sent"
    assert sorted(delivery.payload) == sorted(TEST_KEYS)
    assert delivery.payload["event"] is None and delivery.payload["rule"] is None
    assert _round_trips(delivery)
