"""Reads over the turn aggregate that are not the dashboard's: the steps analysis."""

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Avg, Count, Max, Min, Q
from django.utils import timezone

from apps.chatbots.access import chatbot_scoped
from apps.core.db import PercentileCont, percentile_cont_portable

from .models import Step

POINTS = (0.5, 0.95)


def step_stats(*, chatbot_ids: Sequence[int] | None, hours: int, kind: str | None = None,
               now: datetime | None = None, limit: int = 10) -> dict[str, Any]:
    """Steps in the window (the chat-logging design's /sql-queries/analysis, for every kind):

    1. count, errors, error rate (errors / count) and p50/p95 duration (percentile_cont, so
       interpolated like numpy's default) over the steps that have a duration;
    2. per fingerprint (SQL with its literals replaced; other kinds by name): count, errors,
       average and slowest duration; the `limit` slowest by average and the `limit` most failing
       (most errors, then most runs).
    """
    until = now or timezone.now()
    steps = chatbot_scoped(Step.objects.filter(timestamp__gte=until - timedelta(hours=hours), timestamp__lte=until),
                           chatbot_ids)
    if kind:
        steps = steps.filter(kind=kind)
    aggregates: dict[str, Any] = {"count": Count("id"), "errors": Count("id", filter=Q(success=False)),
                                  "timed": Count("duration_ms")}
    postgres = connection.vendor == "postgresql"
    if postgres:
        aggregates |= {f"p{int(p * 100)}": PercentileCont("duration_ms", percentile=p, filter=Q(duration_ms__isnull=False))
                       for p in POINTS}
    totals = steps.order_by().aggregate(**aggregates)
    if postgres:
        percentiles = {p: totals[f"p{int(p * 100)}"] for p in POINTS}
    else:
        percentiles = percentile_cont_portable(steps, "duration_ms", POINTS, count=totals["timed"])
    groups = steps.order_by().values("fingerprint").annotate(
        count=Count("id"), errors=Count("id", filter=Q(success=False)), avg_duration_ms=Avg("duration_ms"),
        max_duration_ms=Max("duration_ms"), kind=Min("kind"), name=Min("name"), shape=Min("shape"),
    )

    def row(group: dict[str, Any]) -> dict[str, Any]:
        return {
            "fingerprint": group["fingerprint"], "kind": group["kind"], "name": group["name"], "query": group["shape"],
            "count": group["count"], "errors": group["errors"],
            "error_rate": round(group["errors"] / group["count"], 4) if group["count"] else None,
            "avg_duration_ms": round(group["avg_duration_ms"], 3) if group["avg_duration_ms"] is not None else None,
            "max_duration_ms": group["max_duration_ms"],
        }

    slowest = groups.filter(avg_duration_ms__isnull=False).order_by("-avg_duration_ms", "fingerprint")[:limit]
    failing = groups.filter(errors__gt=0).order_by("-errors", "-count", "fingerprint")[:limit]
    return {
        "hours": hours,
        "kind": kind,
        "count": totals["count"],
        "errors": totals["errors"],
        "error_rate": round(totals["errors"] / totals["count"], 4) if totals["count"] else None,
        "duration_ms": {"p50": _rounded(percentiles[0.5]), "p95": _rounded(percentiles[0.95])},
        "slowest": [row(g) for g in slowest],
        "most_failing": [row(g) for g in failing],
    }


def _rounded(value: float | None) -> float | None:
    return round(value, 3) if value is not None else None
