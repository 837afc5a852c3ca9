"""Thin Celery wrappers: take ids, call one service. All on the "alerts" queue."""

from celery import shared_task
from django.conf import settings

from .deliveries import DeliveryRetry, delivery_send
from .risk_alerts import risk_turns_notify
from .rules import alert_rules_check


@shared_task(queue="alerts", ignore_result=True)
def check_alert_rules() -> int:
    """Beat, every minute: one full check. Overlapping runs are safe (see rules)."""
    return len(alert_rules_check())


@shared_task(
    queue="alerts",
    ignore_result=True,
    autoretry_for=(DeliveryRetry,),
    retry_backoff=5,  # 5 s, 10 s, 20 s, … with jitter, capped below
    retry_backoff_max=settings.ALERTS_RETRY_BACKOFF_MAX_SECONDS,
    retry_jitter=True,
    # The service gives up after ALERTS_DELIVERY_MAX_ATTEMPTS; this is only a backstop.
    max_retries=settings.ALERTS_DELIVERY_MAX_ATTEMPTS + 1,
)
def send_delivery(delivery_id: int) -> None:
    delivery_send(delivery_id=delivery_id)


@shared_task(queue="alerts", ignore_result=True)
def notify_risky_turns(turn_ids: list[int]) -> None:
    risk_turns_notify(turn_ids=turn_ids)
