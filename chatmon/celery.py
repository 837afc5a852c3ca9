"""The Celery app: configured from Django settings (CELERY_* keys), queues declared here."""

import os

from celery import Celery, signals
from kombu import Queue

from apps.core.choices import Queue as QueueName

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatmon.settings")

app = Celery("chatmon")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue(name.value) for name in QueueName]
app.autodiscover_tasks()


@signals.worker_init.connect
@signals.beat_init.connect
def _secret_keys_enforce(**kwargs: object) -> None:
    """Celery runs no system checks that stop it: refuse to start with a public or weak key.

    Celery logs and swallows exceptions from signal handlers, so this exits instead.
    """
    from django.core.exceptions import ImproperlyConfigured

    from apps.core.checks import secret_keys_enforce

    try:
        secret_keys_enforce()
    except ImproperlyConfigured as exc:
        raise SystemExit(str(exc)) from exc
