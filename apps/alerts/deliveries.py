"""Deliveries: one row per (channel, notification), written before sending, sent exactly once.

After Healthchecks' `sendalerts`: every send is a Delivery row with a unique
(channel, dedupe_key) written before sending, and the send itself is claimed with a
compare-and-set on its attempt counter, so a redelivered task message sends nothing twice.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.core.queue import enqueue_each_on_commit

from .choices import DeliveryStatus, NotificationKind
from .models import AlertEvent, Delivery, NotificationChannel
from .notifications import Notification
from .transports import TransportError, transport_for

logger = logging.getLogger(__name__)

# A delivery still pending this long after it was written was never enqueued (broker down).
LOST_DELIVERY_AFTER = timedelta(minutes=5)


class DeliveryRetry(Exception):
    """A transient send failure: the delivery task retries it with backoff."""


def deliveries_create(
    *, channels: Iterable[NotificationChannel], event: AlertEvent | None, notification: Notification,
    dedupe_key: str, enqueue: bool = True,
) -> list[Delivery]:
    """Write one Delivery per channel (once per dedupe key) and send each after commit."""
    created = []
    payload = notification.as_payload()
    for channel in channels:
        delivery, is_new = Delivery.objects.get_or_create(
            channel=channel, dedupe_key=dedupe_key[:200],
            defaults={"event": event, "kind": notification.kind, "payload": payload},
        )
        if is_new:
            created.append(delivery)
            if enqueue:
                _delivery_enqueue(delivery.pk)
    return created


def _delivery_enqueue(*delivery_ids: int) -> None:
    # After commit, never raising (apps.core.queue); a row left pending is re-enqueued by the
    # next check (deliveries_lost_requeue).
    from .tasks import delivery_send as delivery_send_task

    enqueue_each_on_commit(delivery_send_task, delivery_ids)


def deliveries_lost_requeue(*, now: datetime) -> int:
    """Re-enqueue deliveries written but never picked up (e.g. the broker was down)."""
    lost = list(
        Delivery.objects.filter(status=DeliveryStatus.PENDING, attempts=0, created_at__lt=now - LOST_DELIVERY_AFTER)
        .values_list("id", flat=True)[:500]
    )
    _delivery_enqueue(*lost)
    return len(lost)


def delivery_send(*, delivery_id: int) -> Delivery | None:
    """Send one delivery once: claim an attempt, call the transport, record the result.

    Raises DeliveryRetry after a transient failure while attempts remain (the task retries).
    """
    delivery = Delivery.objects.select_related("channel").filter(pk=delivery_id).first()
    if delivery is None or delivery.status not in (DeliveryStatus.PENDING, DeliveryStatus.RETRYING):
        return delivery
    # Claim this attempt: a duplicate task message (redelivery) finds the counter moved on.
    claimed = Delivery.objects.filter(
        pk=delivery.pk, status=delivery.status, attempts=delivery.attempts
    ).update(attempts=F("attempts") + 1)
    if not claimed:
        return delivery
    delivery.attempts += 1
    channel = delivery.channel
    fields = ["status", "error", "response_code", "sent_at"]
    if not channel.is_enabled and delivery.kind != NotificationKind.TEST:
        delivery.status, delivery.error = DeliveryStatus.FAILED, "channel is disabled"
        delivery.save(update_fields=fields)
        return delivery
    try:
        delivery.response_code = transport_for(channel.kind).send(
            config=channel.config or {}, notification=Notification.from_payload(delivery.payload),
            delivery_id=delivery.pk,
        )
    except TransportError as exc:
        delivery.response_code = exc.response_code
        delivery.error = exc.message[:2000]
        if exc.permanent or delivery.attempts >= settings.ALERTS_DELIVERY_MAX_ATTEMPTS:
            delivery.status = DeliveryStatus.FAILED
            delivery.save(update_fields=fields)
            logger.warning("delivery %s to %s failed: %s", delivery.pk, channel, exc.message)
            return delivery
        delivery.status = DeliveryStatus.RETRYING
        delivery.save(update_fields=fields)
        raise DeliveryRetry(exc.message) from exc
    delivery.status, delivery.error, delivery.sent_at = DeliveryStatus.SENT, "", timezone.now()
    delivery.save(update_fields=fields)
    return delivery


def delivery_send_with_retries(*, delivery_id: int) -> Delivery | None:
    """Send now, retrying transient failures at once (without a worker there is no backoff)."""
    for _ in range(settings.ALERTS_DELIVERY_MAX_ATTEMPTS):
        try:
            return delivery_send(delivery_id=delivery_id)
        except DeliveryRetry:
            continue
    return Delivery.objects.filter(pk=delivery_id).first()


def delivery_resend(*, delivery_id: int) -> Delivery | None:
    """Send a failed delivery again as a new row (its history stays as it was)."""
    old = Delivery.objects.filter(pk=delivery_id, status=DeliveryStatus.FAILED).select_related("channel").first()
    if old is None:
        return None
    with transaction.atomic():
        created = deliveries_create(
            channels=[old.channel], event=old.event, notification=Notification.from_payload(old.payload),
            dedupe_key=f"resend:{old.pk}:{uuid.uuid4().hex[:12]}",
        )
    return created[0] if created else None


def channel_test_send(*, channel_id: int) -> Delivery:
    """A test notification to one channel, sent now so the admin can show the outcome.

    Like any notification it is a Delivery row; a transient failure is retried by the worker.
    """
    channel = NotificationChannel.objects.get(pk=channel_id)
    delivery = deliveries_create(
        channels=[channel], event=None, notification=Notification.for_channel_test(channel=channel),
        dedupe_key=f"test:{uuid.uuid4().hex}", enqueue=False,
    )[0]
    try:
        delivery_send(delivery_id=delivery.pk)
    except DeliveryRetry:
        _delivery_enqueue(delivery.pk)
    delivery.refresh_from_db()
    return delivery
