"""Per-turn risk alerts: one event per risky turn, notified per chatbot at most every N minutes."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.chatbots.models import Chatbot
from apps.conversations.choices import RiskLevel
from apps.core.queue import enqueue_on_commit

from .choices import OPEN_STATUSES, EventStatus, Severity
from .deliveries import deliveries_create
from .models import AlertEvent, Delivery
from .notifications import Notification
from .selectors import risk_last_notified_at, risky_turns_for_alert, risky_turns_unreported

logger = logging.getLogger(__name__)


def risk_alert_notify(*, turn_ids: list[int]) -> None:
    """Ingest's hook for flagged high/critical turns: enqueue, never raise into ingest."""
    if not turn_ids:
        return
    from .tasks import risk_turns_notify as risk_turns_notify_task

    enqueue_on_commit(risk_turns_notify_task, [int(pk) for pk in turn_ids])


def risk_turns_notify(*, turn_ids: list[int], now: datetime | None = None) -> int:
    """Open one risk event per eligible turn and notify each chatbot, rate-limited.

    Returns the number of new events. Reporting a turn twice opens no second event.
    """
    now = now or timezone.now()
    turns = list(risky_turns_for_alert(turn_ids=turn_ids))
    if not turns:
        return 0
    existing = set(
        AlertEvent.objects.filter(rule__isnull=True, turn_id__in=[t.pk for t in turns]).values_list("turn_id", flat=True)
    )
    events = [
        AlertEvent(
            rule=None, chatbot_id=turn.chatbot_id, turn=turn, status=EventStatus.FIRING,
            severity=Severity.CRITICAL if turn.risk_level == RiskLevel.CRITICAL else Severity.WARNING,
            metric="risk_score", value=float(turn.risk_score), started_at=now,
            message=f"Turn flagged at {turn.risk_level} risk ({turn.risk_score}): {', '.join(map(str, turn.risk_reasons or [])) or 'no reasons recorded'}",
        )
        for turn in turns
        if turn.pk not in existing
    ]
    # The partial unique constraint on (turn) for risk events makes a concurrent duplicate a no-op.
    AlertEvent.objects.bulk_create(events, ignore_conflicts=True)
    for chatbot_id in sorted({turn.chatbot_id for turn in turns}):
        risk_chatbot_notify(chatbot_id=chatbot_id, now=now)
    return len(events)


def risk_turns_sweep(*, now: datetime | None = None, batch_size: int = 500) -> int:
    """Report the risky turns whose ingest-time report never ran; the minute check calls this.

    Ingest enqueues the report after commit and never waits for the broker, so a broker outage
    or a lost task would otherwise drop the alert for good. Each turn still gets exactly one
    event (risk_turns_notify skips turns that have one, and the partial unique constraint
    one_risk_event_per_turn stops a racing duplicate), and the per-chatbot digest interval
    applies as usual. Turns younger than a minute are left to the fast path; turns older than
    ALERTS_RISK_SWEEP_HOURS are not reported late. Returns the number of events opened.
    """
    now = now or timezone.now()
    window = dict(
        created_after=now - timedelta(hours=settings.ALERTS_RISK_SWEEP_HOURS),
        created_before=now - timedelta(seconds=60),
    )
    opened = 0
    while turn_ids := list(risky_turns_unreported(**window).values_list("id", flat=True)[:batch_size]):
        opened += risk_turns_notify(turn_ids=turn_ids, now=now)
        if len(turn_ids) < batch_size:
            break
    if opened:
        logger.warning("risk alerts: reported %d risky turns whose report at ingest had not run", opened)
    return opened


def risk_events_resolve(*, conversation_ids: list[int], now: datetime | None = None) -> int:
    """Close the open risk events of these conversations' turns: a reviewer has dealt with them
    (resolved or false positive). A risk event has no condition that could clear by itself."""
    return AlertEvent.objects.filter(
        rule__isnull=True, status__in=OPEN_STATUSES, turn__conversation_id__in=conversation_ids
    ).update(status=EventStatus.RESOLVED, resolved_at=now or timezone.now())


def risk_chatbot_notify(*, chatbot_id: int, now: datetime | None = None) -> Delivery | None:
    """Send the chatbot's pending risk events now, unless it was notified in the last N minutes.

    The first risky turn after a quiet period goes out at once; turns arriving within the next
    ALERTS_RISK_DIGEST_MINUTES wait and go out together as one digest, which the minute check
    sends when the interval is over. Returns one of the deliveries written, or None.
    """
    now = now or timezone.now()
    interval = timedelta(minutes=settings.ALERTS_RISK_DIGEST_MINUTES)
    with transaction.atomic():
        # Serialise per chatbot so two workers never split one burst into two sends.
        chatbot = Chatbot.objects.select_for_update().filter(pk=chatbot_id).first()
        if chatbot is None:
            return None
        last = risk_last_notified_at(chatbot_id=chatbot_id)
        if last is not None and now - last < interval:
            return None
        pending = list(
            AlertEvent.objects.filter(rule__isnull=True, chatbot_id=chatbot_id, last_notified_at__isnull=True)
            .select_related("turn").order_by("id")
        )
        if not pending:
            return None
        AlertEvent.objects.filter(pk__in=[e.pk for e in pending]).update(
            last_notified_at=now, notify_count=F("notify_count") + 1
        )
        channels = chatbot.notification_channels.filter(is_enabled=True) if chatbot.alert_on_risk else []
        created = deliveries_create(
            channels=channels, event=pending[-1], notification=Notification.for_risk_events(chatbot=chatbot, events=pending),
            dedupe_key=f"risk:{pending[0].pk}:{len(pending)}",
        )
    return created[0] if created else None
