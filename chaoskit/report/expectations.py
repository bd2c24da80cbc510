"""Expectation arithmetic: parse '<= baseline * 1.5', aggregate samples, compare. Pure code."""

from __future__ import annotations

import math
import operator
import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from chaoskit.spec.models import parse_expectation
from chaoskit.spec.units import parse_duration, parse_rate, parse_ratio

COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt,
    "==": lambda a, b: math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), "!=": operator.ne,
}
_BASELINE = re.compile(r"^baseline\s*(?:([*+\-])\s*(.+))?$")


@dataclass(frozen=True)
class Threshold:
    """The right side of an expectation: a constant, or the baseline scaled or shifted."""

    op: str
    constant: float | None = None
    scale: float = 1.0
    shift: float = 0.0

    @property
    def relative(self) -> bool:
        return self.constant is None

    def value(self, baseline: float | None) -> float:
        if self.constant is not None:
            return self.constant
        if baseline is None:
            raise ValueError("the expectation is relative to the baseline, which has no samples")
        return baseline * self.scale + self.shift

    def holds(self, observed: float, baseline: float | None = None) -> bool:
        return COMPARE[self.op](observed, self.value(baseline))


def parse_quantity(text: str) -> float:
    """'300ms' -> 0.3, '99.9%' -> 0.999, '200/s' -> 200, '5' -> 5."""
    text = text.strip()
    for parse in (float, parse_duration, parse_ratio, parse_rate):
        try:
            return float(parse(text))
        except ValueError:
            continue
    raise ValueError(f"'{text}' is not a number, duration, percentage or rate")


def parse_threshold(expression: str) -> Threshold:
    op, right = parse_expectation(expression)
    match = _BASELINE.match(right)
    if not match:
        return Threshold(op, constant=parse_quantity(right))
    sign, amount = match.groups()
    if sign is None:
        return Threshold(op)
    if sign == "*":
        return Threshold(op, scale=parse_quantity(amount))
    shift = parse_quantity(amount)
    return Threshold(op, shift=shift if sign == "+" else -shift)


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
