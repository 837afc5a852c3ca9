"""Run test work in real threads at once (each with its own database connection)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db import connections


def run_together(count: int, work: Callable[[int], Any], *, timeout: float = 60) -> list[Any]:
    """Call work(0) … work(count - 1) in `count` threads released together by a barrier.

    Returns what each call returned, or the exception it raised, in order. Every thread closes
    its database connections, so a transactional test database can be flushed afterwards.
    """
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = work(index)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            results[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    return results


def raised(results: list[Any]) -> list[BaseException]:
    """The exceptions among `run_together`'s results."""
    return [result for result in results if isinstance(result, BaseException)]
