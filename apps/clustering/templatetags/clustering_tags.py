"""Formatting of themes for the run page and the dashboard panel."""

from django import template
from django.utils.html import format_html

from ..choices import FailureSource
from ..models import Cluster

register = template.Library()


@register.filter
def share_percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


@register.filter
def source_label(value: str) -> str:
    return FailureSource(value).label if value in FailureSource.values else value


@register.simple_tag
def theme_change(cluster: Cluster) -> str:
    """"new", "+12.5 pts", "−3.0 pts" or "—" (no previous run, or the 'other' bucket)."""
    if cluster.is_noise or cluster.is_new is None:
        return "—"
    if cluster.is_new:
        return format_html('<span class="{}">new</span>', "cm-badge-new")
    change = cluster.share_change or 0.0
    css = "cm-up" if change > 0 else "cm-down" if change < 0 else ""
    return format_html('<span class="{}">{}{} pts</span>', css, "+" if change > 0 else "−" if change < 0 else "±",
                       f"{abs(change):.1f}")
