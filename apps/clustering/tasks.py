"""Thin Celery wrappers (queue `analysis`), named after the service they call: take ids, call it.

Former names (run_clustering, run_scheduled_clusterings) stay registered as `aliases` for
messages queued by the previous release; remove them one release later.
"""

from __future__ import annotations

from celery import Task
from django.conf import settings
from django.db import OperationalError
from django.utils import timezone

from apps.core.choices import Queue
from apps.core.queue import task

from . import execution, runs
from .choices import RunStatus
from .models import ClusterRun


class _ClusterRunTask(Task):
    def on_failure(self, exc, task_id, args, kwargs, einfo):  # noqa: ANN001 - Celery's signature
        # Out of retries (or an unexpected error): the run must not stay pending forever.
        run_id = args[0] if args else kwargs.get("run_id")
        ClusterRun.objects.filter(pk=run_id, status__in=[RunStatus.PENDING, RunStatus.RUNNING]).update(
            status=RunStatus.FAILED, message=f"{type(exc).__name__}: {exc}"[:2000], finished_at=timezone.now()
        )


@task(
    queue=Queue.ANALYSIS,
    base=_ClusterRunTask,
    retry_on=(OperationalError,),
    retry_backoff=30,
    time_limit=settings.CLUSTERING_TASK_TIME_LIMIT,
    soft_time_limit=max(60, settings.CLUSTERING_TASK_TIME_LIMIT - 60),
    aliases=("apps.clustering.tasks.run_clustering",),
)
def cluster_run_execute(run_id: int) -> str:
    run = execution.cluster_run_execute(run_id=run_id)
    return run.status if run else "not claimed"


@task(queue=Queue.ANALYSIS, retry_on=(OperationalError,), aliases=("apps.clustering.tasks.run_scheduled_clusterings",))
def clustering_schedule_due() -> int:
    return len(runs.clustering_schedule_due())
