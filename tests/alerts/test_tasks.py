"""The Celery wiring: the beat entry names a real task on the alerts queue, retries are declared."""

from django.conf import settings

from apps.alerts import tasks
from apps.alerts.deliveries import DeliveryRetry
from apps.alerts.models import AlertRule


def test_beat_entry_runs_the_check(chatbot, make_rule):
    entry = settings.CELERY_BEAT_SCHEDULE["alerts-check-every-minute"]
    assert entry["task"] == tasks.alert_rules_check.name == "apps.alerts.tasks.alert_rules_check"
    assert entry["options"]["queue"] == tasks.alert_rules_check.queue == "alerts"
    rule = make_rule(chatbot=chatbot, metric="turn_volume", comparison="lt", threshold=1)

    assert tasks.alert_rules_check.delay().get() == 1

    rule.refresh_from_db()
    assert rule.state == "firing"
    assert AlertRule.objects.filter(last_checked_at__isnull=False).count() == 1


def test_delivery_task_retries_transient_failures_with_backoff():
    task = tasks.delivery_send
    assert task.autoretry_for == (DeliveryRetry,)
    assert task.retry_backoff and task.retry_jitter
    assert task.max_retries >= settings.ALERTS_DELIVERY_MAX_ATTEMPTS
    assert task.queue == "alerts"
