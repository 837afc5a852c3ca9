"""Thin Celery wrappers (queue `alerts`), each named after the service it calls: take ids, call it.

Former names (check_alert_rules, send_delivery, notify_risky_turns) stay registered as
`aliases` for messages queued by the previous release; remove them one release later.
"""

from django.conf import settings

from apps.core.choices import Queue
from apps.core.queue import task

from . import deliveries, risk_alerts, rules, theme_alerts


@task(queue=Queue.ALERTS, aliases=("apps.alerts.tasks.check_alert_rules",))
def alert_rules_check() -> int:
    """Beat, every minute: one full check. Overlapping runs are safe (see rules)."""
    return len(rules.alert_rules_check())


@task(
    queue=Queue.ALERTS,
    bind=True,
    retry_on=(deliveries.DeliveryRetry,),
    retry_backoff=5,  # 5 s, 10 s, 20 s, … with jitter, capped below
    retry_backoff_max=settings.ALERTS_RETRY_BACKOFF_MAX_SECONDS,
    # The service gives up after ALERTS_DELIVERY_MAX_ATTEMPTS; this is only a backstop.
    max_retries=settings.ALERTS_DELIVERY_MAX_ATTEMPTS + 1,
    aliases=("apps.alerts.tasks.send_delivery",),
)
def delivery_send(self, delivery_id: int) -> None:
    if self.request.is_eager:
        # No broker (the embedded default, tests): nothing can schedule a later retry.
        deliveries.delivery_send_with_retries(delivery_id=delivery_id)
        return
    deliveries.delivery_send(delivery_id=delivery_id)


@task(queue=Queue.ALERTS, aliases=("apps.alerts.tasks.notify_risky_turns",))
def risk_turns_notify(turn_ids: list[int]) -> None:
    risk_alerts.risk_turns_notify(turn_ids=turn_ids)


@task(queue=Queue.ALERTS)
def theme_rules_check(run_id: int) -> int:
    """After a clustering run committed: the theme rules ("new failure theme", "share grew")."""
    return len(theme_alerts.theme_rules_check(run_id=run_id))
