"""Thin Celery wrappers (queue `judge`, see CELERY_TASK_ROUTES): take ids, call one service."""

import time

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from . import services


@shared_task(
    bind=True,
    name="apps.evaluations.tasks.judge_turn",
    acks_late=True,
    # Judge errors are retried by the service's own bounded schedule (Evaluation.attempts,
    # Retry-After honoured); these cover a database that went away for a moment.
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    retry_backoff_max=120,
    retry_jitter=True,
    max_retries=settings.JUDGE_MAX_ATTEMPTS,
)
def judge_turn(self, turn_id: int) -> str:
    while True:
        try:
            return services.turn_judge(turn_id=turn_id)
        except services.JudgeRetryLater as exc:
            if not self.request.is_eager:
                raise self.retry(exc=exc, countdown=exc.countdown) from None
            # Embedded mode has no broker to hold the retry: wait here (briefly, we may be
            # inside a web request) and go again; Evaluation.attempts still bounds the loop.
            time.sleep(min(exc.countdown, settings.JUDGE_EAGER_RETRY_MAX_SECONDS))


@shared_task(name="apps.evaluations.tasks.enqueue_judgments", acks_late=True)
def enqueue_judgments(turn_ids: list[int]) -> int:
    """Fan a batch out into one judge_turn task per turn (keeps ingest to one message a batch)."""
    return services.judge_fan_out(turn_ids=turn_ids)


@shared_task(name="apps.evaluations.tasks.sweep_unjudged_turns", acks_late=True)
def sweep_unjudged_turns() -> int:
    return services.judge_sweep()
