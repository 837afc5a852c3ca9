"""The admin dashboard's context: the filter form, `selectors.stats_overview`, chart series."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest
from django.utils import timezone

from apps.chatbots.access import chatbot_ids_for_user, chatbots_for_user

from .selectors import DASHBOARD_RANGES, stats_overview


def dashboard_context(request: HttpRequest) -> dict[str, Any]:
    visible = list(chatbots_for_user(request.user).values_list("id", "name", "slug"))
    range_key = request.GET.get("range", "24h")
    if range_key not in DASHBOARD_RANGES:
        messages.warning(request, f"Unknown range {range_key!r}; showing the last 24 hours.")
        range_key = "24h"
    wanted = request.GET.get("chatbot", "")
    selected = next((row for row in visible if wanted and str(row[0]) == wanted), None)
    if wanted and selected is None:
        messages.warning(request, "That chatbot does not exist or is not one you review; showing all of yours.")
    chatbot_ids = [selected[0]] if selected else chatbot_ids_for_user(request.user)

    stats = stats_overview(chatbot_ids=chatbot_ids, hours=DASHBOARD_RANGES[range_key])
    hourly = range_key == "24h"
    local = timezone.localtime
    charts = {
        "volume": {
            "labels": [local(h["hour"]).strftime("%d %b %H:00") for h in stats["by_hour"]],
            "turns": [h["turns"] for h in stats["by_hour"]],
            "errors": [h["errors"] for h in stats["by_hour"]],
            "flagged": [h["flagged"] for h in stats["by_hour"]],
        },
        "cost": {
            "labels": [d["date"].isoformat() for d in stats["by_day"]],
            "cost": [d["cost_usd"] for d in stats["by_day"]],
        },
        "judge": {
            "labels": (
                [local(h["hour"]).strftime("%H:00") for h in stats["by_hour"]]
                if hourly else [d["date"].isoformat() for d in stats["by_day"]]
            ),
            "average": [row["judge_average"] for row in (stats["by_hour"] if hourly else stats["by_day"])],
        },
        "risk": {
            "labels": list(stats["risk_distribution"].keys()),
            "counts": list(stats["risk_distribution"].values()),
        },
    }
    judge_points = [p for p in charts["judge"]["average"] if p is not None]
    return {
        "dashboard": stats,
        "dashboard_charts": charts,
        "dashboard_chatbots": [{"id": pk, "name": name, "slug": slug} for pk, name, slug in visible],
        "dashboard_selected": selected[0] if selected else None,
        "dashboard_ranges": list(DASHBOARD_RANGES),
        "dashboard_range": range_key,
        "dashboard_judge_change": round(judge_points[-1] - judge_points[0], 2) if len(judge_points) >= 2 else None,
    }
