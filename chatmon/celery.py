"""The Celery app: configured from Django settings (CELERY_* keys), queues declared here."""

import os

from celery import Celery
from kombu import Queue

from apps.core.choices import Queue as QueueName

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatmon.settings")

app = Celery("chatmon")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue(name.value) for name in QueueName]
app.autodiscover_tasks()
