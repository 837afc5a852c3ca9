"""Thin Celery wrappers (queue `judge`: experiments wait on models like the judge does)."""

import time

from django.conf import settings

from apps.core.choices import Queue
from apps.core.queue import task

from . import experiments


@task(
    queue=Queue.JUDGE,
    bind=True,
    # Transient model errors are retried on the service's schedule (result attempts, bounded by
    # EXPERIMENT_MAX_ATTEMPTS); the declared retry covers a database that went away for a moment.
    retry_backoff_max=120,
    max_retries=settings.EXPERIMENT_MAX_ATTEMPTS + 3,
)
def experiment_chunk_run(self, run_id: int, first_result_id: int, last_result_id: int) -> None:
    while True:
        countdown = experiments.experiment_chunk_run(
            run_id=run_id, first_result_id=first_result_id, last_result_id=last_result_id
        )
        if countdown is None:
            return
        if not self.request.is_eager:
            raise self.retry(countdown=countdown)
        # Embedded mode has no broker to hold the retry: wait briefly here and go again.
        time.sleep(min(countdown, settings.JUDGE_EAGER_RETRY_MAX_SECONDS))


@task(queue=Queue.JUDGE)
def experiment_runs_sweep() -> dict[str, int]:
    # Lost chunks (broker down at queue time, a worker that died mid-chunk): the service finds
    # them; re-enqueueing is safe because execution claims each result with a compare-and-set.
    return experiments.experiment_runs_sweep()
