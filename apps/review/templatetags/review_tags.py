"""Small formatting filters for the dashboard and the review page. Output stays auto-escaped:
none of these marks anything safe."""

from __future__ import annotations

from typing import Any

from django import template

from apps.conversations.choices import FlagReason, ReviewStatus

register = template.Library()


@register.filter
def percent(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "—"
    return f"{value * 100:.{digits}f} %"


@register.filter
def usd(value: Any) -> str:
    """Dollars with the precision that matters: cents from $1, four decimals down to $0.0001,
    then two significant digits ($0.000011), so a cheap call never reads as $0.0000."""
    if value is None:
        return "—"
    value = float(value)
    if value == 0:
        return "$0"
    if abs(value) >= 1:
        return f"${value:,.2f}"
    if abs(value) >= 0.0001:
        return f"${value:.4f}"
    return f"${value:.2g}" if "e" not in f"{value:.2g}" else "$" + f"{value:.8f}".rstrip("0")


@register.filter
def usd_short(value: Any) -> str:
    """Dollars for a summary line: below a hundredth of a cent it just says so."""
    if value is None:
        return "—"
    value = float(value)
    if 0 < value < 0.0001:
        return "< $0.0001"
    return usd(value)


@register.filter
def attr_value(obj: Any, name: str) -> Any:
    """A field of `obj` by name, for a form pre-filled from a model (empty for None)."""
    value = getattr(obj, name, None)
    return "" if value is None else (f"{value:g}" if isinstance(value, float) else value)


@register.filter
def number(value: Any, digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}" if digits else f"{int(round(value)):,}"


@register.filter
def flag_reason(value: str) -> str:
    return FlagReason(value).label if value in FlagReason.values else str(value)


@register.filter
def review_status(value: str) -> str:
    """'in_review' → 'In review': the choice's label, never the stored value."""
    return ReviewStatus(value).label if value in ReviewStatus.values else str(value)


@register.filter
def alert_figure(value: float | None, metric: str) -> str:
    """An alert's value or threshold in its metric's unit: '19.4 %', '4,300 ms', '$1.20'."""
    from apps.alerts.choices import METRIC_UNITS, PERCENT_METRICS

    if value is None:
        return "—"
    if metric in PERCENT_METRICS:
        return f"{value:.1f} %"
    unit = METRIC_UNITS.get(metric, "")
    if unit == "USD":
        return f"${value:,.2f}"
    if unit == "/10":
        return f"{value:.1f}/10"
    return f"{value:,.0f} {unit}".rstrip()


@register.filter
def alert_metric(metric: str) -> str:
    """'thumbs_down_rate' → 'Thumbs-down rate' (the metric's label without its explanation)."""
    from apps.alerts.choices import Metric

    return Metric(metric).label.split(" (")[0] if metric in Metric.values else metric


@register.filter
def risk_reason(reason: Any) -> str:
    """One matched rule as text: '<rule> (+points, severity): matched …' from whatever shape it has."""
    if not isinstance(reason, dict):
        return str(reason)
    name = reason.get("rule") or reason.get("name") or reason.get("rule_name") or reason.get("code") or "rule"
    parts = [str(name)]
    details = []
    if reason.get("points") is not None:
        details.append(f"+{reason['points']}")
    for key in ("severity", "field", "applies_to"):
        if reason.get(key):
            details.append(str(reason[key]))
    if details:
        parts.append(f"({', '.join(details)})")
    matched = reason.get("matched") or reason.get("match") or reason.get("matches") or reason.get("keyword")
    if matched:
        matched_text = ", ".join(map(str, matched)) if isinstance(matched, list | tuple) else str(matched)
        parts.append(f"matched: {matched_text}")
    return " ".join(parts)


@register.filter
def score(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"
