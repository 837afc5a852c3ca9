"""The Celery app: configured from Django settings (CELERY_* keys), queues declared here."""

import os

import kombu.pools
from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatmon.settings")

app = Celery("chatmon")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [
    Queue(name) for name in ("default", "judge", "analysis", "alerts")
]
app.autodiscover_tasks()


def broker_connections_reset() -> None:
    """Close this process's broker connections so the next send connects to the current
    `broker_url`. Celery builds its connection and producer pools lazily and keeps them (it
    drops them itself only after a fork), and kombu keeps them in a registry per broker URL, so
    code that changes broker_url at run time — the tests that point the app at a real, an
    in-memory or an unreachable broker — calls this before and after."""
    app._pool = None
    amqp = app.__dict__.get("amqp")  # not created yet in a process that never sent a task
    if amqp is not None:
        amqp._producer_pool = None
    kombu.pools.reset()
