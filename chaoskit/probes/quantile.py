"""Histogram quantiles from cumulative buckets, computed as PromQL's histogram_quantile does."""

from __future__ import annotations

import math
from collections.abc import Iterable


def _monotonic(counts: list[float]) -> list[float]:
    # Buckets scraped at slightly different moments can dip; PromQL flattens such dips too.
    fixed: list[float] = []
    for count in counts:
        fixed.append(max(count, fixed[-1]) if fixed else count)
    return fixed


def bucket_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float:
    """The q-quantile of cumulative (upper bound, count) buckets; NaN when nothing was observed.

    Like Prometheus: linear interpolation inside the bucket holding the rank, the first bucket
    starting at 0 (or being returned as is when its bound is <= 0), and a rank in the +Inf
    bucket answered with the highest finite bound.
    """
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    ordered = sorted(buckets)
    if len(ordered) < 2 or not math.isinf(ordered[-1][0]):
        return math.nan
    bounds = [bound for bound, _ in ordered]
    counts = _monotonic([count for _, count in ordered])
    observations = counts[-1]
    if observations == 0:
        return math.nan
    rank = q * observations
    index = next((i for i, c in enumerate(counts[:-1]) if c >= rank), len(counts) - 1)
    return _interpolate(index, rank, bounds, counts)


def _interpolate(index: int, rank: float, bounds: list[float], counts: list[float]) -> float:
    if index == len(bounds) - 1:
        return bounds[-2]
    if index == 0 and bounds[0] <= 0:
        return bounds[0]
    start, count = 0.0, counts[index]
    if index > 0:
        start = bounds[index - 1]
        count -= counts[index - 1]
        rank -= counts[index - 1]
    if count == 0:
        return bounds[index]
    return start + (bounds[index] - start) * (rank / count)
