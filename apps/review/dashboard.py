"""The admin dashboard's context: the filter form, `selectors.stats_overview`, trend cards,
chart series, the breakdown table, and the changelist links behind every number.

Every metric's label, unit, definition and whether up is good come from the metric catalogue
(apps.conversations.metrics_catalogue); this module only formats them.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from apps.chatbots.access import chatbot_ids_for_user, chatbots_for_user
from apps.clustering.selectors import drift_highlights
from apps.conversations.metrics_catalogue import (
    BREAKDOWN_METRICS,
    CATALOGUE,
    OUTCOME_METRICS,
    TREND_METRICS,
)

from .selectors import BREAKDOWNS, DASHBOARD_RANGES, OUTCOME_BREAKDOWNS, Window, stats_overview
from .templatetags.review_tags import usd

CUSTOM = "custom"
# What a metric's number links to: extra changelist filters on the window's turns.
METRIC_FILTERS: dict[str, dict[str, str]] = {
    "error_rate": {"has_error__exact": "1"},
    "fallback_rate": {"fallback_used__exact": "1"},
    "thumbs_down_rate": {"rating": "down"},
    "judge_average": {"judge_status__exact": "done"},
    "hallucination_rate": {"judge_hallucination__exact": "1"},
    "flagged_share": {"is_flagged__exact": "1"},
}
# The score each outcome metric is over: its cards link to those scores in the window.
OUTCOME_SCORES = {"conversion_rate": "converted", "resolution_rate": "resolved", "handoff_rate": "handed_off",
                  "csat_average": "csat", "nps": "nps"}
# What an outcome cell of the breakdown links to: the group's conversations with that outcome.
OUTCOME_CONDITIONS = {"conversion_rate": "converted=true", "resolution_rate": "resolved=true",
                      "handoff_rate": "handed_off=true", "csat_average": "csat<=2", "nps": "nps<=6"}
BREAKDOWN_PARAMS = {"chatbot": "chatbot", "model": "model", "intent": "intent", "channel": "channel",
                    "release": "release"}


def metric_format(name: str, value: Any) -> str:
    """A metric's value with the precision that matters for its unit."""
    if value is None:
        return "—"
    unit = CATALOGUE[name].unit
    if unit == "%":
        return f"{value:.1f} %" if value >= 10 or value == 0 else f"{value:.2f} %"
    if unit == "ms":
        return f"{value:,.0f} ms"
    if unit == "USD":
        return usd(value)
    if unit in ("/10", "/5"):
        return f"{value:.2f}"
    if unit == "NPS":
        return f"{value:+.0f}"
    return f"{int(value):,}"


def _stamp(moment: datetime) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S")


def _window(request: HttpRequest, range_key: str) -> tuple[Window, str, str]:
    """The custom window (whole local days since … until, both included), or the last 24 h."""
    def day(name: str) -> date | None:
        try:
            return date.fromisoformat(request.GET.get(name, ""))
        except ValueError:
            return None

    first, last = day("since"), day("until")
    if first is None or last is None or last < first or (last - first).days > 366:
        messages.warning(request, "A custom range needs since ≤ until (YYYY-MM-DD, at most a year); showing the last 24 hours.")
        return Window.last(24), "24h", ""
    tz = timezone.get_current_timezone()
    since = timezone.make_aware(datetime.combine(first, time.min), tz)
    until = min(timezone.make_aware(datetime.combine(last + timedelta(days=1), time.min), tz), timezone.now())
    return Window.between(since, until), CUSTOM, ""


def dashboard_context(request: HttpRequest) -> dict[str, Any]:
    visible = list(chatbots_for_user(request.user).values_list("id", "name", "slug"))
    range_key = request.GET.get("range", "24h")
    if range_key not in DASHBOARD_RANGES and range_key != CUSTOM:
        messages.warning(request, f"Unknown range {range_key!r}; showing the last 24 hours.")
        range_key = "24h"
    wanted = request.GET.get("chatbot", "")
    selected = next((row for row in visible if wanted and str(row[0]) == wanted), None)
    if wanted and selected is None:
        messages.warning(request, "That chatbot does not exist or is not one you review; showing all of yours.")
    chatbot_ids = [selected[0]] if selected else chatbot_ids_for_user(request.user)
    by = request.GET.get("by", "chatbot")
    if by not in BREAKDOWNS:
        by = "chatbot"

    if range_key == CUSTOM:
        window, range_key, _ = _window(request, range_key)
    else:
        window = Window.last(DASHBOARD_RANGES[range_key])
    hours = DASHBOARD_RANGES.get(range_key)
    stats = stats_overview(chatbot_ids=chatbot_ids, hours=hours, window=None if hours else window, breakdown=by)
    window = Window(since=stats["window"]["since"], until=stats["window"]["until"], hours=stats["window"]["hours"])

    turns_url = reverse("admin:conversations_turn_changelist")
    scope = {"chatbot": str(selected[0])} if selected else {}
    in_window = {"timestamp__gte": _stamp(window.since), "timestamp__lt": _stamp(window.until + timedelta(seconds=1))}

    def turns_link(**filters: str) -> str:
        return f"{turns_url}?{urlencode({**scope, **in_window, **filters})}"

    def metric_link(name: str, **filters: str) -> str:
        if CATALOGUE[name].source == "scores":  # the outcomes recorded in the window
            score = OUTCOME_SCORES[name]
            query = {**scope, "name": score, "timestamp__gte": in_window["timestamp__gte"],
                     "timestamp__lt": in_window["timestamp__lt"]}
            return f"{reverse('admin:scores_score_changelist')}?{urlencode(query)}"
        if name == "conversations":
            query = {**scope, "last_activity_at__gte": in_window["timestamp__gte"],
                     "last_activity_at__lt": in_window["timestamp__lt"]}
            return f"{reverse('admin:conversations_conversation_changelist')}?{urlencode(query)}"
        return turns_link(**METRIC_FILTERS.get(name, {}), **filters)

    trend = stats["trend"]
    daily = trend["interval"] == "day"
    labels = [timezone.localtime(p).strftime("%d %b" if daily else "%d %b %H:00") for p in trend["periods"]]
    cards, outcome_cards = [], []
    for name in TREND_METRICS:
        definition, figure = CATALOGUE[name], stats["metrics"][name]
        tone = "" if figure["good"] is None else ("good" if figure["good"] else "bad")
        (outcome_cards if name in OUTCOME_METRICS else cards).append({
            "name": name, "label": definition.label, "unit": definition.unit, "definition": definition.definition,
            "over": "outcomes" if name in OUTCOME_METRICS else "turns",
            "value": metric_format(name, figure["value"]), "sample_size": figure["sample_size"],
            "previous": metric_format(name, figure["previous"]), "direction": figure["direction"],
            "percent": figure["percent"], "tone": tone, "url": metric_link(name),
        })

    table = stats["breakdown"]
    columns = [m for m in table["metrics"] if m in BREAKDOWN_METRICS or by in OUTCOME_BREAKDOWNS]
    peaks = {metric: max((row[metric] or 0 for row in table["rows"]), default=0) for metric in columns}
    conversations_url = reverse("admin:conversations_conversation_changelist")
    rows = []
    for row in table["rows"]:
        group = {BREAKDOWN_PARAMS[by]: "" if row["key"] is None else str(row["key"])}

        def cell_link(metric: str, group: dict[str, str] = group) -> str:
            if metric in OUTCOME_METRICS:  # the group's conversations with that outcome
                return f"{conversations_url}?{urlencode({**scope, **group, 'score': OUTCOME_CONDITIONS[metric]})}"
            return turns_link(**group, **METRIC_FILTERS.get(metric, {}))

        rows.append({
            "label": row["label"],
            "cells": [
                {"metric": metric, "value": row[metric], "text": metric_format(metric, row[metric]),
                 "bar": round(100 * max(row[metric] or 0, 0) / peaks[metric]) if peaks[metric] > 0 else 0,
                 "url": cell_link(metric)}
                for metric in columns
            ],
        })

    charts = {
        "labels": labels,
        "interval": trend["interval"],
        "volume": trend["counts"],
        "cost": trend["series"]["cost_usd"],
        "judge": trend["series"]["judge_average"],
        "latency": {"p50": trend["series"]["latency_p50"], "p95": trend["series"]["latency_p95"]},
        "sparklines": {name: trend["series"][name] for name in TREND_METRICS},
        "risk": {"labels": list(stats["risk_distribution"]), "counts": list(stats["risk_distribution"].values())},
    }
    return {
        "dashboard": stats,
        "dashboard_charts": charts,
        "dashboard_cards": cards,
        "dashboard_outcome_cards": outcome_cards,
        "dashboard_breakdown": {
            "by": by, "choices": list(BREAKDOWNS), "rows": rows,
            "columns": [{"name": m, "label": CATALOGUE[m].label, "definition": CATALOGUE[m].definition}
                        for m in columns],
            "limit": table["limit"], "groups": table["groups"],
        },
        "dashboard_chatbots": [{"id": pk, "name": name, "slug": slug} for pk, name, slug in visible],
        "dashboard_selected": selected[0] if selected else None,
        "dashboard_ranges": [*DASHBOARD_RANGES, CUSTOM],
        "dashboard_range": range_key,
        "dashboard_since": timezone.localtime(window.since).date().isoformat(),
        "dashboard_until": timezone.localtime(window.until).date().isoformat(),
        "dashboard_turns_url": turns_link(),
        # Engagement is fetched after rendering (its own request; read from the conversation summaries).
        "dashboard_engagement_url": f"{reverse('stats-engagement')}?" + urlencode({
            **scope, "since": window.since.isoformat(), "until": window.until.isoformat()}),
        "dashboard_drift": drift_highlights(chatbot_ids=chatbot_ids),
    }
