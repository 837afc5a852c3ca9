"""A wall-clock deadline for code that must not run away (catastrophic regex backtracking).

Tests never assert a time; this only turns "still running after several seconds" into a failure
instead of a hung run. SIGALRM: main thread, POSIX only (CI and the dev container are Linux).
"""

import contextlib
import signal
from collections.abc import Iterator


class DeadlineExceeded(AssertionError):
    pass


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    def expire(_signum: int, _frame: object) -> None:
        raise DeadlineExceeded(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
