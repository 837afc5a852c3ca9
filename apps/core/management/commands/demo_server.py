"""`runserver` plus the embedded scheduler: what `make demo` serves with.

The periodic schedule (CELERY_BEAT_SCHEDULE: alert checks, judge sweep, clustering, retention)
runs in a thread of the serving process when EMBEDDED_SCHEDULER is on; see apps/core/scheduler.py
for why it can start only once and never under gunicorn, Celery or tests.
"""

from typing import Any

from django.contrib.staticfiles.management.commands.runserver import Command as RunserverCommand

from apps.core.scheduler import embedded_scheduler_start


class Command(RunserverCommand):
    help = "Development server (runserver) that also runs the periodic schedule in-process (EMBEDDED_SCHEDULER)."

    def inner_run(self, *args: Any, **options: Any) -> None:
        # With the autoreloader, inner_run runs in the serving child only (a reload is a new
        # process), so the watching parent never starts a second scheduler.
        if embedded_scheduler_start() is not None:
            self.stdout.write("Embedded scheduler: running the periodic jobs in this process.")
        super().inner_run(*args, **options)
