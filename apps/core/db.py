"""Database expressions shared by the apps."""

from typing import Any

from django.db.models import Aggregate, FloatField


class PercentileCont(Aggregate):
    """PostgreSQL `percentile_cont(p) WITHIN GROUP (ORDER BY expr)`: interpolated, like numpy's default."""

    function = "PERCENTILE_CONT"
    template = "%(function)s(%(percentile)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression: str, *, percentile: float, **extra: Any) -> None:
        # A float formatted by us, never user text, goes into the SQL.
        super().__init__(expression, percentile=f"{float(percentile):.6f}", **extra)
