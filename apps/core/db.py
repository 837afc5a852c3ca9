"""Database expressions shared by the apps."""

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.db.models import Aggregate, FloatField, QuerySet


class PercentileCont(Aggregate):
    """PostgreSQL `percentile_cont(p) WITHIN GROUP (ORDER BY expr)`: interpolated, like numpy's default."""

    function = "PERCENTILE_CONT"
    template = "%(function)s(%(percentile)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression: str, *, percentile: float, **extra: Any) -> None:
        # A float formatted by us, never user text, goes into the SQL.
        super().__init__(expression, percentile=f"{float(percentile):.6f}", **extra)


def percentile_cont_portable(queryset: QuerySet, field: str, points: Iterable[float], *, count: int) -> dict[float, float | None]:
    """`percentile_cont` of `field` at each point (0–1) for databases without it (SQLite): the
    same interpolation, reading at most the two neighbouring rows per point. `count` is the
    number of non-null values, which the caller's aggregate already has."""
    ordered = queryset.filter(**{f"{field}__isnull": False}).order_by(field).values_list(field, flat=True)
    return percentile_cont_interpolate(count, points, lambda rank: [float(value) for value in ordered[rank : rank + 2]])


def percentile_cont_interpolate(
    count: int, points: Iterable[float], pair_at: Callable[[int], Sequence[float]]
) -> dict[float, float | None]:
    """`percentile_cont`'s definition over `count` sorted values: at point p the rank p·(count−1)
    falls between two neighbours, interpolated linearly. `pair_at(i)` gives the values at ranks
    i and i+1 (only the first at the last rank)."""
    out: dict[float, float | None] = {}
    for point in points:
        if not count:
            out[point] = None
            continue
        rank = point * (count - 1)
        low = math.floor(rank)
        pair = pair_at(low)
        out[point] = pair[0] if rank == low or len(pair) == 1 else pair[0] + (pair[1] - pair[0]) * (rank - low)
    return out
