"""histogram_quantile arithmetic on hand-computed buckets (PromQL's rules)."""

import math

import pytest

from chaoskit.probes.quantile import bucket_quantile

INF = math.inf
# 100 observations: 80 <= 0.1, 15 in (0.1, 0.25], 4 in (0.25, 0.5], 1 in (0.5, 1]
BUCKETS = [(0.1, 80.0), (0.25, 95.0), (0.5, 99.0), (1.0, 100.0), (INF, 100.0)]


@pytest.mark.parametrize(("q", "expected"), [
    (0.5, 0.1 * 50 / 80),            # inside the first bucket, which starts at 0
    (0.9, 0.1 + 0.15 * 10 / 15),     # rank 90: 10 of the 15 in (0.1, 0.25]
    (0.99, 0.5),                     # rank 99 is the last of (0.25, 0.5]
    (0.995, 0.5 + 0.5 * 0.5),        # half of the one observation in (0.5, 1]
    (1.0, 1.0),
])
def test_interpolates_inside_the_bucket_holding_the_rank(q: float, expected: float) -> None:
    assert bucket_quantile(q, BUCKETS) == pytest.approx(expected, rel=1e-12)


def test_bucket_order_does_not_matter() -> None:
    assert bucket_quantile(0.9, reversed(BUCKETS)) == pytest.approx(0.2)


def test_rank_in_the_inf_bucket_answers_the_highest_finite_bound() -> None:
    assert bucket_quantile(0.99, [(0.1, 50.0), (0.5, 60.0), (INF, 100.0)]) == 0.5


def test_first_bucket_with_a_negative_bound_is_returned_as_is() -> None:
    # schedule lag buckets start below zero: all early completions read as that bound
    lag = [(-60.0, 90.0), (0.0, 95.0), (10.0, 100.0), (INF, 100.0)]
    assert bucket_quantile(0.5, lag) == -60.0
    assert bucket_quantile(0.99, lag) == pytest.approx(0.0 + 10.0 * 4 / 5)


def test_no_observations_or_no_inf_bucket_is_nan() -> None:
    assert math.isnan(bucket_quantile(0.5, [(0.1, 0.0), (INF, 0.0)]))
    assert math.isnan(bucket_quantile(0.5, [(0.1, 3.0), (0.2, 4.0)]))
    assert math.isnan(bucket_quantile(0.5, [(INF, 4.0)]))


def test_out_of_range_q_is_infinite_like_promql() -> None:
    assert bucket_quantile(-0.1, BUCKETS) == -INF
    assert bucket_quantile(1.1, BUCKETS) == INF


def test_non_monotonic_counts_are_flattened() -> None:
    # a dip (scraped mid-update) must not produce a negative bucket population
    dipped = [(0.1, 80.0), (0.25, 79.0), (0.5, 99.0), (1.0, 100.0), (INF, 100.0)]
    assert bucket_quantile(0.9, dipped) == pytest.approx(0.25 + 0.25 * 10 / 19)
