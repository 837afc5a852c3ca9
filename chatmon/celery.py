"""The Celery app: configured from Django settings (CELERY_* keys), queues declared here."""

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatmon.settings")

app = Celery("chatmon")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [
    Queue(name) for name in ("default", "judge", "analysis", "alerts")
]
app.autodiscover_tasks()
