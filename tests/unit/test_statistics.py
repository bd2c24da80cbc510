"""Baseline statistics: verdicts repeat on healthy and degraded runs, effect sizes, ranks, ties."""

from __future__ import annotations

import random

import pytest

from chaoskit.report.statistics import (
    cliffs_delta,
    common_language,
    compare_samples,
    compare_to_baseline,
    delta_magnitude,
    mann_whitney_u,
)
from chaoskit.spec.conditions import parse_threshold

RELATIVE = parse_threshold("<= baseline * 1.5")


def latencies(rng: random.Random, n: int, median: float, spread: float = 0.25) -> list[float]:
    """Log-normal latencies, the usual shape of request latency and schedule lag."""
    return [median * rng.lognormvariate(0, spread) for _ in range(n)]


def synthetic_run(seed: int, factor: float) -> tuple[list[float], list[float]]:
    rng = random.Random(seed)
    return latencies(rng, 20, 0.120), latencies(rng, 30, 0.120 * factor)


@pytest.mark.parametrize("aggregate", ["every", "p50", "mean"])
def test_healthy_runs_hold_every_time(aggregate: str) -> None:
    outcomes = [compare_to_baseline(*synthetic_run(seed, 1.0), RELATIVE, 0.95, aggregate)
                for seed in range(20)]
    assert all(o is not None and o.held and o.conclusive for o in outcomes)


@pytest.mark.parametrize("aggregate", ["every", "p50", "mean"])
def test_degraded_runs_fail_every_time(aggregate: str) -> None:
    outcomes = [compare_to_baseline(*synthetic_run(seed, 2.0), RELATIVE, 0.95, aggregate)
                for seed in range(20)]
    assert all(o is not None and not o.held for o in outcomes)
    assert sum(o.conclusive for o in outcomes if o) >= 18


def test_one_outlier_does_not_flip_a_healthy_run() -> None:
    base, values = synthetic_run(3, 1.0)
    values[7] = max(base) * 5  # a single GC pause: an 'every' rule would fail on it
    outcome = compare_to_baseline(base, values, RELATIVE, 0.95, "every")
    assert outcome is not None and outcome.held


def test_same_journal_data_gives_identical_statistics() -> None:
    base, values = synthetic_run(11, 1.4)
    first = compare_to_baseline(base, values, RELATIVE, 0.95).as_dict()  # type: ignore[union-attr]
    again = compare_to_baseline(base, values, RELATIVE, 0.95).as_dict()  # type: ignore[union-attr]
    assert first == again


def test_outcome_reports_effect_size_with_the_right_sign() -> None:
    base, values = synthetic_run(5, 2.0)
    worse = compare_to_baseline(base, values, RELATIVE, 0.95)
    better = compare_to_baseline(values, base, RELATIVE, 0.95)
    assert worse is not None and better is not None
    assert worse.cliffs_delta > 0.5 and better.cliffs_delta < -0.5
    assert worse.ratio is not None and 1.6 < worse.ratio < 2.5
    assert worse.ratio_ci is not None and worse.ratio_ci[0] < worse.ratio < worse.ratio_ci[1]
    report = worse.as_dict()
    assert report["effect"]["magnitude"] == "large"
    assert report["n"] == [20, 30] and report["ci"][0] > 0  # the margin is over the limit
    assert report["mwu_p"] < 0.05


def test_greater_is_better_expectations_fail_when_values_drop() -> None:
    throughput = parse_threshold(">= baseline * 0.8")
    rng = random.Random(2)
    base = latencies(rng, 20, 200.0, 0.1)
    assert compare_to_baseline(base, latencies(rng, 20, 195.0, 0.1), throughput, 0.95).held
    assert not compare_to_baseline(base, latencies(rng, 20, 100.0, 0.1), throughput, 0.95).held


def test_shifted_threshold_and_a_zero_baseline() -> None:
    lag = parse_threshold("<= baseline + 2s")
    base = [0.0] * 10  # nothing late before the faults: no ratio, the shift still works
    on_time = compare_to_baseline(base, [0.0, 0.5, 1.0, 0.2, 0.0, 0.3], lag, 0.95)
    late = compare_to_baseline(base, [4.0, 5.0, 3.5, 6.0, 4.2, 5.1], lag, 0.95)
    assert on_time is not None and on_time.held and on_time.ratio is None
    assert late is not None and not late.held and late.conclusive


def test_untestable_cases_leave_the_point_comparison_standing() -> None:
    assert compare_to_baseline([1.0, 2.0], [1.0, 2.0, 3.0], RELATIVE, 0.95) is None
    assert compare_to_baseline([1.0] * 5, [1.0] * 5, parse_threshold("== baseline"), 0.95) is None


def test_all_ties_are_no_evidence() -> None:
    outcome = compare_to_baseline([0.3] * 8, [0.3] * 8, RELATIVE, 0.95)
    assert outcome is not None and outcome.held and outcome.conclusive
    assert outcome.mwu_p > 0.99 and outcome.cliffs_delta == 0.0  # all under the scaled limit
    assert mann_whitney_u([2.0] * 6, [2.0] * 6, "two-sided") == (18.0, 1.0)


def test_mann_whitney_matches_scipy_reference_values() -> None:
    # worked by hand (the normal approximation scipy's method="asymptotic" uses):
    # U = 18; ties 3..8 in both (t=2 six times); var = 64/12 * (17 - 36/240); z = 13.5 / sd
    x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
    y = [3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]
    u, p = mann_whitney_u(x, y, "two-sided")
    assert u == 18.0 and p == pytest.approx(0.15442, abs=1e-4)
    # ties inside and across the samples: mid-ranks give R_a = 34, U = 6; tie term
    # 6 + 120 + 24 + 6 = 156, var = 49/12 * (15 - 156/182) = 57.75, z = (24.5 - 6 - 0.5) / sd
    a, b = [1.0, 2.0, 2.0, 3.0, 3.0, 3.0, 4.0], [3.0, 3.0, 4.0, 4.0, 5.0, 5.0, 6.0]
    u, p = mann_whitney_u(a, b, "less")
    assert u == 6.0 and p == pytest.approx(0.0089271, abs=1e-5)


def test_effect_sizes_on_known_samples() -> None:
    assert cliffs_delta([5.0, 6.0], [1.0, 2.0]) == 1.0
    assert cliffs_delta([1.0, 2.0], [5.0, 6.0]) == -1.0
    assert cliffs_delta([1.0, 3.0], [2.0, 3.0]) == pytest.approx(-0.25)  # 1 win, 2 losses, 1 tie
    assert common_language([1.0, 3.0], [2.0, 3.0]) == pytest.approx(0.375)
    assert [delta_magnitude(d) for d in (0.1, -0.2, 0.4, -0.9)] == \
        ["negligible", "small", "medium", "large"]


def test_ab_shift_is_significant_only_for_real_changes() -> None:
    rng = random.Random(9)
    a = latencies(rng, 40, 0.1)
    same = compare_samples(a, latencies(rng, 40, 0.1), 0.95)
    slower = compare_samples(a, latencies(rng, 40, 0.2), 0.95)
    assert same is not None and not same.significant
    assert slower is not None and slower.significant and slower.cliffs_delta > 0
    assert slower.ci[0] > 0 and slower.as_dict()["significant"] is True
