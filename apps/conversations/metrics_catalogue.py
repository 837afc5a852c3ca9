"""The metric catalogue: every turn metric defined once, for the dashboard, the stats API and alerts.

A metric is a formula over *figures*: additive aggregates over a group of turns (counts and
sums, `figure_aggregates`), which the hourly rollup stores per chatbot and hour and which a
live query computes with the same expressions. So a metric has one value whichever path
produced its figures: `metric_value(name, figures, latency)` is the only place a figure becomes
a rate, an average or a percentile.

Conventions, decided once:
- Windows are (since, until]: a turn exactly on the start belongs to the previous window, so
  back-to-back periods (this week, the week before) never count a turn twice (`window_q`).
- Rates are percentages, 0–100 (an alert threshold of 5 means 5 %), rounded to 4 decimals.
- Averages are rounded to 4 decimals, dollars to 6, latency percentiles to 0.1 ms.
- The denominator of a rate is the turns that can answer the question: thumbs-down rate over
  rated turns, judge average over judged turns, hallucination rate over turns whose grade
  assessed hallucination (`judge_hallucination` not NULL: a grade that did not look at
  hallucination says neither yes nor no, so counting it as "no" would dilute the rate).
- Latency percentiles come from the log-bucket histogram (`apps.core.latency_histogram`,
  within 1 % of PostgreSQL's `percentile_cont`), on the dashboard and in alert rules alike.
- Outcomes (conversion, resolution, handoff, CSAT, NPS) are figures over scores, not turns
  (`score_figure_aggregates`): the outcomes recorded in the window, by the score's timestamp.
- `sampled`: a share, average or percentile says nothing over a handful of turns, so an alert
  rule's minimum sample size applies; totals are evidence by themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import (
    BigIntegerField,
    Count,
    DecimalField,
    F,
    FloatField,
    IntegerField,
    Q,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce

from apps.core.latency_histogram import quantiles

from .choices import RiskLevel
from .models import TOTAL_COST_DIGITS

PERCENT = "%"


@dataclass(frozen=True)
class MetricDef:
    name: str
    label: str
    unit: str  # "turns", "conversations", "tokens", "%", "ms", "USD", "/10", "/5", "NPS", "score", "points"
    # "total" (a figure), "share" (100 × part / whole), "mean" (sum / count), "percentile", "net"
    # (100 × (part − minus) / whole), or "event": a value of something that happened (a
    # clustering run finished), not of a window of turns; alert rules on it are checked when it
    # happens (apps.alerts.theme_alerts).
    kind: str
    definition: str  # one line, for hover text and the README
    part: str = ""  # the figure summed ("total"), counted ("share") or averaged ("mean")
    whole: str = "turns"  # the figure counting the turns the metric is over: its denominator
    quantile: float | None = None
    sampled: bool = False  # the alert rule's minimum sample size applies
    higher_is_better: bool | None = None  # None: neither (volume, tokens)
    digits: int = 4
    trend: bool = True  # shown as a trend on the dashboard
    alert: bool = True  # offered as an alert rule metric
    needs_conversations: bool = False  # counted from conversations, not turns
    # Where the figures come from: "turns" (figure_aggregates), "scores" (score_figure_aggregates)
    # or "conversation_judge" (the completed conversation evaluations of the window,
    # conversation_judge_aggregates).
    source: str = "turns"
    minus: str = ""  # kind "net": 100 × (part − minus) / whole (NPS)

    @property
    def is_percent(self) -> bool:
        return self.unit == PERCENT


# The conversation rubric's criteria (apps.evaluations ConversationEvaluation fields) averaged as
# metrics; human handoff is the `handoff_needed_share` above.
CONVERSATION_CRITERION_METRICS = (
    ("goal_completion", "Goal completion", "Mean goal completion (0–10: did the user get what they came for) of "
     "the conversations judged as a whole in the period."),
    ("resolution", "Resolution (judge)", "Mean resolution (0–10: was the issue resolved) of the conversations "
     "judged as a whole in the period."),
    ("user_frustration", "User calm", "Mean user frustration score (0–10, 10 = the user stayed calm) of the "
     "conversations judged as a whole in the period."),
    ("policy_adherence", "Policy adherence", "Mean policy adherence (0–10) of the conversations judged as a "
     "whole in the period."),
)


def _total(name: str, label: str, unit: str, part: str, definition: str, **kw: Any) -> MetricDef:
    return MetricDef(name=name, label=label, unit=unit, kind="total", part=part, definition=definition, **kw)


def _share(name: str, label: str, part: str, whole: str, definition: str, **kw: Any) -> MetricDef:
    return MetricDef(name=name, label=label, unit=PERCENT, kind="share", part=part, whole=whole,
                     definition=definition, sampled=True, higher_is_better=False, **kw)


CATALOGUE: dict[str, MetricDef] = {m.name: m for m in (
    _total("turn_volume", "Turns", "turns", "turns", "Turns (a user message and the bot's answer) in the period."),
    _total("conversations", "Conversations", "conversations", "conversations",
           "Conversations whose latest activity falls in the period.", alert=False, needs_conversations=True),
    _share("error_rate", "Error rate", "errors", "turns", "Share of turns the bot reported an error for."),
    _share("fallback_rate", "Fallback rate", "fallbacks", "turns",
           "Share of turns answered with the bot's fallback (\"I don't know\") reply."),
    _total("fallback_count", "Fallbacks", "turns", "fallbacks", "Turns answered with the fallback reply.",
           higher_is_better=False, trend=False),
    MetricDef("latency_p50", "Latency p50", "ms", "percentile", "Median response time of the turns that report one.",
              whole="timed", quantile=0.5, sampled=True, higher_is_better=False, digits=1, alert=False),
    MetricDef("latency_p95", "Latency p95", "ms", "percentile",
              "95th percentile of response time: 1 turn in 20 is slower.", whole="timed", quantile=0.95,
              sampled=True, higher_is_better=False, digits=1),
    _share("slow_share", "Slow turns", "slow", "timed", "Share of timed turns slower than the rule's N ms.",
           trend=False),
    _share("thumbs_down_rate", "Thumbs-down rate", "rated_down", "rated",
           "Share of rated turns (👍 or 👎) with at least one 👎."),
    MetricDef("judge_average", "Judge average", "/10", "mean", "Mean overall grade (0–10) of the judged turns.",
              part="judge_sum", whole="judged", sampled=True, higher_is_better=True),
    _share("hallucination_rate", "Hallucination rate", "hallucinations", "hallucination_checked",
           "Share of turns whose grade assessed hallucination that were found hallucinating."),
    _total("flagged_turns", "Flagged turns", "turns", "flagged", "Turns flagged for review (risk, judge, 👎, by hand).",
           higher_is_better=False, trend=False),
    _share("flagged_share", "Flagged share", "flagged", "turns", "Share of turns flagged for review.", alert=False),
    _total("cost_usd", "Cost", "USD", "cost", "Model cost of the turns, LLM calls included, in US dollars.",
           higher_is_better=False, digits=6),
    MetricDef("cost_per_turn", "Cost per turn", "USD", "mean", "Cost divided by turns.", part="cost", whole="turns",
              sampled=True, higher_is_better=False, digits=6, alert=False),
    _total("tokens", "Tokens", "tokens", "tokens", "Prompt and completion tokens of the turns, LLM calls included.",
           alert=False),
    MetricDef("conversation_score", "Conversation judge average", "/10", "mean",
              "Mean overall grade (0–10) of the conversations judged as a whole in the period.",
              part="conversation_judge_sum", whole="conversations_judged", sampled=True, higher_is_better=True,
              source="conversation_judge"),
    _share("conversation_low_share", "Conversations judged low", "conversations_judged_low",
           "conversations_judged",
           "Share of the conversations judged as a whole whose overall is below their chatbot's threshold.",
           source="conversation_judge"),
    _share("handoff_needed_share", "Handoff needed", "conversations_handoff", "conversations_judged",
           "Share of the conversations judged as a whole that needed a human handoff.",
           source="conversation_judge"),
    *(
        MetricDef(f"conversation_{criterion}", label, "/10", "mean", definition,
                  part=f"conversation_{criterion}_sum", whole=f"conversation_{criterion}_judged", sampled=True,
                  higher_is_better=True, source="conversation_judge")
        for criterion, label, definition in CONVERSATION_CRITERION_METRICS
    ),
    # Outcomes: the reserved conversation-level scores (apps.scores), over the outcomes recorded
    # in the period (by the score's timestamp: a sale confirmed the next day counts that day).
    MetricDef("conversion_rate", "Conversion rate", PERCENT, "share",
              "Share of conversations with a `converted` outcome recorded in the period that converted.",
              part="converted_yes", whole="converted_scored", sampled=True, higher_is_better=True, source="scores"),
    MetricDef("resolution_rate", "Resolution rate", PERCENT, "share",
              "Share of conversations with a `resolved` outcome recorded in the period that were resolved.",
              part="resolved_yes", whole="resolved_scored", sampled=True, higher_is_better=True, source="scores"),
    MetricDef("handoff_rate", "Handoff rate", PERCENT, "share",
              "Share of conversations with a `handed_off` outcome (or turn handoff) in the period handed to a human.",
              part="handed_off_yes", whole="handed_off_scored", sampled=True, higher_is_better=False, source="scores"),
    MetricDef("csat_average", "CSAT", "/5", "mean", "Mean `csat` (1–5) recorded in the period.",
              part="csat_sum", whole="csat_count", sampled=True, higher_is_better=True, source="scores"),
    MetricDef("nps", "NPS", "NPS", "net",
              "Net promoter score of the `nps` answers (0–10) in the period: % promoters (9–10) − % detractors (0–6).",
              part="nps_promoters", minus="nps_detractors", whole="nps_count", sampled=True, higher_is_better=True,
              digits=1, source="scores"),
    # Any score by name: an alert rule's parameter (AlertRule.score_name), so never on the dashboard.
    MetricDef("score_average", "Average of a score", "score", "mean",
              "Mean value of the rule's score (booleans count as 1/0) recorded in the window.",
              part="score_sum", whole="score_count", sampled=True, trend=False, source="scores"),
    MetricDef("new_failure_theme", "New failure theme", "turns", "event",
              "Members of the largest theme of a finished clustering run that matches no theme of the "
              "chatbot's previous run.", higher_is_better=False, trend=False),
    MetricDef("theme_share_growth", "Theme share growth", "points", "event",
              "Largest rise of a theme's share of a clustering run's failure turns since the chatbot's "
              "previous run, in percentage points.", higher_is_better=False, trend=False),
)}

TREND_METRICS = tuple(name for name, metric in CATALOGUE.items() if metric.trend)
OUTCOME_METRICS = tuple(name for name, metric in CATALOGUE.items() if metric.source == "scores" and metric.trend)
ALERT_METRICS = tuple(name for name, metric in CATALOGUE.items() if metric.alert)
# Alert metrics over a window of turns (the minute check); the others are events.
WINDOW_ALERT_METRICS = tuple(name for name in ALERT_METRICS if CATALOGUE[name].kind != "event")
EVENT_ALERT_METRICS = tuple(name for name in ALERT_METRICS if CATALOGUE[name].kind == "event")
# The metrics of a breakdown row (by chatbot, model, intent, channel).
BREAKDOWN_METRICS = ("turn_volume", "error_rate", "thumbs_down_rate", "judge_average", "cost_usd")


def _sum(field: str, output: IntegerField | BigIntegerField | FloatField | DecimalField) -> Coalesce:
    return Coalesce(Sum(field), Value(0), output_field=output)


def figure_aggregates() -> dict[str, Any]:
    """Every additive figure the metrics need, as aggregates over a group of turns.

    The names are also HourlyTurnStats' columns; they differ from Turn's fields because an
    annotation may not shadow a column (`votes_up`, not `thumbs_up`).
    """
    integer = IntegerField()
    return {
        "turns": Count("id"),
        "tokens": _sum("total_tokens", BigIntegerField()),
        "cost": _sum("total_cost_usd", DecimalField(max_digits=TOTAL_COST_DIGITS, decimal_places=6)),
        "errors": Count("id", filter=Q(has_error=True)),
        "fallbacks": Count("id", filter=Q(fallback_used=True)),
        "flagged": Count("id", filter=Q(is_flagged=True)),
        "votes_up": _sum("thumbs_up", integer),
        "votes_down": _sum("thumbs_down", integer),
        "rated": Count("id", filter=Q(thumbs_up__gt=0) | Q(thumbs_down__gt=0)),
        "rated_down": Count("id", filter=Q(thumbs_down__gt=0)),
        "judged": Count("judge_overall"),
        "judge_sum": _sum("judge_overall", FloatField()),
        "hallucinations": Count("id", filter=Q(judge_hallucination=True)),
        "hallucination_checked": Count("judge_hallucination"),
        "timed": Count("latency_ms"),
        "latency_sum": _sum("latency_ms", integer),
        **{f"risk_{level}": Count("id", filter=Q(risk_level=level)) for level in RiskLevel.values},
    }


FIGURES = tuple(figure_aggregates())


def conversation_judge_aggregates() -> dict[str, Any]:
    """The conversation judge's additive figures, as aggregates over completed conversation
    evaluations (apps.evaluations ConversationEvaluation rows; a window is on `completed_at`)."""
    return {
        "conversations_judged": Count("overall"),
        "conversation_judge_sum": _sum("overall", FloatField()),
        "conversations_judged_low": Count("id", filter=Q(overall__lt=F("chatbot__conversation_judge_flag_below"))),
        "conversations_handoff": Count("id", filter=Q(handoff_needed=True)),
        # Per criterion over the grades that scored it (a criterion may be left empty).
        **{
            figure: aggregate
            for criterion, _, _ in CONVERSATION_CRITERION_METRICS
            for figure, aggregate in (
                (f"conversation_{criterion}_sum", _sum(criterion, FloatField())),
                (f"conversation_{criterion}_judged", Count(criterion)),
            )
        },
    }


CONVERSATION_JUDGE_FIGURES = tuple(conversation_judge_aggregates())


def score_figure_aggregates(score_name: str = "") -> dict[str, Any]:
    """The figures of the outcome metrics, as aggregates over a group of scores (apps.scores'
    Score: name, value, conversation_id; booleans are 1/0). Rates count conversations, once each
    (a conversation handed off on two turns is one handoff); CSAT and NPS average the answers.
    With `score_name`, also `score_sum`/`score_count` of that score (the `score_average` metric)."""
    def named(name: str, **value: Any) -> Q:
        return Q(name=name, value__isnull=False, **value)

    conversations = {"output_field": IntegerField(), "distinct": True}
    aggregates: dict[str, Any] = {}
    for outcome in ("converted", "resolved", "handed_off"):
        aggregates[f"{outcome}_yes"] = Count("conversation_id", filter=named(outcome, value=1), **conversations)
        aggregates[f"{outcome}_scored"] = Count("conversation_id", filter=named(outcome), **conversations)
    aggregates |= {
        "csat_sum": Coalesce(Sum("value", filter=named("csat")), Value(0.0), output_field=FloatField()),
        "csat_count": Count("id", filter=named("csat")),
        "nps_promoters": Count("id", filter=named("nps", value__gte=9)),
        "nps_detractors": Count("id", filter=named("nps", value__lte=6)),
        "nps_count": Count("id", filter=named("nps")),
    }
    if score_name:
        aggregates["score_sum"] = Coalesce(Sum("value", filter=named(score_name)), Value(0.0), output_field=FloatField())
        aggregates["score_count"] = Count("id", filter=named(score_name))
    return aggregates


SCORE_FIGURES = tuple(score_figure_aggregates())


def slow_aggregate(slow_ms: int) -> Count:
    """The `slow` figure of `slow_share`: a parameter of the rule, so never rolled up."""
    return Count("id", filter=Q(latency_ms__gt=slow_ms))


def window_q(since: datetime, until: datetime, field: str = "timestamp") -> Q:
    """The turns of the window (since, until]."""
    return Q(**{f"{field}__gt": since, f"{field}__lte": until})


def figures_for(metric: str) -> tuple[str, ...]:
    """The figures `metric_value` reads for `metric`."""
    definition = CATALOGUE[metric]
    return tuple(name for name in (definition.part, definition.minus, definition.whole) if name)


def metric_value(metric: str, figures: Mapping[str, Any], latency: Mapping[int, int] | None = None) -> tuple[Any, int]:
    """(value, sample size) of `metric` from a group's figures (and latency histogram for
    percentiles). The value is None when the metric is over no turns (a rate with nothing rated)."""
    definition = CATALOGUE.get(metric)
    if definition is None:
        raise ValueError(f"unknown metric {metric!r}")
    if definition.kind == "event":
        raise ValueError(f"{metric!r} is an event metric: it has no value over a group of turns")
    whole = int(figures.get(definition.whole) or 0)
    if definition.kind == "percentile":
        counts = latency or {}
        whole = sum(counts.values())
        value = quantiles(counts, (definition.quantile,))[definition.quantile] if whole else None
        return value, whole
    if definition.kind == "total":
        value = figures.get(definition.part) or 0
        if isinstance(value, (Decimal, float)):
            value = round(float(value), definition.digits)
        return value, whole
    if not whole:
        return None, 0
    if definition.kind == "net":
        net = int(figures.get(definition.part) or 0) - int(figures.get(definition.minus) or 0)
        return round(100.0 * net / whole, definition.digits), whole
    # A float sum depends on the order it was added in (turn by turn, or hour sums from the
    # rollup): 6 decimals make the paths agree before the division is rounded.
    part = round(float(figures.get(definition.part) or 0), 6)
    scale = 100.0 if definition.kind == "share" else 1.0
    return round(scale * part / whole, definition.digits), whole


def change(current: float | None, previous: float | None, higher_is_better: bool | None) -> dict[str, Any]:
    """How `current` compares to the previous period: direction, relative % and whether that is good."""
    if current is None or previous is None:
        return {"previous": previous, "direction": None, "percent": None, "good": None}
    direction = "up" if current > previous else "down" if current < previous else "flat"
    percent = round((current - previous) * 100.0 / abs(previous), 1) if previous else None
    good = None if higher_is_better is None or direction == "flat" else (direction == "up") == higher_is_better
    return {"previous": previous, "direction": direction, "percent": percent, "good": good}


def catalogue_as_json() -> list[dict[str, Any]]:
    return [
        {"name": m.name, "label": m.label, "unit": m.unit, "kind": m.kind, "definition": m.definition,
         "over": m.whole, "sampled": m.sampled, "higher_is_better": m.higher_is_better, "alert": m.alert}
        for m in CATALOGUE.values()
    ]
