"""Prometheus metrics at /metrics.

Counters and histograms are recorded in-process (ingest in the web processes, judge in the
workers). With several gunicorn workers or Celery processes, set PROMETHEUS_MULTIPROC_DIR to an
empty shared directory so every process's samples are aggregated at scrape time (the
prometheus_client multiprocess mode). Gauges that describe stored state — queue depth, firing
alerts, pending judgments — are read from Redis and PostgreSQL when /metrics is scraped.
"""

import os

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

INGEST_REQUESTS = Counter("chatmon_ingest_requests_total", "Ingest API requests", ["endpoint", "status"])
INGEST_ITEMS = Counter("chatmon_ingest_items_total", "Turns and LLM calls received", ["kind", "result"])
INGEST_LATENCY = Histogram(
    "chatmon_ingest_request_seconds", "Ingest request duration", ["endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
JUDGE_RESULTS = Counter("chatmon_judge_results_total", "Judge outcomes", ["backend", "outcome"])
JUDGE_LATENCY = Histogram(
    "chatmon_judge_seconds", "Time to judge one turn (model call included)", ["backend"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


class StoredStateCollector(Collector):
    """Gauges read at scrape time: queue depth, alert rule states, pending judgments, rollup lag."""

    def collect(self):
        from django.conf import settings

        queue_depth = GaugeMetricFamily("chatmon_queue_depth", "Messages waiting in a Celery queue", labels=["queue"])
        if settings.REDIS_URL:
            from .selectors import queue_depths

            try:
                for queue, depth in queue_depths().items():
                    queue_depth.add_metric([queue], depth)
            except Exception:  # noqa: BLE001 - an unreachable broker shows as missing samples
                pass
        yield queue_depth

        from django.db.models import Count

        from apps.alerts.models import AlertRule
        from apps.conversations.models import Turn

        rules = GaugeMetricFamily("chatmon_alert_rules", "Enabled alert rules by state", labels=["state"])
        for row in AlertRule.objects.filter(is_enabled=True).values("state").annotate(n=Count("id")):
            rules.add_metric([row["state"]], row["n"])
        yield rules
        pending = GaugeMetricFamily("chatmon_judge_pending_turns", "Sampled turns waiting for the judge")
        pending.add_metric([], Turn.objects.filter(judge_status="pending").count())
        yield pending

        from django.utils import timezone

        from apps.review.models import HourlyStatsState

        # Grows past an hour when beat stops refreshing the rollup: figures stay exact (more is
        # read live), long dashboard windows get slower.
        lag = GaugeMetricFamily(
            "chatmon_dashboard_rollup_lag_seconds", "Time since the end of the last hour summed into the dashboard rollup"
        )
        summed_until = HourlyStatsState.objects.values_list("materialized_until", flat=True).first()
        if summed_until is not None:
            lag.add_metric([], (timezone.now() - summed_until).total_seconds())
        yield lag


def metrics_payload() -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    output = generate_latest(registry)
    stored = CollectorRegistry()
    stored.register(StoredStateCollector())
    return output + generate_latest(stored)
