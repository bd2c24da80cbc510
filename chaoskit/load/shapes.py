"""Load shapes: every spec shape expands to curve primitives that add up into one rate curve.

Times are scenario seconds; heights are requests per run second. The expansion is pure and
deterministic for a seed, so worker processes and tests see the same curve.
"""

from __future__ import annotations

import math
import random

from chaoskit.load.curve import Box, Curve, Primitive, Ramp, bell
from chaoskit.spec.load import (
    ConstantShape,
    LoadSpec,
    PeakShape,
    RampShape,
    RollingPeaksShape,
    SpikeShape,
    StepShape,
    SurprisePeaksShape,
    TriplePeakShape,
)


def triple_peak(at: float, rate: float) -> list[Primitive]:
    """Offline 8 PM bell + three platforms' promotions + live-stream flash spikes (scenario s).

    The flash spike at `at` tops the total up to exactly `rate` while it holds, which is the
    moment the three peaks coincide; the later spikes stay below it.
    """
    minute = 60.0
    others: list[Primitive] = [
        bell(at, 0.40 * rate, 180 * minute),                 # offline, in-store at daily high
        bell(at, 0.30 * rate, 20 * minute),                  # platform A promotion at 8 PM
        bell(at + 15 * minute, 0.20 * rate, 20 * minute),    # platform B a little later
        bell(at + 40 * minute, 0.15 * rate, 20 * minute),    # platform C
        Box(at + 10 * minute, at + 11 * minute, 0.25 * rate),  # live-stream deals
        Box(at + 25 * minute, at + 26 * minute, 0.25 * rate),
    ]
    top_up = max(0.0, rate - sum(p.rate(at) for p in others))
    return [Box(at, at + 2 * minute, top_up), *others]


def surprise_centers(count: int, duration: float, seed: int, index: int) -> list[float]:
    """Where surprise peaks fall: uniform over the scenario, fixed by (seed, shape index)."""
    rng = random.Random(f"surprise-peaks:{seed}:{index}")
    return sorted(rng.uniform(0.0, duration) for _ in range(count))


def expand(shape: object, *, seed: int, index: int, duration: float) -> list[Primitive]:
    """The primitives of one spec shape."""
    match shape:
        case ConstantShape(rate=rate):
            return [Box(-math.inf, math.inf, rate)]
        case RampShape():
            return [Ramp(shape.start, shape.end, shape.from_, shape.to)]
        case StepShape(at=at, rate=rate):
            return [Box(at, math.inf, rate)]
        case SpikeShape(at=at, rate=rate, hold=hold):
            return [Box(at, at + hold, rate)]
        case PeakShape(at=at, rate=rate, width=width):
            return [bell(at, rate, width)]
        case RollingPeaksShape():
            return [bell(shape.at + z * shape.offset, shape.rate, shape.width)
                    for z in range(shape.zones)]
        case SurprisePeaksShape(count=count, rate=rate, width=width):
            return [bell(c, rate, width)
                    for c in surprise_centers(count, duration, seed, index)]
        case TriplePeakShape(at=at, rate=rate):
            return triple_peak(at, rate)
    raise TypeError(f"not a load shape: {shape!r}")


def curve_of(spec: LoadSpec, seed: int) -> Curve:
    """The whole profile of a load spec as one additive curve."""
    primitives: list[Primitive] = []
    for index, shape in enumerate(spec.profile):
        primitives += expand(shape, seed=seed, index=index, duration=spec.duration)
    return Curve(tuple(primitives), spec.time_scale, spec.run_seconds())


def rate_at(spec: LoadSpec, t_run: float, seed: int) -> float:
    """Intended requests per second at run second `t_run` (shapes added, scenario time scaled)."""
    return curve_of(spec, seed).rate_run(t_run)


def steady_load(spec: LoadSpec, seconds: float, seed: int) -> LoadSpec:
    """The same clients at the profile's opening rate for `seconds` of run time: the normal
    traffic of the steady phases around an experiment (baseline, recover)."""
    rate = rate_at(spec, 0.0, seed)
    return spec.model_copy(update={
        "duration": seconds * spec.time_scale,
        "profile": [ConstantShape(shape="constant", rate=rate)]})
