"""Thin Celery wrappers for privacy work (queue `default`)."""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from . import services


@shared_task(
    name="apps.privacy.tasks.purge_expired_data",
    acks_late=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    retry_backoff_max=600,
    max_retries=5,
)
def purge_expired_data() -> dict:
    """Nightly retention (CELERY_BEAT_SCHEDULE "privacy-retention-nightly"); safe to re-run."""
    report = services.retention_purge()
    return {"chatbots": len(report["chatbots"]), "deleted": report["deleted"]}
