from enum import StrEnum


class Queue(StrEnum):
    """Celery queues: the one list (settings routes and beat options, task decorators, the
    queue-depth gauge). The worker command lines in Makefile and docker-compose.yml name them
    literally: keep them in step with this enum."""

    DEFAULT = "default"
    JUDGE = "judge"  # one judgment per task: slow model calls, many at once
    ANALYSIS = "analysis"  # clustering runs: CPU and memory heavy, one at a time
    ALERTS = "alerts"  # rule checks and notification deliveries: small, must not wait behind the judge
