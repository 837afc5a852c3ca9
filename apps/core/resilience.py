"""Redis is optional for correctness: what the request path does when it is unreachable.

Policy (SECURITY.md "Redis unreachable"): the cache fails open (a miss, the default, or "stored"),
publishing a task fails fast and then pauses, and every such failure is counted in /metrics
(`chatmon_redis_failures_total{kind}`) and logged at most once a minute per kind, so an outage
shows up without drowning the logs in one line per request.
"""

from __future__ import annotations

import logging
import threading
import time

logger = logging.getLogger("chatmon.redis")

LOG_EVERY_SECONDS = 60.0

_last_logged: dict[str, float] = {}
_lock = threading.Lock()


def redis_failure_record(kind: str, exc: BaseException) -> None:
    """Count one failure of `kind` ("cache", "broker"); log it unless one was logged this minute."""
    from .metrics import REDIS_FAILURES

    REDIS_FAILURES.labels(kind).inc()
    now = time.monotonic()
    with _lock:
        if now - _last_logged.get(kind, -LOG_EVERY_SECONDS) < LOG_EVERY_SECONDS:
            return
        _last_logged[kind] = now
    logger.warning(
        "redis.unreachable: %s failed (%s: %s); failing open, next log line in %d s at the earliest",
        kind, type(exc).__name__, exc, LOG_EVERY_SECONDS,
        extra={"kind": kind},
    )


class CircuitBreaker:
    """Per process: after a failure, callers skip the dependency for a while (then try once).

    No half-open bookkeeping: the first call after the pause is the probe; if it fails, the
    breaker opens again. Thread-safe enough for gunicorn threads (a race costs one extra try).
    """

    def __init__(self) -> None:
        self._open_until = 0.0

    def is_open(self) -> bool:
        return time.monotonic() < self._open_until

    def trip(self, seconds: float) -> None:
        self._open_until = time.monotonic() + seconds

    def reset(self) -> None:
        self._open_until = 0.0
