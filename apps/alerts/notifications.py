"""What a notification says: one typed `Notification`, built from a rule event, risky turns or
a channel test, and the JSON document it is stored as (Delivery.payload) and sent as (the
generic webhook's body).

Nothing here writes or sends: deliveries.py stores and sends, transports.py renders per channel.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.urls import NoReverseMatch, reverse

from apps.conversations.choices import RiskLevel

from .choices import NotificationKind, Severity

if TYPE_CHECKING:
    from apps.chatbots.models import Chatbot
    from apps.clustering.models import Cluster, ClusterRun

    from .models import AlertEvent, AlertRule, NotificationChannel
    from .selectors import MetricResult

# A digest lists at most this many turns (the count says how many there were).
DIGEST_LIST_LIMIT = 10

# The keys of each kind's JSON document, in the order the payload builders have always written
# them: webhook receivers see exactly these keys (one that does not apply to a kind is absent,
# not null), in this order whatever the database (jsonb does not keep it).
_HEAD = ("kind", "title", "text", "severity", "rule", "metric")
_RULE_KEYS = (*_HEAD, "metric_label", "comparison", "value", "unit", "threshold", "window_minutes",
              "sample_size", "chatbot", "event", "links")
_TEST_KEYS = (*_HEAD, "value", "threshold", "window_minutes", "sample_size", "chatbot", "event", "links")
_RISK_KEYS = (*_HEAD, "value", "threshold", "window_minutes", "sample_size", "chatbot", "count", "turns", "links")
_KEYS_BY_KIND = {NotificationKind.TEST: _TEST_KEYS, NotificationKind.RISK: _RISK_KEYS}


@dataclass(frozen=True)
class Notification:
    """One notification, whatever the channel: what transports render and the webhook sends."""

    kind: str  # a NotificationKind
    title: str
    text: str
    severity: str  # a Severity
    links: Mapping[str, str | None]  # event / rule / turns / channel → admin URL
    chatbot: Mapping[str, Any] | None = None  # {"id", "slug", "name"}; None for all chatbots
    rule: Mapping[str, Any] | None = None  # {"id", "name"}
    metric: str | None = None
    metric_label: str | None = None
    comparison: str = ""  # "<", "≥", …
    value: float | None = None
    unit: str = ""
    threshold: float | None = None
    window_minutes: int | None = None
    sample_size: int | None = None
    event: Mapping[str, Any] | None = None  # {"id", "status", "started_at", "resolved_at"}
    count: int | None = None  # risk digests: how many turns
    turns: tuple[Mapping[str, Any], ...] = ()  # risk digests: the first DIGEST_LIST_LIMIT turns
    themes: tuple[Mapping[str, Any], ...] = ()  # theme rules: each theme, with a link to its members

    # --- the stored / sent document ---------------------------------------------------------
    def as_payload(self) -> dict[str, Any]:
        """The JSON document of this kind (Delivery.payload, the webhook body)."""
        document: dict[str, Any] = {}
        keys = _KEYS_BY_KIND.get(self.kind, _RULE_KEYS)
        if self.themes:  # a theme rule's event: the themes go before the links
            keys = (*keys[:-1], "themes", keys[-1])
        for key in keys:
            value = getattr(self, key)
            if key in ("turns", "themes"):
                value = [dict(item) for item in value]
            elif isinstance(value, Mapping):
                value = dict(value)
            document[key] = value
        return document

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Notification:
        """Read a stored document back (a delivery's send and resend)."""
        return cls(
            kind=payload.get("kind", ""),
            title=payload.get("title", ""),
            text=payload.get("text", ""),
            severity=payload.get("severity", ""),
            links=payload.get("links") or {},
            chatbot=payload.get("chatbot"),
            rule=payload.get("rule"),
            metric=payload.get("metric"),
            metric_label=payload.get("metric_label"),
            comparison=payload.get("comparison", ""),
            value=payload.get("value"),
            unit=payload.get("unit", ""),
            threshold=payload.get("threshold"),
            window_minutes=payload.get("window_minutes"),
            sample_size=payload.get("sample_size"),
            event=payload.get("event"),
            count=payload.get("count"),
            turns=tuple(payload.get("turns") or ()),
            themes=tuple(payload.get("themes") or ()),
        )

    # --- building one -----------------------------------------------------------------------
    @classmethod
    def for_rule_event(cls, *, rule: AlertRule, event: AlertEvent, kind: str, result: MetricResult) -> Notification:
        """A rule's event fired, is still firing (renotify) or resolved."""
        scope = rule.chatbot.name if rule.chatbot else "all chatbots"
        if kind == NotificationKind.RESOLVED:
            title = f"Resolved: {rule.name} ({scope})"
        elif kind == NotificationKind.RENOTIFY:
            title = f"Still firing: {rule.name} ({scope})"
        else:
            title = f"Firing: {rule.name} ({scope})"
        return cls(
            kind=kind,
            title=title,
            text=rule_message(rule, result),
            severity=rule.severity,
            rule={"id": rule.pk, "name": rule.name},
            metric=rule.metric,
            metric_label=rule.get_metric_display(),
            comparison=rule.get_comparison_display(),
            value=result.value,
            unit=rule.unit,
            threshold=rule.threshold,
            window_minutes=rule.window_minutes,
            sample_size=result.sample_size,
            chatbot=_chatbot_info(rule.chatbot),
            event={
                "id": event.pk, "status": event.status, "started_at": event.started_at.isoformat(),
                "resolved_at": event.resolved_at.isoformat() if event.resolved_at else None,
            },
            links={
                "event": _admin_url("alerts_alertevent_change", event.pk),
                "rule": _admin_url("alerts_alertrule_change", rule.pk),
            },
        )

    @classmethod
    def for_theme_event(
        cls, *, rule: AlertRule, event: AlertEvent, run: ClusterRun, themes: list[Cluster]
    ) -> Notification:
        """A theme rule fired on a finished clustering run: names each theme, links to its members."""
        listed = tuple(
            {
                "id": cluster.pk, "title": cluster.label, "size": cluster.size, "share": cluster.share,
                "share_change": cluster.share_change, "is_new": cluster.is_new,
                "members_url": _admin_url("clustering_cluster_change", cluster.pk),
            }
            for cluster in themes[:DIGEST_LIST_LIMIT]
        )
        lines = [event.message] + [f"{theme['title']}: {theme['members_url']}" for theme in listed if theme["members_url"]]
        base = cls.for_rule_event(rule=rule, event=event, kind=NotificationKind.FIRING,
                                  result=_Result(event.value, run.turn_count))
        return cls(
            **{**base.__dict__, "title": f"Firing: {rule.name} — {themes[0].label} ({run.chatbot.name})",
               "text": "\n".join(lines), "themes": listed, "chatbot": _chatbot_info(run.chatbot),
               "links": {**base.links, "run": _admin_url("clustering_clusterrun_change", run.pk),
                         "members": listed[0]["members_url"] if listed else None}},
        )

    @classmethod
    def for_risk_events(cls, *, chatbot: Chatbot, events: list[AlertEvent]) -> Notification:
        """One risky turn, or a digest of those that arrived within the rate limit."""
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
        return cls(
            kind=NotificationKind.RISK,
            title=title,
            text=text,
            severity=Severity.CRITICAL if critical else Severity.WARNING,
            metric="risk_score",
            chatbot=_chatbot_info(chatbot),
            count=len(events),
            turns=tuple(turns[:DIGEST_LIST_LIMIT]),
            links={
                "turns": _admin_url(
                    "alerts_alertevent_changelist", query=f"chatbot__id__exact={chatbot.pk}&rule__isempty=1"
                ),
            },
        )

    @classmethod
    def for_channel_test(cls, *, channel: NotificationChannel) -> Notification:
        return cls(
            kind=NotificationKind.TEST,
            title=f"Test notification from chatmon ({channel.name})",
            text="If you can read this, alerts will reach this channel.",
            severity=Severity.INFO,
            links={"channel": _admin_url("alerts_notificationchannel_change", channel.pk)},
        )


@dataclass(frozen=True)
class _Result:
    value: float | None
    sample_size: int


def rule_message(rule: AlertRule, result: MetricResult) -> str:
    """The one-line state of a rule: the event's message and the notification's text."""
    value = "no data" if result.value is None else f"{result.value:.4g}{rule.unit}"
    scope = rule.chatbot.name if rule.chatbot else "all chatbots"
    return f"{rule.describe_condition()} on {scope}: now {value} ({result.sample_size} turns)."


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
