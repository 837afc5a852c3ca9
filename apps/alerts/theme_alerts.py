"""Theme alert rules ("new failure theme", "theme share grew"): checked when a clustering run
finishes, not by the minute check — a run's themes are an event, not a window of turns.

1. The run must be finished and have a previous run to compare with (drift): the first run of a
   chatbot is the baseline and fires nothing.
2. For each enabled theme rule of the run's chatbot (or of all chatbots), under the rule's row
   lock: the themes that cross the threshold — new themes by size, continued themes by their
   share change in points.
3. Breaching: the rule's open event (an earlier run's news) is resolved as superseded and one
   event is opened for this run; the partial unique constraint one_theme_event_per_run makes a
   second check of the same run (a redelivered task) a no-op. Its notification names each theme
   and links to its members. Not breaching: the rule's open event for this chatbot is resolved.
   Resolving sends nothing: the next run is the news.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from apps.clustering.choices import RunStatus
from apps.clustering.models import Cluster, ClusterRun
from apps.core.queue import enqueue_on_commit

from .choices import OPEN_STATUSES, THEME_METRICS, EventStatus, Metric, NotificationKind, RuleState
from .deliveries import deliveries_create
from .models import AlertEvent, AlertRule
from .notifications import Notification

logger = logging.getLogger(__name__)


def theme_rules_check_enqueue(*, run_id: int) -> None:
    """The clustering run's hook: check the theme rules once the run has committed."""
    from .tasks import theme_rules_check as theme_rules_check_task

    enqueue_on_commit(theme_rules_check_task, run_id)


def themes_breaching(*, rule: AlertRule, clusters: list[Cluster]) -> list[Cluster]:
    """The run's themes that cross the rule's threshold, the strongest first."""
    compare = AlertRule._COMPARE[rule.comparison]
    if rule.metric == Metric.NEW_FAILURE_THEME:
        found = [c for c in clusters if c.is_new and compare(c.size, rule.threshold)]
        return sorted(found, key=lambda c: (-c.size, c.index))
    found = [
        c for c in clusters
        if c.is_new is False and c.share_change is not None and compare(c.share_change, rule.threshold)
    ]
    return sorted(found, key=lambda c: (-(c.share_change or 0.0), c.index))


def theme_value(rule: AlertRule, cluster: Cluster) -> float:
    return float(cluster.size) if rule.metric == Metric.NEW_FAILURE_THEME else float(cluster.share_change or 0.0)


def theme_rules_check(*, run_id: int, now: datetime | None = None) -> list[AlertEvent]:
    """Check every theme rule against a finished run; returns the events opened."""
    now = now or timezone.now()
    run = ClusterRun.objects.select_related("chatbot").filter(pk=run_id, status=RunStatus.DONE).first()
    if run is None or run.previous_run_id is None:
        return []
    clusters = list(run.clusters.filter(is_noise=False).order_by("index"))
    rule_ids = list(
        AlertRule.objects.filter(Q(chatbot=run.chatbot) | Q(chatbot__isnull=True), is_enabled=True,
                                 metric__in=list(THEME_METRICS)).order_by("id").values_list("id", flat=True)
    )
    opened: list[AlertEvent] = []
    for rule_id in rule_ids:
        try:
            event = _theme_rule_check(rule_id=rule_id, run=run, clusters=clusters, now=now)
        except Exception as exc:  # one broken rule must not silence the others
            logger.exception("theme alert rule %s check failed", rule_id)
            AlertRule.objects.filter(pk=rule_id).update(
                state=RuleState.ERROR, last_error=f"{exc.__class__.__name__}: {exc}"[:2000], last_checked_at=now
            )
            continue
        if event is not None:
            opened.append(event)
    return opened


def _theme_rule_check(*, rule_id: int, run: ClusterRun, clusters: list[Cluster], now: datetime) -> AlertEvent | None:
    with transaction.atomic():
        rule = (
            AlertRule.objects.select_for_update(of=("self",)).select_related("chatbot")
            .filter(pk=rule_id, is_enabled=True).first()
        )
        if rule is None:
            return None
        themes = themes_breaching(rule=rule, clusters=clusters)
        value = theme_value(rule, themes[0]) if themes else None
        event = None
        if themes:
            if not AlertEvent.objects.filter(rule=rule, cluster_run=run).exists():
                # Superseded: the rule's open event was an earlier run's news.
                AlertEvent.objects.filter(rule=rule, status__in=OPEN_STATUSES).update(
                    status=EventStatus.RESOLVED, resolved_at=now
                )
                event = _theme_event_open(rule=rule, run=run, themes=themes, value=value, now=now)
        else:
            AlertEvent.objects.filter(rule=rule, chatbot=run.chatbot, status__in=OPEN_STATUSES).exclude(
                cluster_run=run
            ).update(status=EventStatus.RESOLVED, resolved_at=now)
        AlertRule.objects.filter(pk=rule.pk).update(
            state=RuleState.FIRING if themes else RuleState.OK, last_value=value,
            last_sample_size=run.turn_count, last_checked_at=now, last_error="",
        )
    return event


def theme_message(*, rule: AlertRule, run: ClusterRun, themes: list[Cluster]) -> str:
    if rule.metric == Metric.NEW_FAILURE_THEME:
        named = "; ".join(f"“{c.label}” ({c.size} turns, {c.share:.0%})" for c in themes)
        return f"New failure theme{'s' if len(themes) > 1 else ''} on {run.chatbot.name} in clustering run {run.pk}: {named}."
    named = "; ".join(f"“{c.label}” {c.share_change:+.1f} points (now {c.share:.0%})" for c in themes)
    return f"Failure theme share grew on {run.chatbot.name} in clustering run {run.pk}: {named}."


def _theme_event_open(
    *, rule: AlertRule, run: ClusterRun, themes: list[Cluster], value: float | None, now: datetime
) -> AlertEvent | None:
    try:
        with transaction.atomic():
            event = AlertEvent.objects.create(
                rule=rule, chatbot=run.chatbot, cluster_run=run, status=EventStatus.FIRING, severity=rule.severity,
                metric=rule.metric, value=value, threshold=rule.threshold, sample_size=run.turn_count,
                message=theme_message(rule=rule, run=run, themes=themes), started_at=now,
                last_notified_at=now, notify_count=1,
            )
    except IntegrityError:
        return None  # a concurrent check of the same run opened it
    notification = Notification.for_theme_event(rule=rule, event=event, run=run, themes=themes)
    deliveries_create(channels=rule.channels.filter(is_enabled=True), event=event, notification=notification,
                      dedupe_key=f"event:{event.pk}:{NotificationKind.FIRING}")
    return event
