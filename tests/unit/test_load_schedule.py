"""The arrival schedule: counts per window follow the curve, seeded jitter, worker shares, mix."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from itertools import pairwise

import pytest

from chaoskit.load.curve import Box, Curve, Ramp
from chaoskit.load.schedule import Arrival, ArrivalSchedule


def constant(rate: float, seconds: float) -> Curve:
    return Curve((Box(-math.inf, math.inf, rate),), 1.0, seconds)


def arrivals(curve: Curve, seed: int = 1, weights: list[float] | None = None,
             worker: int = 0, workers: int = 1) -> list[Arrival]:
    return list(ArrivalSchedule(curve, seed=seed, weights=weights or [1.0], worker=worker,
                                workers=workers))


def per_window(items: list[Arrival], width: float) -> Counter[int]:
    return Counter(int(a.t // width) for a in items)


def test_every_100ms_window_holds_its_intended_count_within_one() -> None:
    items = arrivals(constant(2000.0, 3.0))
    assert len(items) == 6000
    assert all(abs(n - 200) <= 1 for n in per_window(items, 0.1).values())
    assert all(0.0 <= a.t < 3.0 for a in items)
    assert [a.t for a in items] == sorted(a.t for a in items)


def test_a_ramp_is_followed_window_by_window() -> None:
    curve = Curve((Ramp(0.0, 2.0, 0.0, 1000.0),), 1.0, 2.0)
    counts = per_window(arrivals(curve), 0.1)
    for w in range(20):
        expected = 250.0 * ((0.1 * (w + 1)) ** 2 - (0.1 * w) ** 2)  # ∫ 500 t dt
        assert abs(counts[w] - expected) <= 1.0


def test_arrivals_are_jittered_not_a_metronome() -> None:
    items = arrivals(constant(1000.0, 1.0))
    gaps = [b.t - a.t for a, b in pairwise(items)]
    assert statistics.mean(gaps) == pytest.approx(0.001, rel=0.01)
    assert statistics.pstdev(gaps) > 0.0002


def test_same_seed_same_schedule_other_seed_other_times() -> None:
    curve = constant(500.0, 1.0)
    assert arrivals(curve, seed=5) == arrivals(curve, seed=5)
    other = arrivals(curve, seed=6)
    assert len(other) == len(arrivals(curve, seed=5))
    assert [a.t for a in other] != [a.t for a in arrivals(curve, seed=5)]


def test_worker_shares_partition_the_single_worker_schedule_exactly() -> None:
    curve = Curve((Box(-math.inf, math.inf, 3000.0), Box(0.5, 0.7, 20000.0)), 1.0, 1.0)
    whole = arrivals(curve, seed=9, weights=[0.5, 0.5])
    for n in (2, 3):
        shares = [arrivals(curve, seed=9, weights=[0.5, 0.5], worker=i, workers=n)
                  for i in range(n)]
        assert all(a.k % n == i for i, share in enumerate(shares) for a in share)
        merged = sorted((a for share in shares for a in share), key=lambda a: a.k)
        assert merged == whole


def test_mix_follows_the_weights() -> None:
    items = arrivals(constant(20000.0, 1.0), weights=[0.6, 0.3, 0.1])
    counts = Counter(a.flow for a in items)
    for flow, share in enumerate([0.6, 0.3, 0.1]):
        sigma = math.sqrt(20000 * share * (1 - share))
        assert abs(counts[flow] - 20000 * share) < 4 * sigma


def test_a_spike_shows_up_in_the_first_10ms_after_it() -> None:
    curve = Curve((Box(-math.inf, math.inf, 1000.0), Box(0.5, 0.8, 9000.0)), 1.0, 1.0)
    counts = per_window(arrivals(curve), 0.01)
    assert abs(counts[49] - 10) <= 1
    assert abs(counts[50] - 100) <= 1
    assert abs(counts[80] - 10) <= 1


def test_zero_rate_stretches_have_no_arrivals() -> None:
    curve = Curve((Box(0.2, 0.3, 1000.0),), 1.0, 1.0)
    items = arrivals(curve)
    assert len(items) == 100
    assert all(0.2 <= a.t < 0.3 for a in items)
