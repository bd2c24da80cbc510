"""Aggregating a phase's samples into the one number an expectation compares. Pure code."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    index = max(0, math.ceil(q * len(ordered)) - 1)
    return ordered[index]


AGGREGATES: dict[str, Callable[[Sequence[float]], float]] = {
    "last": lambda v: v[-1], "mean": statistics.fmean, "max": max, "min": min,
    "p50": lambda v: _percentile(v, 0.50), "p90": lambda v: _percentile(v, 0.90),
    "p99": lambda v: _percentile(v, 0.99),
}


def aggregate(how: str, values: Sequence[float], op: str) -> float:
    """One number for a phase. 'every' reports the worst sample for the comparison's direction."""
    if how == "every":
        return max(values) if op in ("<=", "<") else min(values)
    return AGGREGATES[how](values)
