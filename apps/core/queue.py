"""Background work: the decorator every task uses, and publishing tasks from the request path.

Publishing policy (SECURITY.md "Redis unreachable"):
1. Work is enqueued only after the transaction that wrote it commits (`transaction.on_commit`),
   so a worker never looks for a row that is not there yet.
2. A publish tries once, with connect and socket timeouts well under 100 ms (settings:
   REDIS_CONNECT_TIMEOUT_SECONDS, REDIS_SOCKET_TIMEOUT_SECONDS; no publish retry loop).
3. A failed publish is counted (`chatmon_redis_failures_total{kind="broker"}`), logged once a
   minute, and opens a per-process circuit breaker: for REDIS_CIRCUIT_BREAKER_SECONDS publishes
   are skipped (`chatmon_enqueue_total{result="skipped"}`) instead of each waiting for the dead
   broker. Nothing is lost: the work is in the database and the beat sweepers (judge_sweep,
   deliveries_lost_requeue, …) enqueue it again once the broker is back.
4. Never raises into the caller. In eager mode (no broker: the embedded default, tests) the task
   runs in-process at once; if it raises, that is logged and the next message still runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from celery import Task, shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from kombu.exceptions import OperationalError as BrokerOperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .choices import Queue
from .metrics import ENQUEUE_RESULTS
from .resilience import CircuitBreaker, redis_failure_record

logger = logging.getLogger(__name__)

BROKER_UNREACHABLE = (BrokerOperationalError, RedisConnectionError, RedisTimeoutError, OSError)
# A database that went away for a moment: the retry every task declares unless it says otherwise.
DATABASE_TRANSIENT = (OperationalError, InterfaceError)

broker_breaker = CircuitBreaker()


def task(
    *,
    queue: Queue,
    retry_on: tuple[type[BaseException], ...] = DATABASE_TRANSIENT,
    max_retries: int = 3,
    retry_backoff: int | bool = True,
    retry_backoff_max: int = 600,
    aliases: Sequence[str] = (),
    **options: Any,
) -> Callable[[Callable[..., Any]], Task]:
    """chatmon's task conventions in one place: a named queue, acks late (a task whose worker
    dies is redelivered; every task is idempotent), no result stored (results live in the
    database), the settings' time limits unless given, and a declared retry policy.

    `aliases`: former names of the task, registered with the same body so that messages queued
    before a rename (a backlog, a countdown retry) still run after the deploy.
    """
    declared: dict[str, Any] = {
        "queue": queue.value,
        "acks_late": True,
        "ignore_result": True,
        "autoretry_for": retry_on,
        "max_retries": max_retries,
        "retry_backoff": retry_backoff,
        "retry_backoff_max": retry_backoff_max,
        "retry_jitter": True,
        "time_limit": settings.CELERY_TASK_TIME_LIMIT,
        "soft_time_limit": settings.CELERY_TASK_SOFT_TIME_LIMIT,
        **options,
    }

    def register(fn: Callable[..., Any]) -> Task:
        for alias in aliases:
            shared_task(name=alias, **declared)(fn)
        return shared_task(**declared)(fn)

    return register


def enqueue_on_commit(task: Task, *args: Any) -> None:
    """Publish one `task(*args)` message once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: _publish(task, [args]))


def enqueue_each_on_commit(task: Task, ids: Iterable[int]) -> None:
    """Publish one `task(id)` message per id after commit, all through one producer connection."""
    batch = [(int(pk),) for pk in ids]
    if batch:
        transaction.on_commit(lambda: _publish(task, batch))


def enqueue_each(task: Task, ids: Iterable[int]) -> int:
    """`enqueue_each_on_commit` for code already outside a transaction (a worker's fan-out):
    publishes now and returns how many messages were sent."""
    return _publish(task, [(int(pk),) for pk in ids])


def _publish(task: Task, messages: list[tuple[Any, ...]]) -> int:
    """Send `messages` (argument tuples) for `task`; the policy is the module docstring's. Returns
    how many were sent (in eager mode: how many ran without raising)."""
    if task.app.conf.task_always_eager:
        return _run_in_process(task, messages)
    if broker_breaker.is_open():
        ENQUEUE_RESULTS.labels(task.name, "skipped").inc(len(messages))
        return 0
    sent = 0
    try:
        with task.app.producer_or_acquire() as producer:
            for args in messages:
                task.apply_async(args=args, producer=producer, retry=False)
                sent += 1
    except BROKER_UNREACHABLE as exc:
        broker_breaker.trip(settings.REDIS_CIRCUIT_BREAKER_SECONDS)
        redis_failure_record("broker", exc)
        ENQUEUE_RESULTS.labels(task.name, "failed").inc(len(messages) - sent)
    except Exception:  # noqa: BLE001 - never into the request; the sweepers retry the work
        logger.exception("enqueue.failed", extra={"task": task.name, "messages_left": len(messages) - sent})
        ENQUEUE_RESULTS.labels(task.name, "failed").inc(len(messages) - sent)
    if sent:
        ENQUEUE_RESULTS.labels(task.name, "sent").inc(sent)
    return sent


def _run_in_process(task: Task, messages: list[tuple[Any, ...]]) -> int:
    ran = 0
    for args in messages:
        try:
            task.apply_async(args=args)
        except Exception:  # noqa: BLE001 - the task broke in-process; the next message may be fine
            logger.exception("enqueue.eager_task_failed", extra={"task": task.name, "task_args": list(args)[:5]})
            continue
        ran += 1
    return ran
