"""Notification channels: a small base class plus a registry from kind to class.

After Healthchecks' hc/api/transports.py: `send` returns the receiver's status code or raises
`TransportError(message, permanent=…)`. Transient failures (5xx, 429, timeouts, connection
errors, SMTP hiccups) are retried by the delivery task with backoff; permanent ones (other
4xx, a redirect, a refused recipient, a bad config) stop at once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import smtplib
import time
from http import HTTPStatus
from typing import Any, ClassVar
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string

from apps.core import outbound

from .choices import ChannelKind
from .notifications import Notification

SIGNATURE_HEADER = "X-Chatmon-Signature"
TIMESTAMP_HEADER = "X-Chatmon-Timestamp"
USER_AGENT = "chatmon-alerts/1"
log_channel_logger = logging.getLogger("chatmon.alerts.log_channel")

# Colours for Slack attachments / Discord embeds by notification kind and severity.
_COLOURS = {"resolved": 0x2EB67D, "test": 0x4A90D9, "info": 0x4A90D9, "warning": 0xECB22E, "critical": 0xE01E5A}


class TransportError(Exception):
    def __init__(self, message: str, *, permanent: bool = False, response_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.response_code = response_code


def _reason_phrase(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return ""


def signature_for(body: bytes, secret: str) -> str:
    """Hex HMAC-SHA256 of the exact request body: what receivers recompute to verify."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Transport:
    kind: ClassVar[str]

    def validate_config(self, config: dict[str, Any]) -> None:
        """Raise ValueError with a message for the admin form when the config is unusable."""

    def send(self, *, config: dict[str, Any], notification: Notification, delivery_id: int | None) -> int | None:
        raise NotImplementedError


def _colour(notification: Notification) -> int:
    return _COLOURS.get(notification.kind) or _COLOURS.get(notification.severity, _COLOURS["warning"])


class HttpTransport(Transport):
    """POSTs JSON; never follows redirects (a 3xx is a misconfigured URL, not a place to go)."""

    def validate_config(self, config: dict[str, Any]) -> None:
        url = config.get("url")
        if not isinstance(url, str) or not url:
            raise ValueError('needs "url"')
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError('"url" must be an http(s) URL')
        # At save time too: the form refuses internal addresses (send time checks again).
        try:
            outbound.destination_check(url)
        except outbound.OutboundRefused as exc:
            raise ValueError(f'"url": {exc}') from exc

    def body(self, notification: Notification, delivery_id: int | None) -> dict[str, Any]:
        raise NotImplementedError

    def headers(self, config: dict[str, Any], content: bytes, timestamp: int) -> dict[str, str]:
        return {}

    def send(self, *, config: dict[str, Any], notification: Notification, delivery_id: int | None) -> int | None:
        try:
            self.validate_config(config)
        except ValueError as exc:
            raise TransportError(f"bad channel config: {exc}", permanent=True) from exc
        content = json.dumps(self.body(notification, delivery_id), separators=(",", ":"), default=str).encode()
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            **self.headers(config, content, timestamp),
        }
        timeout = settings.ALERTS_HTTP_TIMEOUT_SECONDS
        try:
            code = outbound.post(config["url"], content=content, headers=headers, timeout=timeout)
        except outbound.OutboundRefused as exc:
            raise TransportError(f"destination refused: {exc}", permanent=True) from exc
        except outbound.OutboundUnreachable as exc:
            # One text for refused, reset, TLS failure and timeout: no port scanning through alerts.
            raise TransportError(f"no answer (connection failed or timed out after {timeout:g} s)") from exc
        if code < 300:
            return code
        # The status code and its standard phrase only: the receiver's body is never read or shown.
        message = f"HTTP {code} {_reason_phrase(code)}".rstrip()
        if code < 400:
            raise TransportError(f"{message} (redirects are not followed; fix the URL)", permanent=True, response_code=code)
        transient = code == 429 or code >= 500
        raise TransportError(message, permanent=not transient, response_code=code)


class SlackTransport(HttpTransport):
    kind = ChannelKind.SLACK

    def body(self, notification: Notification, delivery_id: int | None) -> dict[str, Any]:
        links = notification.links
        link = links.get("event") or links.get("rule") or links.get("turns")
        title = f"<{link}|{notification.title}>" if link else notification.title
        return {
            "text": notification.title,  # the notification preview
            "attachments": [
                {
                    "color": f"#{_colour(notification):06x}",
                    "mrkdwn_in": ["text"],
                    "title": notification.title,
                    "title_link": link,
                    "text": f"{title}\n{notification.text}",
                    "fields": [
                        {"title": name, "value": value, "short": True} for name, value in _fields(notification)
                    ],
                }
            ],
        }


class DiscordTransport(HttpTransport):
    kind = ChannelKind.DISCORD

    def body(self, notification: Notification, delivery_id: int | None) -> dict[str, Any]:
        links = notification.links
        embed: dict[str, Any] = {
            "title": notification.title[:256],
            "description": notification.text[:4000],
            "color": _colour(notification),
            "fields": [{"name": name, "value": value, "inline": True} for name, value in _fields(notification)][:25],
        }
        link = links.get("event") or links.get("rule") or links.get("turns")
        if link:
            embed["url"] = link
        # No @everyone/@here pings from alert text.
        return {"content": notification.title[:2000], "embeds": [embed], "allowed_mentions": {"parse": []}}


class WebhookTransport(HttpTransport):
    kind = ChannelKind.WEBHOOK

    def validate_config(self, config: dict[str, Any]) -> None:
        secret = config.get("secret")
        if not isinstance(secret, str) or len(secret) < 16:
            raise ValueError('needs "secret" (at least 16 characters) to sign requests')
        super().validate_config(config)  # last: it resolves the URL's host

    def body(self, notification: Notification, delivery_id: int | None) -> dict[str, Any]:
        return {**notification.as_payload(), "delivery_id": delivery_id}

    def headers(self, config: dict[str, Any], content: bytes, timestamp: int) -> dict[str, str]:
        return {SIGNATURE_HEADER: signature_for(content, config["secret"]), TIMESTAMP_HEADER: str(timestamp)}


class EmailTransport(Transport):
    kind = ChannelKind.EMAIL

    def validate_config(self, config: dict[str, Any]) -> None:
        recipients = config.get("to")
        if isinstance(recipients, str):
            recipients = [recipients]
        if not recipients or not all(isinstance(r, str) and "@" in r for r in recipients):
            raise ValueError('needs "to": a list of email addresses')

    def send(self, *, config: dict[str, Any], notification: Notification, delivery_id: int | None) -> int | None:
        try:
            self.validate_config(config)
        except ValueError as exc:
            raise TransportError(f"bad channel config: {exc}", permanent=True) from exc
        recipients = config["to"] if isinstance(config["to"], list) else [config["to"]]
        context = {"notification": notification, "fields": _fields(notification)}
        message = EmailMultiAlternatives(
            subject=f"[chatmon] {notification.title}"[:250],
            body=render_to_string("alerts/email/notification.txt", context),
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=recipients,
        )
        message.attach_alternative(render_to_string("alerts/email/notification.html", context), "text/html")
        try:
            message.send(fail_silently=False)
        except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused) as exc:
            raise TransportError(f"refused: {exc}", permanent=True) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise TransportError(f"email not sent: {exc.__class__.__name__}: {exc}") from exc
        return None


class LogTransport(Transport):
    """Writes the notification to chatmon's own log (logger `chatmon.alerts.log_channel`) and
    sends nothing anywhere: for the demo and tests, or to try rules before a real channel exists.
    Logged at WARNING so it shows at the default log level."""

    kind = ChannelKind.LOG

    def send(self, *, config: dict[str, Any], notification: Notification, delivery_id: int | None) -> int | None:
        facts = ", ".join(f"{name}: {value}" for name, value in _fields(notification))
        log_channel_logger.warning(
            "[%s] %s — %s (%s; delivery %s)", notification.kind, notification.title, notification.text, facts, delivery_id,
            extra={"delivery_id": delivery_id, "notification_kind": notification.kind},
        )
        return None


def _fields(notification: Notification) -> list[tuple[str, str]]:
    """The short facts every channel shows under the title."""
    fields: list[tuple[str, str]] = []
    if notification.value is not None:
        fields.append(("Value", f"{notification.value:.4g}{notification.unit}"))
    if notification.threshold is not None:
        fields.append(("Threshold", f"{notification.comparison} {notification.threshold:g}{notification.unit}"))
    if notification.window_minutes:
        fields.append(("Window", f"{notification.window_minutes} min"))
    if notification.sample_size is not None:
        fields.append(("Turns", str(notification.sample_size)))
    chatbot = notification.chatbot
    fields.append(("Chatbot", chatbot["name"] if chatbot else "All chatbots"))
    if notification.severity:
        fields.append(("Severity", str(notification.severity).capitalize()))
    return fields


TRANSPORTS: dict[str, type[Transport]] = {
    cls.kind: cls for cls in (SlackTransport, DiscordTransport, WebhookTransport, EmailTransport, LogTransport)
}


def transport_for(kind: str) -> Transport:
    try:
        return TRANSPORTS[kind]()
    except KeyError:
        raise ValueError(f"unknown channel kind {kind!r}") from None
