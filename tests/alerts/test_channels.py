"""Channels against a real local HTTP receiver: bodies, signatures, retries, stops, timeouts."""

import hashlib
import hmac
import re
import socket

import pytest
from django.core import mail
from django.core.exceptions import ValidationError

from apps.alerts.deliveries import channel_test_send, deliveries_create
from apps.alerts.models import Delivery, NotificationChannel
from apps.alerts.notifications import Notification
from apps.alerts.transports import signature_for
from tests.alerts.conftest import WEBHOOK_SECRET
from tests.support.webhook_receiver import ScriptedReply, WebhookReceiver

NOTIFICATION = Notification(
    kind="firing", title="Firing: Errors (Shop assistant)", text="Error rate > 5% over 60 min: now 12%.",
    severity="critical", rule={"id": 1, "name": "Errors"}, metric="error_rate", comparison=">",
    value=12.0, unit="%", threshold=5.0, window_minutes=60, sample_size=50,
    chatbot={"id": 1, "slug": "shop", "name": "Shop assistant"},
    links={"event": "https://chatmon.example/admin/alerts/alertevent/1/change/"},
)
PAYLOAD = NOTIFICATION.as_payload()


@pytest.fixture
def send(db, django_capture_on_commit_callbacks):
    """Write a delivery for `channel` and send it as the worker would (retries run eagerly)."""

    def run(channel: NotificationChannel, *, key: str = "k1") -> Delivery:
        with django_capture_on_commit_callbacks(execute=True):
            delivery = deliveries_create(channels=[channel], event=None, notification=NOTIFICATION, dedupe_key=key)[0]
        delivery.refresh_from_db()
        return delivery

    return run


def test_webhook_body_and_verifiable_signature(send, receiver, webhook_channel):
    delivery = send(webhook_channel)

    assert (delivery.status, delivery.attempts, delivery.response_code) == ("sent", 1, 200)
    request = receiver.requests[0]
    assert request.method == "POST" and request.path == "/hook"
    assert request.headers["content-type"] == "application/json"
    expected = hmac.new(WEBHOOK_SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["x-chatmon-signature"], expected)
    assert int(request.headers["x-chatmon-timestamp"]) > 0
    body = request.json()
    assert {k: body[k] for k in ("rule", "metric", "value", "threshold", "window_minutes", "chatbot", "links")} == {
        k: PAYLOAD[k] for k in ("rule", "metric", "value", "threshold", "window_minutes", "chatbot", "links")
    }
    assert body["delivery_id"] == delivery.pk
    # A receiver using another secret would reject it.
    assert signature_for(request.body, "another-secret-0123456789") != request.headers["x-chatmon-signature"]


def test_slack_message_shape(send, receiver):
    channel = NotificationChannel.objects.create(name="Slack", kind="slack", config={"url": receiver.url("/slack")})
    assert send(channel).status == "sent"
    body = receiver.requests[0].json()
    assert body["text"] == PAYLOAD["title"]
    attachment = body["attachments"][0]
    assert attachment["title_link"] == PAYLOAD["links"]["event"]
    assert {"title": "Value", "value": "12%", "short": True} in attachment["fields"]
    assert "x-chatmon-signature" not in receiver.requests[0].headers


def test_discord_message_shape(send, receiver):
    receiver.script(ScriptedReply(status=204, body=b""))  # Discord answers 204 No Content
    channel = NotificationChannel.objects.create(name="Discord", kind="discord", config={"url": receiver.url("/discord")})
    delivery = send(channel)
    assert (delivery.status, delivery.response_code) == ("sent", 204)
    body = receiver.requests[0].json()
    embed = body["embeds"][0]
    assert embed["title"] == PAYLOAD["title"]
    assert embed["url"] == PAYLOAD["links"]["event"]
    assert {"name": "Threshold", "value": "> 5%", "inline": True} in embed["fields"]
    assert body["allowed_mentions"] == {"parse": []}


def test_retry_on_500_then_success(send, receiver, webhook_channel):
    receiver.script(ScriptedReply(status=500, body=b"oops"), ScriptedReply(status=200))
    delivery = send(webhook_channel)
    assert (delivery.status, delivery.attempts, delivery.response_code, delivery.error) == ("sent", 2, 200, "")
    assert len(receiver.requests) == 2
    # The retry sends the very same body (same delivery id), so receivers can dedupe.
    assert receiver.requests[0].body == receiver.requests[1].body


def test_429_is_retried(send, receiver, webhook_channel):
    receiver.script(ScriptedReply(status=429, headers={"Retry-After": "1"}), ScriptedReply(status=200))
    assert send(webhook_channel).attempts == 2


def test_gives_up_after_max_attempts(send, receiver, webhook_channel):
    receiver.script(*[ScriptedReply(status=503)] * 5)
    delivery = send(webhook_channel)
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("failed", 3, 503)
    assert delivery.error.startswith("HTTP 503")
    assert len(receiver.requests) == 3


def test_stop_on_404(send, receiver, webhook_channel):
    receiver.script(ScriptedReply(status=404, body=b"no such hook"))
    delivery = send(webhook_channel)
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("failed", 1, 404)
    assert delivery.error == "HTTP 404 Not Found"  # the status only: "no such hook" is never echoed
    assert len(receiver.requests) == 1


def test_timeout_is_retried_then_succeeds(send, receiver, webhook_channel, settings):
    settings.ALERTS_HTTP_TIMEOUT_SECONDS = 0.2
    receiver.script(ScriptedReply(status=200, delay=1.0), ScriptedReply(status=200))
    delivery = send(webhook_channel)
    assert (delivery.status, delivery.attempts) == ("sent", 2)


def test_timeout_every_time_fails(send, receiver, webhook_channel, settings):
    settings.ALERTS_HTTP_TIMEOUT_SECONDS = 0.2
    settings.ALERTS_DELIVERY_MAX_ATTEMPTS = 2
    receiver.script(*[ScriptedReply(delay=0.6)] * 2)
    delivery = send(webhook_channel)
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("failed", 2, None)
    assert delivery.error == "no answer (connection failed or timed out after 0.2 s)"


def test_connection_refused_is_transient(send, db, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    channel = NotificationChannel.objects.create(
        name="Down", kind="webhook", config={"url": f"http://127.0.0.1:{port}/hook", "secret": WEBHOOK_SECRET}
    )
    delivery = send(channel)
    assert (delivery.status, delivery.attempts) == ("failed", 3)
    # The same text as a timeout: the error does not tell a closed port from a filtered one.
    assert delivery.error == "no answer (connection failed or timed out after 0.5 s)"


def test_redirects_are_never_followed(send, receiver, webhook_channel):
    with WebhookReceiver() as elsewhere:
        receiver.script(ScriptedReply(status=302, headers={"Location": elsewhere.url("/stolen")}))
        delivery = send(webhook_channel)
        assert (delivery.status, delivery.attempts, delivery.response_code) == ("failed", 1, 302)
        assert "redirects are not followed" in delivery.error
        assert elsewhere.requests == []


def test_email_text_and_html(send, db):
    channel = NotificationChannel.objects.create(name="On-call", kind="email", config={"to": ["oncall@example.com"]})
    delivery = send(channel)
    assert delivery.status == "sent"
    [message] = mail.outbox
    assert message.to == ["oncall@example.com"]
    assert message.subject == f"[chatmon] {PAYLOAD['title']}"
    assert "Value: 12%" in message.body
    assert PAYLOAD["links"]["event"] in message.body
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html"
    assert f'href="{PAYLOAD["links"]["event"]}"' in html


def test_same_dedupe_key_sends_once(send, receiver, webhook_channel):
    send(webhook_channel, key="event:1:firing")
    again = deliveries_create(channels=[webhook_channel], event=None, notification=NOTIFICATION,
                              dedupe_key="event:1:firing")
    assert again == []
    assert Delivery.objects.count() == 1
    assert len(receiver.requests) == 1


def test_disabled_channel_is_not_sent_to(send, receiver, webhook_channel):
    webhook_channel.is_enabled = False
    webhook_channel.save()
    delivery = send(webhook_channel)
    assert (delivery.status, delivery.error) == ("failed", "channel is disabled")
    assert receiver.requests == []


def test_test_notification_goes_through_a_delivery(receiver, webhook_channel, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        delivery = channel_test_send(channel_id=webhook_channel.pk)
    delivery.refresh_from_db()
    assert (delivery.kind, delivery.status) == ("test", "sent")
    assert receiver.requests[0].json()["kind"] == "test"


def test_test_notification_is_retried_after_a_transient_failure(
    receiver, webhook_channel, django_capture_on_commit_callbacks
):
    receiver.script(ScriptedReply(status=502))
    with django_capture_on_commit_callbacks(execute=True):
        delivery = channel_test_send(channel_id=webhook_channel.pk)
        assert (delivery.status, delivery.attempts, delivery.response_code) == ("retrying", 1, 502)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("sent", 2)


@pytest.mark.parametrize(
    ("kind", "config", "message"),
    [
        ("webhook", {"url": "https://hooks.example/x"}, "secret"),
        ("webhook", {"url": "ftp://hooks.example/x", "secret": WEBHOOK_SECRET}, "http(s)"),
        ("slack", {}, "url"),
        ("email", {"to": ["not-an-address"]}, "email addresses"),
    ],
)
def test_channel_config_is_validated(db, kind, config, message):
    channel = NotificationChannel(name="x", kind=kind, config=config)
    with pytest.raises(ValidationError, match=re.escape(message)):
        channel.full_clean()


def test_log_channel_writes_the_notification_to_the_log_and_sends_nothing(send, caplog):
    channel = NotificationChannel(name="Demo log", kind="log", config={})
    channel.full_clean()  # no config needed
    channel.save()
    with caplog.at_level("WARNING", logger="chatmon.alerts.log_channel"):
        delivery = send(channel)
    assert (delivery.status, delivery.attempts, delivery.error) == ("sent", 1, "")
    logged = [r.getMessage() for r in caplog.records if r.name == "chatmon.alerts.log_channel"]
    assert len(logged) == 1
    assert "Firing: Errors (Shop assistant)" in logged[0] and "Threshold: > 5%" in logged[0]
    assert f"delivery {delivery.pk}" in logged[0]
    assert mail.outbox == []
