"""Thin Celery wrappers for the review app (queue `default`), named after the service they call.

`apps.review.tasks.refresh_hourly_stats` (the former name) stays registered for messages queued
by the previous release; remove it one release later.
"""

from apps.core.choices import Queue
from apps.core.queue import task

from . import rollup


@task(queue=Queue.DEFAULT, aliases=("apps.review.tasks.refresh_hourly_stats",))
def hourly_stats_refresh() -> None:
    """Beat, every minute: bring the dashboard's hourly rollup up to date (safe to overlap)."""
    rollup.hourly_stats_refresh()
