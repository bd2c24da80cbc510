"""Rate curves: sums of primitives (box, ramp, bell) in scenario time, read in run time.

Kept free of the spec models so worker processes start fast and get exact floats over JSON.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# FWHM = 2 * sqrt(2 ln 2) * sigma: users think in "how wide is the peak at half height".
_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
# Past 8 sigma a bell contributes < 1e-14 of its height: skip the exp.
_BELL_REACH = 8.0


@dataclass(frozen=True)
class Box:
    """`height` on [start, end); start/end may be infinite."""

    start: float
    end: float
    height: float

    def rate(self, t: float) -> float:
        return self.height if self.start <= t < self.end else 0.0

    def peak(self) -> float:
        return self.height


@dataclass(frozen=True)
class Ramp:
    """Linear from r0 to r1 over [start, end), clamped to r0 before and r1 after."""

    start: float
    end: float
    r0: float
    r1: float

    def rate(self, t: float) -> float:
        if t <= self.start:
            return self.r0
        if t >= self.end:
            return self.r1
        return self.r0 + (self.r1 - self.r0) * (t - self.start) / (self.end - self.start)

    def peak(self) -> float:
        return max(self.r0, self.r1)


@dataclass(frozen=True)
class Bell:
    """A Gaussian bell of `height` around `center` with standard deviation `sigma`."""

    center: float
    height: float
    sigma: float

    def rate(self, t: float) -> float:
        z = (t - self.center) / self.sigma
        if abs(z) > _BELL_REACH:
            return 0.0
        return self.height * math.exp(-0.5 * z * z)

    def peak(self) -> float:
        return self.height


Primitive = Box | Ramp | Bell


@dataclass(frozen=True)
class Curve:
    """A sum of primitives in scenario time, read in run time through `time_scale`."""

    primitives: tuple[Primitive, ...]
    time_scale: float
    run_seconds: float

    def rate_scenario(self, t_scenario: float) -> float:
        return sum(p.rate(t_scenario) for p in self.primitives)

    def rate_run(self, t_run: float) -> float:
        """Requests per second at run second `t_run`; zero outside the run."""
        if t_run < 0.0 or t_run >= self.run_seconds:
            return 0.0
        return max(0.0, self.rate_scenario(t_run * self.time_scale))

    def peak_bound(self) -> float:
        """An upper bound of the rate (every primitive at its top at once)."""
        return sum(p.peak() for p in self.primitives)

    def peak_rate(self, grid: int = 2000) -> float:
        """The highest rate the run reaches: read at every primitive's turning points (bell
        centres, box and ramp edges) and on an even grid between them."""
        end = self.run_seconds * self.time_scale
        moments = [end * i / grid for i in range(grid + 1)]
        for p in self.primitives:
            moments += [p.center] if isinstance(p, Bell) else [p.start, p.end]
        inside = [t for t in moments if 0.0 <= t < end and math.isfinite(t)]
        return max((max(0.0, self.rate_scenario(t)) for t in inside), default=0.0)


def bell(center: float, height: float, width: float) -> Bell:
    return Bell(center, height, width / _FWHM_PER_SIGMA)


def primitives_to_json(curve: Curve) -> list[list[object]]:
    """A JSON-able form of a curve's primitives for the worker processes (floats kept exact)."""
    kinds = {Box: "box", Ramp: "ramp", Bell: "bell"}
    return [[kinds[type(p)], *p.__dict__.values()] for p in curve.primitives]


def curve_from_json(items: list[list[object]], time_scale: float, run_seconds: float) -> Curve:
    kinds: dict[str, type] = {"box": Box, "ramp": Ramp, "bell": Bell}
    return Curve(tuple(kinds[str(k)](*args) for k, *args in items), time_scale, run_seconds)
