"""Notification channels cannot reach internal addresses or read internal answers (SSRF).

Without OUTBOUND_ALLOWED_NETWORKS every non-public address is refused at save time (the channel
form) and at send time (DNS may have changed). With the local receiver allowed, what comes back
is a status code and a standard phrase, never the receiver's body.
"""

import json

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from apps.alerts.deliveries import channel_test_send
from apps.alerts.models import Delivery, NotificationChannel
from apps.core import outbound
from tests.alerts.conftest import WEBHOOK_SECRET
from tests.support.webhook_receiver import ScriptedReply, WebhookReceiver

INTERNAL_ANSWER = b'{"AccessKeyId": "ASIA-INTERNAL-ONLY", "Token": "metadata-secret-7f3a"}'

INTERNAL_URLS = [
    "http://127.0.0.1:8000/admin/",
    "http://10.1.2.3/",
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://[::1]:6379/",
    "http://localhost:5432/",
    "http://2130706433/",  # 127.0.0.1 as one number
    "http://[::ffff:169.254.169.254]/",
    "http://192.168.0.1/",
    "http://0.0.0.0:8000/",
]


@pytest.fixture(autouse=True)
def _no_allowlist(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = []


@pytest.fixture
def chatbot_admin_client(client, django_user_model):
    """A "Chatbot admin" (manages notification channels) who is not a superuser."""
    user = django_user_model.objects.create_user("dana", "dana@example.com", "password", is_staff=True)
    user.groups.add(Group.objects.get(name="Chatbot admin"))
    client.force_login(user)
    return client


def _add_channel(client, url: str):
    return client.post(reverse("admin:alerts_notificationchannel_add"), {
        "name": "Internal", "kind": "webhook", "is_enabled": "on",
        "config": json.dumps({"url": url, "secret": WEBHOOK_SECRET}),
    })


@pytest.mark.parametrize("url", INTERNAL_URLS)
def test_channel_form_refuses_internal_addresses(chatbot_admin_client, url):
    response = _add_channel(chatbot_admin_client, url)
    assert response.status_code == 200
    assert "is not a public address" in response.content.decode()
    assert not NotificationChannel.objects.exists()


@pytest.mark.parametrize("kind", ["slack", "discord"])
def test_slack_and_discord_urls_are_checked_too(db, kind):
    channel = NotificationChannel(name="x", kind=kind, config={"url": "http://169.254.169.254/"})
    with pytest.raises(Exception, match="is not a public address"):
        channel.full_clean()


@pytest.mark.parametrize("url", INTERNAL_URLS)
def test_send_refuses_internal_addresses_saved_before_the_check(db, url):
    # A channel saved before this check existed (or whose DNS changed since) is refused when sent.
    channel = NotificationChannel.objects.create(
        name="Old", kind="webhook", config={"url": url, "secret": WEBHOOK_SECRET}
    )
    delivery = channel_test_send(channel_id=channel.pk)
    assert delivery.status == "failed" and delivery.attempts == 1
    assert delivery.error.startswith('bad channel config: "url": host') or delivery.error.startswith(
        "destination refused"
    )
    assert "is not a public address" in delivery.error


def test_loopback_receiver_gets_nothing_without_the_allowlist(chatbot_admin_client):
    with WebhookReceiver() as internal:
        internal.script(ScriptedReply(status=200, body=INTERNAL_ANSWER))
        channel = NotificationChannel.objects.create(
            name="Internal", kind="webhook", config={"url": internal.url("/"), "secret": WEBHOOK_SECRET}
        )
        response = chatbot_admin_client.post(
            reverse("admin:alerts_notificationchannel_changelist"),
            {"action": "send_test_notification", "_selected_action": [channel.pk]}, follow=True,
        )
        assert internal.requests == []
    page = response.content.decode()
    assert "is not a public address" in page
    assert "metadata-secret" not in page


@pytest.mark.parametrize("status", [200, 404, 500, 302])
def test_send_test_as_chatbot_admin_never_shows_the_answer(chatbot_admin_client, settings, status):
    """Even towards an allowed receiver, the admin and Delivery.error show the status only."""
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    with WebhookReceiver() as internal:
        internal.script(ScriptedReply(status=status, body=INTERNAL_ANSWER, headers={"Location": "http://x/"}))
        response = _add_channel(chatbot_admin_client, internal.url("/"))
        assert response.status_code == 302  # saved: the network is allowed
        channel = NotificationChannel.objects.get()
        response = chatbot_admin_client.post(
            reverse("admin:alerts_notificationchannel_changelist"),
            {"action": "send_test_notification", "_selected_action": [channel.pk]}, follow=True,
        )
        assert len(internal.requests) == 1
    page = response.content.decode()
    delivery = Delivery.objects.get()
    assert "ASIA-INTERNAL-ONLY" not in page and "metadata-secret" not in page
    assert "ASIA-INTERNAL-ONLY" not in delivery.error and "metadata-secret" not in delivery.error
    assert delivery.response_code == status
    if status >= 300:
        assert delivery.error.startswith(f"HTTP {status} ")


def test_redirect_to_an_internal_address_is_not_followed(db, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    with WebhookReceiver() as public, WebhookReceiver() as internal:
        public.script(ScriptedReply(status=307, headers={"Location": internal.url("/steal")}))
        channel = NotificationChannel.objects.create(
            name="Hook", kind="webhook", config={"url": public.url("/hook"), "secret": WEBHOOK_SECRET}
        )
        delivery = channel_test_send(channel_id=channel.pk)
        assert internal.requests == [] and len(public.requests) == 1
    assert delivery.status == "failed" and "redirects are not followed" in delivery.error


def test_connects_to_the_checked_address_with_the_original_host_header(db, settings, monkeypatch):
    """The name is resolved once, by the check; the connection goes to that address."""
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    lookups = []

    def resolve(host, port):
        lookups.append(host)
        return ["127.0.0.1"]

    monkeypatch.setattr(outbound, "_resolve", resolve)
    with WebhookReceiver() as receiver:
        port = receiver.url().rsplit(":", 1)[1].split("/")[0]
        # hooks.chatmon.invalid resolves nowhere but through the check: the request only arrives
        # if the client connected to the address the check returned.
        code = outbound.post(
            f"http://hooks.chatmon.invalid:{port}/hook", content=b"{}", headers={}, timeout=2
        )
        assert code == 200
        assert receiver.requests[0].headers["host"] == f"hooks.chatmon.invalid:{port}"
    assert lookups == ["hooks.chatmon.invalid"]


def test_dns_rebinding_after_save_is_refused_at_send_time(chatbot_admin_client, monkeypatch):
    answers = {"hooks.chatmon.invalid": ["93.184.216.34"]}
    monkeypatch.setattr(outbound, "_resolve", lambda host, port: answers[host])
    response = _add_channel(chatbot_admin_client, "https://hooks.chatmon.invalid/x")
    assert response.status_code == 302
    answers["hooks.chatmon.invalid"] = ["169.254.169.254"]  # the attacker's DNS changes its answer
    delivery = channel_test_send(channel_id=NotificationChannel.objects.get().pk)
    assert delivery.status == "failed" and "is not a public address" in delivery.error


def test_a_name_with_one_internal_address_among_public_ones_is_refused(db, monkeypatch):
    monkeypatch.setattr(outbound, "_resolve", lambda host, port: ["93.184.216.34", "10.0.0.5"])
    with pytest.raises(outbound.OutboundRefused):
        outbound.destination_check("https://hooks.chatmon.invalid/")


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.0.0.1", "172.16.0.1", "192.168.1.1", "100.64.0.1", "169.254.169.254", "0.0.0.0",
     "224.0.0.1", "240.0.0.1", "255.255.255.255", "::1", "::", "fe80::1", "fc00::1", "ff02::1",
     "::ffff:127.0.0.1", "::ffff:10.0.0.1", "64:ff9b::a9fe:a9fe", "2002:7f00:1::1", "2001:db8::1"],
)
def test_non_public_addresses_are_refused(settings, address):
    import ipaddress

    settings.OUTBOUND_ALLOWED_NETWORKS = []
    assert not outbound.address_allowed(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(settings, address):
    import ipaddress

    assert outbound.address_allowed(ipaddress.ip_address(address))


def test_the_allowlist_opens_only_its_ranges(settings):
    import ipaddress

    settings.OUTBOUND_ALLOWED_NETWORKS = ["10.20.0.0/16"]
    assert outbound.address_allowed(ipaddress.ip_address("10.20.3.4"))
    assert outbound.address_allowed(ipaddress.ip_address("::ffff:10.20.3.4"))
    assert not outbound.address_allowed(ipaddress.ip_address("10.21.0.1"))
    assert not outbound.address_allowed(ipaddress.ip_address("127.0.0.1"))
