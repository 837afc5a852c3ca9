"""Thin Celery wrappers for privacy work (queue `default`), named after the service they call.

`apps.privacy.tasks.purge_expired_data` (the former name) stays registered for messages queued
by the previous release; remove it one release later.
"""

from apps.core.choices import Queue
from apps.core.queue import task

from . import services


@task(queue=Queue.DEFAULT, max_retries=5, aliases=("apps.privacy.tasks.purge_expired_data",))
def retention_purge() -> dict:
    """Nightly retention (CELERY_BEAT_SCHEDULE "privacy-retention-nightly"); safe to re-run."""
    report = services.retention_purge()
    return {"chatbots": len(report["chatbots"]), "deleted": report["deleted"]}
