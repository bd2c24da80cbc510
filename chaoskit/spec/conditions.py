"""The comparison grammar of expectations and guardrails: '<= 300ms', '> baseline * 1.5'. Pure."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from chaoskit.spec.units import parse_quantity

COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt,
    "==": lambda a, b: math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), "!=": operator.ne,
}
_EXPECT = re.compile(r"^\s*(<=|>=|==|!=|<|>)\s*(.+?)\s*$")
_BASELINE = re.compile(r"^baseline\s*(?:([*+\-])\s*(.+))?$")


def parse_expectation(text: str) -> tuple[str, str]:
    """'<= baseline * 1.5' -> ('<=', 'baseline * 1.5')."""
    match = _EXPECT.match(text)
    if not match:
        raise ValueError(f"'{text}' is not an expectation; write e.g. '<= 300ms', '>= 99.9%', "
                         "'== 0' or '<= baseline * 1.5'")
    return match.group(1), match.group(2)


@dataclass(frozen=True)
class Threshold:
    """The right side of a comparison: a constant, or the baseline scaled or shifted."""

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
