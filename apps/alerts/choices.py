from django.db import models

from apps.conversations.metrics_catalogue import ALERT_METRICS, CATALOGUE, EVENT_ALERT_METRICS


class Metric(models.TextChoices):
    ERROR_RATE = "error_rate", "Error rate (share of turns)"
    FALLBACK_RATE = "fallback_rate", "Fallback rate (share of turns)"
    FALLBACK_COUNT = "fallback_count", "Fallbacks (count)"
    LATENCY_P95 = "latency_p95", "p95 latency (ms)"
    SLOW_SHARE = "slow_share", "Share of turns slower than N ms"
    THUMBS_DOWN_RATE = "thumbs_down_rate", "Thumbs-down rate (of rated turns)"
    JUDGE_AVERAGE = "judge_average", "Average judge overall"
    HALLUCINATION_RATE = "hallucination_rate", "Hallucination rate (of turns assessed for it)"
    FLAGGED_TURNS = "flagged_turns", "Flagged turns (count)"
    COST_USD = "cost_usd", "Cost (USD)"
    TURN_VOLUME = "turn_volume", "Turn volume (count)"
    NEW_FAILURE_THEME = "new_failure_theme", "New failure theme (members)"
    THEME_SHARE_GROWTH = "theme_share_growth", "Theme share grew (points)"
    CONVERSATION_SCORE = "conversation_score", "Average conversation judge overall"
    CONVERSATION_LOW_SHARE = "conversation_low_share", "Conversations judged below the threshold (share)"
    HANDOFF_NEEDED_SHARE = "handoff_needed_share", "Conversations that needed a human handoff (share)"
    CONVERSATION_GOAL_COMPLETION = "conversation_goal_completion", "Average conversation goal completion"
    CONVERSATION_RESOLUTION = "conversation_resolution", "Average conversation resolution (judge)"
    CONVERSATION_USER_FRUSTRATION = "conversation_user_frustration", "Average user calm (10 = no frustration)"
    CONVERSATION_POLICY_ADHERENCE = "conversation_policy_adherence", "Average conversation policy adherence"
    CONVERSION_RATE = "conversion_rate", "Conversion rate (of conversations with the outcome)"
    RESOLUTION_RATE = "resolution_rate", "Resolution rate (of conversations with the outcome)"
    HANDOFF_RATE = "handoff_rate", "Handoff rate (of conversations with the outcome)"
    CSAT_AVERAGE = "csat_average", "CSAT average (1–5)"
    NPS = "nps", "NPS (−100 to 100)"
    SCORE_AVERAGE = "score_average", "Average of the score named below"


class Comparison(models.TextChoices):
    GT = "gt", ">"
    GTE = "gte", "≥"
    LT = "lt", "<"
    LTE = "lte", "≤"


class Severity(models.TextChoices):
    """How urgent an alert is: rules, events and notifications (webhook bodies carry the value).

    Risk has its own scale, RiskLevel (apps.conversations.choices): a turn's level and the
    severity of a detection rule's match.
    """

    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"


class RuleState(models.TextChoices):
    OK = "ok", "OK"
    FIRING = "firing", "Firing"
    ERROR = "error", "Error"


class EventStatus(models.TextChoices):
    FIRING = "firing", "Firing"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"


# An event is open until resolved; a rule has at most one open event.
OPEN_STATUSES = (EventStatus.FIRING, EventStatus.ACKNOWLEDGED)


class ChannelKind(models.TextChoices):
    SLACK = "slack", "Slack incoming webhook"
    DISCORD = "discord", "Discord webhook"
    WEBHOOK = "webhook", "Generic webhook"
    EMAIL = "email", "Email"
    LOG = "log", "Server log — demos and tests"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    RETRYING = "retrying", "Retrying"
    FAILED = "failed", "Failed"


class NotificationKind(models.TextChoices):
    FIRING = "firing", "Alert firing"
    RENOTIFY = "renotify", "Still firing"
    RESOLVED = "resolved", "Resolved"
    RISK = "risk", "Risky turn"
    TEST = "test", "Test"


# Units, the minimum-sample rule and the definitions come from the metric catalogue
# (apps.conversations.metrics_catalogue): rates are percentages (0–100), so a threshold of 5
# means 5 %; shares, averages and percentiles obey the rule's minimum sample size, totals
# (counts, cost, volume) are evidence by themselves — a drop of turn volume to zero can fire.
SAMPLED_METRICS = frozenset(Metric(name) for name in ALERT_METRICS if CATALOGUE[name].sampled)
PERCENT_METRICS = frozenset(Metric(name) for name in ALERT_METRICS if CATALOGUE[name].is_percent)
METRIC_UNITS = {
    Metric(name): CATALOGUE[name].unit for name in ALERT_METRICS if CATALOGUE[name].unit in ("%", "ms", "USD", "/10", "/5")
}
# Checked when a clustering run finishes (theme_alerts.py), never by the minute check.
THEME_METRICS = frozenset(Metric(name) for name in EVENT_ALERT_METRICS)
