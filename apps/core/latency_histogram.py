"""Latency percentiles from a log-bucket histogram (the DDSketch method) with relative error ≤ α
(1 % for turn latencies; LLM-call durations use apps.review.rollup.LLM_CALL_ACCURACY).

Exact percentiles need every value of the window: over 30 days and a million turns that is a
sort the dashboard cannot afford. A histogram whose bucket `i` holds the latencies in
(γ^(i-1), γ^i] with γ = (1 + α) / (1 − α) is mergeable (per-hour histograms add up to the
window's) and any value read back from a bucket is within α of every latency in it.

The percentile is PostgreSQL's `percentile_cont` definition (linear interpolation between the
two nearest ranks) applied to the bucket values, so it is within α of the exact `percentile_cont`
of the raw latencies: both neighbours are within α and interpolation keeps the bound.

The bucket index is computed in SQL, by the live queries and by the hourly rollup alike, so the
two always agree on where a latency falls.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from django.db.models import Case, F, IntegerField, Value, When
from django.db.models.expressions import Expression
from django.db.models.functions import Cast, Ceil, Ln

from apps.core.db import percentile_cont_interpolate

RELATIVE_ACCURACY = 0.01  # turns
ZERO_BUCKET = -1  # a latency of 0 ms; every positive latency has an index ≥ 0


class LogHistogram:
    """Bucket indexes and percentiles at one relative accuracy α."""

    def __init__(self, accuracy: float) -> None:
        self.accuracy = accuracy
        self.gamma = (1 + accuracy) / (1 - accuracy)
        self._ln_gamma = math.log(self.gamma)

    def bucket_expression(self, field: str) -> Expression:
        """SQL for the bucket index of the non-null, non-negative integer column `field`."""
        return Case(
            When(**{field: 0}, then=Value(ZERO_BUCKET)),
            default=Cast(Ceil(Ln(F(field)) / Value(self._ln_gamma)), IntegerField()),
            output_field=IntegerField(),
        )

    def bucket_value(self, index: int) -> float:
        """The value that stands for bucket `index`: the point with the least relative error to both ends."""
        if index == ZERO_BUCKET:
            return 0.0
        return 2 * self.gamma**index / (self.gamma + 1)

    def quantiles(self, counts: Mapping[int, int], points: Iterable[float]) -> dict[float, float | None]:
        """percentile_cont at each point (0–1) of the values a histogram {bucket index: count} holds."""
        ordered = sorted((index, count) for index, count in counts.items() if count)
        total = sum(count for _, count in ordered)
        found = percentile_cont_interpolate(
            total, points, lambda rank: [self._value_at(ordered, rank), self._value_at(ordered, rank + 1)]
        )
        return {point: (round(value, 1) if value is not None else None) for point, value in found.items()}

    def _value_at(self, ordered: list[tuple[int, int]], rank: int) -> float:
        """The bucket value of the element at 0-based `rank` of the sorted values."""
        seen = 0
        for index, count in ordered:
            seen += count
            if rank < seen:
                return self.bucket_value(index)
        return self.bucket_value(ordered[-1][0])


TURN_LATENCY = LogHistogram(RELATIVE_ACCURACY)
bucket_expression = TURN_LATENCY.bucket_expression
bucket_value = TURN_LATENCY.bucket_value
quantiles = TURN_LATENCY.quantiles
