"""The embedded scheduler: CELERY_BEAT_SCHEDULE run in a thread of the dev server (`demo_server`).

Without a broker (the embedded default) no `celery beat` runs, so alert checks, the judge sweep,
scheduled clustering and retention would never happen in `make demo`. This thread runs the same
schedule, in process, while `manage.py demo_server` serves.

It must never run beside a real beat (every periodic job twice), under gunicorn (one copy per
worker) or in tests, so it starts only when all of these hold (`embedded_scheduler_refusal`):
1. settings.EMBEDDED_SCHEDULER is on (default: DEBUG and no REDIS_URL; off in production);
2. the process is not gunicorn, a Celery worker/beat, or pytest;
3. it has not started in this process already (a module-level lock and flag).
`demo_server` calls it from `inner_run`, which the autoreloader runs in the serving child only,
so the watching parent process never starts a second one.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

logger = logging.getLogger(__name__)

_started_lock = threading.Lock()
_started: threading.Thread | None = None
# Longest sleep between looks at the schedule (a stop request is seen at once anyway).
MAX_SLEEP_SECONDS = 30.0


def embedded_scheduler_refusal(
    *, enabled: bool, argv: Sequence[str], environ: Mapping[str, str], modules: Mapping[str, Any]
) -> str | None:
    """Why the embedded scheduler must not start in this process, or None when it may."""
    if not enabled:
        return "EMBEDDED_SCHEDULER is off"
    program = os.path.basename(argv[0]) if argv else ""
    if "gunicorn" in program or "gunicorn" in environ.get("SERVER_SOFTWARE", "") or "gunicorn.arbiter" in modules:
        return "running under gunicorn (use celery beat)"
    if "celery" in program or "celery.bin.celery" in modules or "celery.apps.worker" in modules:
        return "running under celery (celery beat runs the schedule)"
    if "pytest" in modules or "PYTEST_CURRENT_TEST" in environ:
        return "running under tests"
    return None


@dataclass
class _Entry:
    name: str
    task: str
    schedule: Any  # a celery.schedules.schedule or crontab
    last_run_at: datetime = field(default_factory=timezone.now)


def _entries(beat_schedule: Mapping[str, Mapping[str, Any]]) -> list[_Entry]:
    from celery.schedules import maybe_schedule

    return [_Entry(name=name, task=spec["task"], schedule=maybe_schedule(spec["schedule"]))
            for name, spec in beat_schedule.items()]


def _task_run(task_path: str) -> None:
    from celery import current_app
    from kombu.utils.imports import symbol_by_name

    # By registered name, as beat sends it; a module not imported yet is imported by its path
    # (new task names are their module paths).
    try:
        task = current_app.tasks[task_path]
    except KeyError:
        task = symbol_by_name(task_path)
    # apply(): run here and now, as a worker would (retries included), whatever the broker.
    result = task.apply()
    if result.failed():
        logger.error("embedded scheduler: %s failed: %s", task_path, result.result)


def scheduler_tick(entries: Sequence[_Entry]) -> float:
    """Run every due entry once; returns the seconds until one may be due next."""
    next_check = MAX_SLEEP_SECONDS
    for entry in entries:
        due, wait = entry.schedule.is_due(entry.last_run_at)
        if due:
            entry.last_run_at = timezone.now()
            try:
                _task_run(entry.task)
            except Exception:  # noqa: BLE001 - one broken job must not stop the others
                logger.exception("embedded scheduler: %s raised", entry.task)
            finally:
                close_old_connections()
        next_check = min(next_check, max(wait, 1.0))
    return next_check


def _loop(entries: list[_Entry], stop: threading.Event) -> None:
    logger.warning("embedded scheduler: running %s in this process (EMBEDDED_SCHEDULER)",
                   ", ".join(entry.name for entry in entries))
    while not stop.is_set():
        stop.wait(scheduler_tick(entries))


def embedded_scheduler_start(*, stop: threading.Event | None = None) -> threading.Thread | None:
    """Start the schedule thread if this process may run it (see the module docstring); returns
    the thread, or None (with the reason logged) when it must not or already runs."""
    global _started
    refusal = embedded_scheduler_refusal(
        enabled=settings.EMBEDDED_SCHEDULER, argv=sys.argv, environ=os.environ, modules=sys.modules
    )
    if refusal is not None:
        logger.info("embedded scheduler not started: %s", refusal)
        return None
    with _started_lock:
        if _started is not None and _started.is_alive():
            return None
        thread = threading.Thread(
            target=_loop, args=(_entries(settings.CELERY_BEAT_SCHEDULE), stop or threading.Event()),
            name="chatmon-embedded-scheduler", daemon=True,
        )
        thread.start()
        _started = thread
    return thread
