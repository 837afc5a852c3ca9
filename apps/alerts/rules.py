"""Alert rule checks and their transitions: the minute check, one rule's check, acknowledging.

Exactly once, after Healthchecks' `sendalerts`:
- a rule is checked under a row lock taken with SKIP LOCKED, so an overlapping check (a second
  beat, a slow minute, the management command) skips a rule that is being checked;
- the database allows one open event per rule (partial unique constraint), so even a check
  that raced past the lock cannot open a second event;
- resolving and re-notifying are compare-and-set updates on the event;
- each notification becomes deliveries written before sending (deliveries.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from .choices import OPEN_STATUSES, THEME_METRICS, EventStatus, NotificationKind, RuleState
from .deliveries import deliveries_create, deliveries_lost_requeue
from .models import AlertEvent, AlertRule, Delivery
from .notifications import Notification, rule_message
from .risk_alerts import risk_chatbot_notify, risk_turns_sweep
from .selectors import (
    MetricResult,
    risk_events_pending_chatbot_ids,
    rule_metric_compute,
    rule_open_event,
    rules_to_check,
)

logger = logging.getLogger(__name__)


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


def alert_rules_check(*, now: datetime | None = None) -> list[RuleCheckOutcome]:
    """One full check: every enabled rule, risky turns never reported, risk digests that are due,
    then lost sends.

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
    try:
        risk_turns_sweep(now=now)
    except Exception:
        logger.exception("risk alert sweep failed")
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
        if rule is not None and rule.metric in THEME_METRICS:
            return None  # checked when a clustering run finishes (theme_alerts.py)
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


def _rule_event_open(*, rule: AlertRule, result: MetricResult, now: datetime) -> AlertEvent | None:
    try:
        with transaction.atomic():
            event = AlertEvent.objects.create(
                rule=rule, chatbot=rule.chatbot, status=EventStatus.FIRING, severity=rule.severity,
                metric=rule.metric, value=result.value, threshold=rule.threshold,
                sample_size=result.sample_size, message=rule_message(rule, result), started_at=now,
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


def _rule_notifications_create(
    *, rule: AlertRule, event: AlertEvent, kind: str, result: MetricResult, dedupe_key: str
) -> list[Delivery]:
    channels = rule.channels.filter(is_enabled=True)
    notification = Notification.for_rule_event(rule=rule, event=event, kind=kind, result=result)
    return deliveries_create(channels=channels, event=event, notification=notification, dedupe_key=dedupe_key)


def alert_event_acknowledge(*, event_id: int, user: Any) -> bool:
    """Firing → acknowledged (stops re-notifications). False when it was not firing."""
    return bool(
        AlertEvent.objects.filter(pk=event_id, status=EventStatus.FIRING).update(
            status=EventStatus.ACKNOWLEDGED, acknowledged_at=timezone.now(), acknowledged_by=user
        )
    )


