"""Analysis reads on a read replica (`DATABASE_REPLICA_URL`), so the dashboard never competes with ingest.

1. Only code wrapped in `replica_reads` (the dashboard, the staff stats/API reads, exports) reads
   from the "replica" alias; the flag is a contextvar, so threads and requests do not share it.
2. Every write goes to "default", and so does every read inside a transaction on "default"
   (read-your-writes: an export's audit row, a review action's re-read). Ingest is never wrapped.
3. Without the variable (`REPLICA_READS_ENABLED` false) the router answers None everywhere:
   Django's own routing, nothing changes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.http import StreamingHttpResponse
from django.template.response import TemplateResponse

REPLICA = "replica"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_replica_reads: ContextVar[bool] = ContextVar("replica_reads", default=False)

View = TypeVar("View", bound=Callable[..., Any] | type)


class ReplicaRouter:
    """DATABASE_ROUTERS entry: reads flagged by `replica_reads` go to the replica, all else to default."""

    def db_for_read(self, model: type, **hints: Any) -> str | None:
        if (
            _replica_reads.get()
            and settings.REPLICA_READS_ENABLED
            and not connections[DEFAULT_DB_ALIAS].in_atomic_block
        ):
            return REPLICA
        return DEFAULT_DB_ALIAS if settings.REPLICA_READS_ENABLED else None

    def db_for_write(self, model: type, **hints: Any) -> str | None:
        return DEFAULT_DB_ALIAS if settings.REPLICA_READS_ENABLED else None

    def allow_relation(self, first: Any, second: Any, **hints: Any) -> bool | None:
        # The replica holds the primary's rows: a row read there may point at one read here.
        databases = {first._state.db, second._state.db}
        return True if databases <= {DEFAULT_DB_ALIAS, REPLICA} else None

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        return False if db == REPLICA else None  # the replica follows the primary's schema


def _streaming_on_replica(content: Iterator[Any]) -> Iterator[Any]:
    """A streamed export's chunks are produced after the view returned: flag each one."""
    iterator = iter(content)
    while True:
        token = _replica_reads.set(True)
        try:
            chunk = next(iterator)
        except StopIteration:
            return
        finally:
            _replica_reads.reset(token)
        yield chunk


def _on_replica(function: Callable[..., Any], *, safe_methods_only: bool) -> Callable[..., Any]:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if safe_methods_only:
            request = next(
                (arg for arg in args if hasattr(arg, "method") and hasattr(arg, "META")), None
            )
            if request is None or request.method not in _SAFE_METHODS:
                return function(*args, **kwargs)
        token = _replica_reads.set(True)
        try:
            response = function(*args, **kwargs)
            if isinstance(response, TemplateResponse) and not response.is_rendered:
                response.render()  # the template's lazy querysets read here, still on the replica
        finally:
            _replica_reads.reset(token)
        if isinstance(response, StreamingHttpResponse):
            response.streaming_content = _streaming_on_replica(response.streaming_content)
        return response

    return wrapper


def replica_reads(view: View) -> View:
    """Run a view's reads on the replica. On a class (a DRF view or viewset) it wraps `dispatch`
    for GET/HEAD/OPTIONS only, so a viewset's POST actions read the primary; on a function or
    method (an admin view or action) it applies whatever the method."""
    if isinstance(view, type):
        view.dispatch = _on_replica(view.dispatch, safe_methods_only=True)
        return view
    return _on_replica(view, safe_methods_only=False)


def replica_reads_active() -> bool:
    """Whether reads would go to the replica here (for tests and the benchmark's checks)."""
    return ReplicaRouter().db_for_read(object) == REPLICA
