from typing import Any

from django.conf import settings
from django.db import connection


def health_status() -> dict[str, Any]:
    """Database and broker status; the database is what decides healthy or not."""
    result: dict[str, Any] = {"status": "ok"}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        result["database"] = {"status": "ok", "vendor": connection.vendor}
    except Exception as exc:  # noqa: BLE001 - any failure means "down", reported as such
        result["database"] = {"status": "down", "error": str(exc)[:200]}
        result["status"] = "down"
    if not settings.REDIS_URL:
        result["broker"] = {"status": "eager", "detail": "no REDIS_URL: tasks run in-process"}
        return result
    try:
        result["broker"] = {"status": "ok", "queue_depth": queue_depths()}
    except Exception as exc:  # noqa: BLE001
        result["broker"] = {"status": "down", "error": str(exc)[:200]}
        if result["status"] == "ok":
            result["status"] = "degraded"
    return result


def queue_depths() -> dict[str, int]:
    """Messages waiting in each Celery queue (Redis); raises when the broker is unreachable."""
    import redis

    from .choices import Queue

    client = redis.Redis.from_url(
        settings.REDIS_URL, socket_timeout=settings.REDIS_SOCKET_TIMEOUT_SECONDS,
        socket_connect_timeout=settings.REDIS_CONNECT_TIMEOUT_SECONDS,
    )
    return {queue.value: client.llen(queue.value) for queue in Queue}
