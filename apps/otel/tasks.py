"""Thin Celery wrappers (queue `default`), named after the service they call.

`apps.otel.tasks.sweep_pending_span_content` (the former name) stays registered for messages
queued by the previous release; remove it one release later.
"""

from apps.core.choices import Queue
from apps.core.queue import task

from . import log_events, services


@task(
    queue=Queue.DEFAULT, retry_backoff_max=120,
    aliases=("apps.otel.tasks.sweep_pending_span_content",),
)
def pending_content_sweep() -> dict[str, int]:
    # Steps first: a turn made meanwhile from log content claims them before they can expire.
    claimed = services.pending_steps_sweep()
    return {**log_events.pending_content_sweep(), "steps_claimed": claimed}
