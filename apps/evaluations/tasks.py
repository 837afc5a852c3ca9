"""Thin Celery wrappers (queue `judge`), each named after the service it calls: take ids, call it.

The tasks were named judge_turn / enqueue_judgments / sweep_unjudged_turns before; those names
stay registered (`aliases`) for messages already queued by the previous release. Remove them
once no queue can hold such a message (one release later).
"""

import time

from django.conf import settings

from apps.core.choices import Queue
from apps.core.queue import task

from . import conversation_judge as conversation_services
from . import services


@task(
    queue=Queue.JUDGE,
    bind=True,
    # Judge errors are retried by the service's own bounded schedule (Evaluation.attempts,
    # Retry-After honoured); these cover a database that went away for a moment.
    retry_backoff_max=120,
    max_retries=settings.JUDGE_MAX_ATTEMPTS,
    aliases=("apps.evaluations.tasks.judge_turn",),
)
def turn_judge(self, turn_id: int) -> str:
    while True:
        try:
            return services.turn_judge(turn_id=turn_id)
        except services.JudgeRetryLater as exc:
            if not self.request.is_eager:
                raise self.retry(exc=exc, countdown=exc.countdown) from None
            # Embedded mode has no broker to hold the retry: wait here (briefly, we may be
            # inside a web request) and go again; Evaluation.attempts still bounds the loop.
            time.sleep(min(exc.countdown, settings.JUDGE_EAGER_RETRY_MAX_SECONDS))


@task(queue=Queue.JUDGE, aliases=("apps.evaluations.tasks.enqueue_judgments",))
def judge_fan_out(turn_ids: list[int]) -> int:
    """Fan a batch out into one turn_judge task per turn (keeps ingest to one message a batch)."""
    return services.judge_fan_out(turn_ids=turn_ids)


@task(queue=Queue.JUDGE, aliases=("apps.evaluations.tasks.sweep_unjudged_turns",))
def judge_sweep() -> int:
    return services.judge_sweep()


@task(
    queue=Queue.JUDGE,
    bind=True,
    # As turn_judge: judge errors are retried on the service's bounded schedule
    # (ConversationEvaluation.attempts), Celery's own retries cover a database gone for a moment.
    retry_backoff_max=120,
    max_retries=settings.JUDGE_MAX_ATTEMPTS,
)
def conversation_judge(self, conversation_id: int) -> str:
    while True:
        try:
            return conversation_services.conversation_judge(conversation_id=conversation_id)
        except services.JudgeRetryLater as exc:
            if not self.request.is_eager:
                raise self.retry(exc=exc, countdown=exc.countdown) from None
            time.sleep(min(exc.countdown, settings.JUDGE_EAGER_RETRY_MAX_SECONDS))


@task(queue=Queue.JUDGE)
def conversation_judge_sweep() -> dict[str, int]:
    return conversation_services.conversation_judge_sweep()
