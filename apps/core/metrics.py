"""Prometheus metrics at /metrics.

Counters and histograms are recorded in-process (ingest in the web processes, judge in the
workers). With several gunicorn workers or Celery processes, set PROMETHEUS_MULTIPROC_DIR to an
empty shared directory so every process's samples are aggregated at scrape time (the
prometheus_client multiprocess mode). Gauges that describe stored state — queue depth, firing
alerts, pending judgments — are read from Redis and PostgreSQL when /metrics is scraped.
"""

import os
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
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
# Redis unreachable (apps.core.resilience): the request path failed open instead of failing.
REDIS_FAILURES = Counter(
    "chatmon_redis_failures_total", "Cache or broker operations that failed and were skipped", ["kind"]
)
# Every task publish from chatmon's own code (apps.core.queue): sent, failed (broker error), or
# skipped (the broker circuit breaker is open; the sweepers pick the work up later).
ENQUEUE_RESULTS = Counter("chatmon_enqueue_total", "Task publishes by outcome", ["task", "result"])


_stored_gauges: list[Callable[[], Iterable[Metric]]] = []


def stored_gauge(collect: Callable[[], Iterable[Metric]]) -> Callable[[], Iterable[Metric]]:
    """Register `collect()`, which yields gauges read from stored state at scrape time.

    Apps register theirs from AppConfig.ready() (alert rule states, pending judgments, rollup
    lag), so core reports on them without importing them.
    """
    _stored_gauges.append(collect)
    return collect


class StoredStateCollector(Collector):
    """Gauges read at scrape time: queue depth here, then every registered `stored_gauge`."""

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

        for collect in _stored_gauges:
            yield from collect()


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
