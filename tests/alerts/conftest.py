"""Alert fixtures: a real local webhook receiver, rules and channels, a check runner."""

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
from django.utils import timezone

from apps.alerts.models import AlertRule, NotificationChannel
from apps.alerts.rules import RuleCheckOutcome, alert_rules_check
from tests.support.webhook_receiver import WebhookReceiver

WEBHOOK_SECRET = "s3cret-for-tests-0123456789"


@pytest.fixture(autouse=True)
def _alert_settings(settings):
    # Short timeouts and few attempts keep failure tests quick; retries run eagerly in tests.
    settings.ALERTS_HTTP_TIMEOUT_SECONDS = 0.5
    settings.ALERTS_DELIVERY_MAX_ATTEMPTS = 3
    settings.ALERTS_RISK_DIGEST_MINUTES = 10
    settings.SITE_URL = "https://chatmon.example"


@pytest.fixture
def receiver(settings) -> Iterator[WebhookReceiver]:
    # The receiver listens on loopback, which outbound requests refuse unless allowed.
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    with WebhookReceiver() as server:
        yield server


@pytest.fixture
def webhook_channel(db, receiver) -> NotificationChannel:
    return NotificationChannel.objects.create(
        name="Ops webhook", kind="webhook", config={"url": receiver.url("/hook"), "secret": WEBHOOK_SECRET}
    )


@pytest.fixture
def now() -> datetime:
    return timezone.now().replace(microsecond=0)


@pytest.fixture
def make_rule(db) -> Callable[..., AlertRule]:
    def make(**fields: Any) -> AlertRule:
        channels = fields.pop("channels", [])
        defaults: dict[str, Any] = {
            "name": f"rule {AlertRule.objects.count() + 1}", "metric": "error_rate", "comparison": "gt",
            "threshold": 5, "window_minutes": 10, "min_samples": 1, "renotify_minutes": 60,
        }
        defaults.update(fields)
        rule = AlertRule.objects.create(**defaults)
        rule.channels.set(channels)
        return rule

    return make


@pytest.fixture
def run_check(django_capture_on_commit_callbacks) -> Callable[..., list[RuleCheckOutcome]]:
    """One full check at `at`, with after-commit sends executed (as they are outside tests)."""

    def run(at: datetime) -> list[RuleCheckOutcome]:
        with django_capture_on_commit_callbacks(execute=True):
            return alert_rules_check(now=at)

    return run
