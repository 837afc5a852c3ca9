"""Thin Celery wrappers (queue `default`)."""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from .log_events import pending_content_sweep


@shared_task(
    name="apps.otel.tasks.sweep_pending_span_content",
    acks_late=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    retry_backoff_max=120,
    max_retries=3,
)
def sweep_pending_span_content() -> dict[str, int]:
    return pending_content_sweep()
