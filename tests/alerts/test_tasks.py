"""The Celery tasks, run as a worker runs them: the beat entry's task does the check, and the
delivery task retries transient failures (the declared exception) but not permanent ones."""

import pytest
from django.conf import settings

from apps.alerts import tasks
from apps.alerts.deliveries import deliveries_create
from apps.alerts.models import AlertRule, Delivery
from apps.alerts.notifications import Notification
from chatmon.celery import app as celery_app
from tests.support.webhook_receiver import ScriptedReply


def test_beat_entry_runs_the_check(chatbot, make_rule):
    entry = settings.CELERY_BEAT_SCHEDULE["alerts-check-every-minute"]
    assert entry["options"]["queue"] == "alerts"
    rule = make_rule(chatbot=chatbot, metric="turn_volume", comparison="lt", threshold=1)

    # The name beat sends is a registered task, and running it checks the rules.
    assert celery_app.tasks[entry["task"]].apply().get() == 1

    rule.refresh_from_db()
    assert rule.state == "firing"
    assert AlertRule.objects.filter(last_checked_at__isnull=False).count() == 1


@pytest.fixture
def delivery(webhook_channel) -> Delivery:
    """A pending delivery, written without enqueueing: the test runs the task itself."""
    return deliveries_create(channels=[webhook_channel], event=None,
                             notification=Notification.for_channel_test(channel=webhook_channel),
                             dedupe_key="task-test", enqueue=False)[0]


@pytest.fixture
def run_task():
    """Run the delivery_send task in this process as a worker would: apply() follows each retry at once
    (no countdown), as long as the task's exceptions are not re-raised to the caller."""
    saved = celery_app.conf.task_eager_propagates
    celery_app.conf.task_eager_propagates = False
    try:
        def run(delivery: Delivery):
            result = tasks.delivery_send.apply(args=(delivery.pk,))
            delivery.refresh_from_db()
            return result

        yield run
    finally:
        celery_app.conf.task_eager_propagates = saved


def test_delivery_task_retries_transient_failures_until_sent(delivery, receiver, run_task):
    receiver.script(ScriptedReply(status=500), ScriptedReply(status=503), ScriptedReply(status=200))

    result = run_task(delivery)

    assert result.successful()
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("sent", 3, 200)
    assert len(receiver.requests) == 3


def test_delivery_task_stops_after_the_last_attempt(delivery, receiver, run_task):
    receiver.script(*[ScriptedReply(status=503)] * 6)

    result = run_task(delivery)

    assert result.successful()  # giving up is an outcome recorded on the row, not a task error
    assert (delivery.status, delivery.attempts) == ("failed", settings.ALERTS_DELIVERY_MAX_ATTEMPTS)
    assert len(receiver.requests) == settings.ALERTS_DELIVERY_MAX_ATTEMPTS


def test_delivery_task_does_not_retry_a_permanent_failure(delivery, receiver, run_task):
    receiver.script(ScriptedReply(status=404), ScriptedReply(status=200))

    run_task(delivery)

    assert (delivery.status, delivery.attempts, delivery.response_code) == ("failed", 1, 404)
    assert len(receiver.requests) == 1
