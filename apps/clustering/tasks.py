"""Thin Celery wrappers (queue "analysis", routed in settings): take ids, call one service."""

from __future__ import annotations

from celery import Task, shared_task
from django.conf import settings
from django.db import OperationalError
from django.utils import timezone

from .choices import RunStatus
from .execution import cluster_run_execute
from .models import ClusterRun
from .runs import clustering_schedule_due


class _ClusterRunTask(Task):
    def on_failure(self, exc, task_id, args, kwargs, einfo):  # noqa: ANN001 - Celery's signature
        # Out of retries (or an unexpected error): the run must not stay pending forever.
        run_id = args[0] if args else kwargs.get("run_id")
        ClusterRun.objects.filter(pk=run_id, status__in=[RunStatus.PENDING, RunStatus.RUNNING]).update(
            status=RunStatus.FAILED, message=f"{type(exc).__name__}: {exc}"[:2000], finished_at=timezone.now()
        )


@shared_task(
    base=_ClusterRunTask,
    autoretry_for=(OperationalError,),
    retry_backoff=30,
    retry_backoff_max=600,
    max_retries=3,
    time_limit=settings.CLUSTERING_TASK_TIME_LIMIT,
    soft_time_limit=max(60, settings.CLUSTERING_TASK_TIME_LIMIT - 60),
)
def run_clustering(run_id: int) -> str:
    run = cluster_run_execute(run_id=run_id)
    return run.status if run else "not claimed"


@shared_task(autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def run_scheduled_clusterings() -> int:
    return len(clustering_schedule_due())
