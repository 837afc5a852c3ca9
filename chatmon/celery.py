"""The Celery app: configured from Django settings (CELERY_* keys), queues declared here."""

import os

import kombu.pools
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


@signals.worker_init.connect
@signals.worker_process_init.connect
def _collector_freeze(**kwargs: object) -> None:
    """The worker (and each prefork child, after its own imports) freezes its start-up objects."""
    from chatmon.startup import collector_freeze

    collector_freeze()


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
