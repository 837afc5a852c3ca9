"""Alert writes: rule checks and their transitions, notifications and their deliveries.

Exactly once, after Healthchecks' `sendalerts`:
- a rule is checked under a row lock taken with SKIP LOCKED, so an overlapping check (a second
  beat, a slow minute, the management command) skips a rule that is being checked;
- the database allows one open event per rule (partial unique constraint), so even a check
  that raced past the lock cannot open a second event;
- resolving and re-notifying are compare-and-set updates on the event;
- every send is a Delivery row with a unique (channel, dedupe_key) written before sending, and
  the send itself is claimed with a compare-and-set on its attempt counter.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from apps.chatbots.models import Chatbot
from apps.conversations.choices import RiskLevel
from apps.core.queue import enqueue_each_on_commit, enqueue_on_commit

from .choices import DeliveryStatus, EventStatus, NotificationKind, RuleState, Severity
from .models import AlertEvent, AlertRule, Delivery, NotificationChannel
from .selectors import (
    MetricResult,
    risk_events_pending_chatbot_ids,
    risk_last_notified_at,
    risky_turns_for_alert,
    rule_metric_compute,
    rule_open_event,
    rules_to_check,
)
from .transports import TransportError, transport_for

logger = logging.getLogger(__name__)

OPEN_STATUSES = (EventStatus.FIRING, EventStatus.ACKNOWLEDGED)
# A delivery still pending this long after it was written was never enqueued (broker down).
LOST_DELIVERY_AFTER = timedelta(minutes=5)
DIGEST_LIST_LIMIT = 10


class DeliveryRetry(Exception):
    """A transient send failure: the delivery task retries it with backoff."""


@dataclass
class RuleCheckOutcome:
    rule_id: int
    name: str
    state: str
    value: float | None = None
    sample_size: int | None = None
    transition: str = ""  # "fired", "renotified", "resolved" or ""
    error: str = ""
    skipped: bool = False  # being checked by an overlapping run


# --- links ------------------------------------------------------------------------------------
def _admin_url(name: str, *args: Any, query: str = "") -> str | None:
    try:
        path = reverse(f"admin:{name}", args=args)
    except NoReverseMatch:
        return None
    return f"{settings.SITE_URL}{path}{'?' + query if query else ''}"


def _chatbot_info(chatbot: Chatbot | None) -> dict[str, Any] | None:
    if chatbot is None:
        return None
    return {"id": chatbot.pk, "slug": chatbot.slug, "name": chatbot.name}


# --- the check --------------------------------------------------------------------------------
def alert_rules_check(*, now: datetime | None = None) -> list[RuleCheckOutcome]:
    """One full check: every enabled rule, then risk digests that are due, then lost sends.

    A rule that fails (its query, or anything after) is recorded on the rule and the check
    carries on with the next one.
    """
    now = now or timezone.now()
    outcomes = []
    for rule_id in list(rules_to_check().values_list("id", flat=True)):
        try:
            outcome = alert_rule_check(rule_id=rule_id, now=now)
        except Exception as exc:  # one broken rule must not silence the others
            logger.exception("alert rule %s check failed", rule_id)
            AlertRule.objects.filter(pk=rule_id).update(
                state=RuleState.ERROR, last_error=f"{exc.__class__.__name__}: {exc}"[:2000], last_checked_at=now
            )
            outcome = RuleCheckOutcome(rule_id=rule_id, name="", state=RuleState.ERROR, error=str(exc))
        if outcome is not None:
            outcomes.append(outcome)
    for chatbot_id in risk_events_pending_chatbot_ids():
        try:
            risk_chatbot_notify(chatbot_id=chatbot_id, now=now)
        except Exception:
            logger.exception("risk digest for chatbot %s failed", chatbot_id)
    deliveries_lost_requeue(now=now)
    return outcomes


def alert_rule_check(*, rule_id: int, now: datetime | None = None) -> RuleCheckOutcome | None:
    """Evaluate one rule and apply its transition. None when the rule is gone or disabled.

    1. Lock the rule row, skipping it if an overlapping check holds it.
    2. Compute the metric in a savepoint; a failure puts the rule in "error" state.
    3. Breaching with no open event: open one (the unique constraint arbitrates) and notify.
       Breaching with a firing event: re-notify when the interval has passed (compare-and-set).
       Not breaching with an open event: resolve it (compare-and-set) and notify.
    4. Record value, sample size, time and state on the rule.
    Deliveries are sent after commit, so a rolled-back check sends nothing.
    """
    now = now or timezone.now()
    with transaction.atomic():
        rule = (
            AlertRule.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("chatbot")
            .filter(pk=rule_id, is_enabled=True)
            .first()
        )
        if rule is None:
            if AlertRule.objects.filter(pk=rule_id, is_enabled=True).exists():
                return RuleCheckOutcome(rule_id=rule_id, name="", state="", skipped=True)
            return None
        try:
            with transaction.atomic():  # savepoint: a failed query must not poison the rest
                result = rule_metric_compute(rule=rule, now=now)
        except Exception as exc:
            logger.warning("alert rule %s query failed: %s", rule.pk, exc)
            error = f"{exc.__class__.__name__}: {exc}"[:2000]
            AlertRule.objects.filter(pk=rule.pk).update(state=RuleState.ERROR, last_error=error, last_checked_at=now)
            return RuleCheckOutcome(rule_id=rule.pk, name=rule.name, state=RuleState.ERROR, error=error)

        breaching = rule.is_breaching(result.value, result.sample_size)
        event = rule_open_event(rule_id=rule.pk)
        transition = ""
        if breaching and event is None:
            event = _rule_event_open(rule=rule, result=result, now=now)
            transition = "fired" if event is not None else ""
            if event is None:  # another check opened it between our read and our insert
                event = rule_open_event(rule_id=rule.pk)
        elif breaching and event is not None:
            if _rule_event_renotify(rule=rule, event=event, result=result, now=now):
                transition = "renotified"
        elif event is not None:
            if _rule_event_resolve(rule=rule, event=event, result=result, now=now):
                transition = "resolved"
            event = None

        state = RuleState.FIRING if breaching and event is not None else RuleState.OK
        AlertRule.objects.filter(pk=rule.pk).update(
            state=state, last_value=result.value, last_sample_size=result.sample_size,
            last_checked_at=now, last_error="",
        )
    return RuleCheckOutcome(
        rule_id=rule.pk, name=rule.name, state=state, value=result.value,
        sample_size=result.sample_size, transition=transition,
    )


def _rule_message(rule: AlertRule, result: MetricResult) -> str:
    value = "no data" if result.value is None else f"{result.value:.4g}{rule.unit}"
    scope = rule.chatbot.name if rule.chatbot else "all chatbots"
    return f"{rule.describe_condition()} on {scope}: now {value} ({result.sample_size} turns)."


def _rule_event_open(*, rule: AlertRule, result: MetricResult, now: datetime) -> AlertEvent | None:
    try:
        with transaction.atomic():
            event = AlertEvent.objects.create(
                rule=rule, chatbot=rule.chatbot, status=EventStatus.FIRING, severity=rule.severity,
                metric=rule.metric, value=result.value, threshold=rule.threshold,
                sample_size=result.sample_size, message=_rule_message(rule, result), started_at=now,
                last_notified_at=now, notify_count=1,
            )
    except IntegrityError:
        return None
    _rule_notifications_create(rule=rule, event=event, kind=NotificationKind.FIRING, result=result,
                               dedupe_key=f"event:{event.pk}:firing")
    return event


def _rule_event_renotify(*, rule: AlertRule, event: AlertEvent, result: MetricResult, now: datetime) -> bool:
    # Acknowledged means someone is on it: no more reminders, but the resolution still goes out.
    if event.status != EventStatus.FIRING or not rule.renotify_minutes:
        return False
    last = event.last_notified_at or event.started_at
    if now - last < timedelta(minutes=rule.renotify_minutes):
        return False
    claimed = AlertEvent.objects.filter(
        pk=event.pk, status=EventStatus.FIRING, notify_count=event.notify_count
    ).update(last_notified_at=now, notify_count=F("notify_count") + 1)
    if not claimed:
        return False
    _rule_notifications_create(rule=rule, event=event, kind=NotificationKind.RENOTIFY, result=result,
                               dedupe_key=f"event:{event.pk}:renotify:{event.notify_count + 1}")
    return True


def _rule_event_resolve(*, rule: AlertRule, event: AlertEvent, result: MetricResult, now: datetime) -> bool:
    claimed = AlertEvent.objects.filter(pk=event.pk, status__in=OPEN_STATUSES).update(
        status=EventStatus.RESOLVED, resolved_at=now
    )
    if not claimed:
        return False
    event.status, event.resolved_at = EventStatus.RESOLVED, now
    _rule_notifications_create(rule=rule, event=event, kind=NotificationKind.RESOLVED, result=result,
                               dedupe_key=f"event:{event.pk}:resolved")
    return True


def _rule_payload(*, rule: AlertRule, event: AlertEvent, kind: str, result: MetricResult) -> dict[str, Any]:
    scope = rule.chatbot.name if rule.chatbot else "all chatbots"
    if kind == NotificationKind.RESOLVED:
        title = f"Resolved: {rule.name} ({scope})"
    elif kind == NotificationKind.RENOTIFY:
        title = f"Still firing: {rule.name} ({scope})"
    else:
        title = f"Firing: {rule.name} ({scope})"
    return {
        "kind": kind,
        "title": title,
        "text": _rule_message(rule, result),
        "severity": rule.severity,
        "rule": {"id": rule.pk, "name": rule.name},
        "metric": rule.metric,
        "metric_label": rule.get_metric_display(),
        "comparison": rule.get_comparison_display(),
        "value": result.value,
        "unit": rule.unit,
        "threshold": rule.threshold,
        "window_minutes": rule.window_minutes,
        "sample_size": result.sample_size,
        "chatbot": _chatbot_info(rule.chatbot),
        "event": {
            "id": event.pk, "status": event.status, "started_at": event.started_at.isoformat(),
            "resolved_at": event.resolved_at.isoformat() if event.resolved_at else None,
        },
        "links": {
            "event": _admin_url("alerts_alertevent_change", event.pk),
            "rule": _admin_url("alerts_alertrule_change", rule.pk),
        },
    }


def _rule_notifications_create(
    *, rule: AlertRule, event: AlertEvent, kind: str, result: MetricResult, dedupe_key: str
) -> list[Delivery]:
    channels = rule.channels.filter(is_enabled=True)
    payload = _rule_payload(rule=rule, event=event, kind=kind, result=result)
    return deliveries_create(channels=channels, event=event, kind=kind, payload=payload, dedupe_key=dedupe_key)


# --- deliveries -------------------------------------------------------------------------------
def deliveries_create(
    *, channels: Iterable[NotificationChannel], event: AlertEvent | None, kind: str,
    payload: dict[str, Any], dedupe_key: str, enqueue: bool = True,
) -> list[Delivery]:
    """Write one Delivery per channel (once per dedupe key) and send each after commit."""
    created = []
    for channel in channels:
        delivery, is_new = Delivery.objects.get_or_create(
            channel=channel, dedupe_key=dedupe_key[:200],
            defaults={"event": event, "kind": kind, "payload": payload},
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
            config=channel.config or {}, payload=delivery.payload, delivery_id=delivery.pk
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
            channels=[old.channel], event=old.event, kind=old.kind, payload=old.payload,
            dedupe_key=f"resend:{old.pk}:{uuid.uuid4().hex[:12]}",
        )
    return created[0] if created else None


def channel_test_send(*, channel_id: int) -> Delivery:
    """A test notification to one channel, sent now so the admin can show the outcome.

    Like any notification it is a Delivery row; a transient failure is retried by the worker.
    """
    channel = NotificationChannel.objects.get(pk=channel_id)
    payload = {
        "kind": NotificationKind.TEST,
        "title": f"Test notification from chatmon ({channel.name})",
        "text": "If you can read this, alerts will reach this channel.",
        "severity": Severity.INFO,
        "rule": None, "metric": None, "value": None, "threshold": None, "window_minutes": None,
        "sample_size": None, "chatbot": None, "event": None,
        "links": {"channel": _admin_url("alerts_notificationchannel_change", channel.pk)},
    }
    delivery = deliveries_create(
        channels=[channel], event=None, kind=NotificationKind.TEST, payload=payload,
        dedupe_key=f"test:{uuid.uuid4().hex}", enqueue=False,
    )[0]
    try:
        delivery_send(delivery_id=delivery.pk)
    except DeliveryRetry:
        _delivery_enqueue(delivery.pk)
    delivery.refresh_from_db()
    return delivery


def alert_event_acknowledge(*, event_id: int, user: Any) -> bool:
    """Firing → acknowledged (stops re-notifications). False when it was not firing."""
    return bool(
        AlertEvent.objects.filter(pk=event_id, status=EventStatus.FIRING).update(
            status=EventStatus.ACKNOWLEDGED, acknowledged_at=timezone.now(), acknowledged_by=user
        )
    )


# --- per-turn risk alerts ---------------------------------------------------------------------
def risk_alert_notify(*, turn_ids: list[int]) -> None:
    """Ingest's hook for flagged high/critical turns: enqueue, never raise into ingest."""
    if not turn_ids:
        return
    from .tasks import risk_turns_notify

    enqueue_on_commit(risk_turns_notify, [int(pk) for pk in turn_ids])


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
        payload = _risk_payload(chatbot=chatbot, events=pending)
        created = deliveries_create(
            channels=channels, event=pending[-1], kind=NotificationKind.RISK, payload=payload,
            dedupe_key=f"risk:{pending[0].pk}:{len(pending)}",
        )
    return created[0] if created else None


def _risk_payload(*, chatbot: Chatbot, events: list[AlertEvent]) -> dict[str, Any]:
    # Conversation text is not sent to third-party channels: level, score, reasons and a link.
    turns = [
        {
            "id": event.turn_id,
            "event_id": event.pk,
            "risk_level": event.turn.risk_level if event.turn else "",
            "risk_score": event.turn.risk_score if event.turn else None,
            "reasons": list(event.turn.risk_reasons or []) if event.turn else [],
            "url": _admin_url("conversations_turn_change", event.turn_id) if event.turn_id else None,
        }
        for event in events
    ]
    critical = any(t["risk_level"] == RiskLevel.CRITICAL for t in turns)
    if len(events) == 1:
        first = turns[0]
        title = f"Risky turn on {chatbot.name}: {first['risk_level']} risk ({first['risk_score']})"
        text = "Reasons: " + (", ".join(map(str, first["reasons"])) or "none recorded")
    else:
        title = f"{len(events)} risky turns on {chatbot.name}"
        text = (
            f"{len(events)} turns were flagged at high or critical risk since the last alert "
            f"(at most one alert per {settings.ALERTS_RISK_DIGEST_MINUTES} min per chatbot)."
        )
    return {
        "kind": NotificationKind.RISK,
        "title": title,
        "text": text,
        "severity": Severity.CRITICAL if critical else Severity.WARNING,
        "rule": None, "metric": "risk_score", "value": None, "threshold": None, "window_minutes": None,
        "sample_size": None,
        "chatbot": _chatbot_info(chatbot),
        "count": len(events),
        "turns": turns[:DIGEST_LIST_LIMIT],
        "links": {
            "turns": _admin_url(
                "alerts_alertevent_changelist", query=f"chatbot__id__exact={chatbot.pk}&rule__isempty=1"
            ),
        },
    }
