"""Thin Celery wrappers for the review app."""

from celery import shared_task

from .rollup import hourly_stats_refresh


@shared_task(ignore_result=True)
def refresh_hourly_stats() -> None:
    """Beat, every minute: bring the dashboard's hourly rollup up to date (safe to overlap)."""
    hourly_stats_refresh()
