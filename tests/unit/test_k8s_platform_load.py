"""The load Indexed Job: one plan, N indexed pods, each taking its share of the one schedule."""

from __future__ import annotations

import pytest

from chaoskit.load.drive import plan_for
from chaoskit.load.plan import LoadPlan
from chaoskit.load.schedule import ArrivalSchedule
from chaoskit.platforms.kubernetes.load_job import (
    LOAD_JOB,
    index_shares,
    load_job,
    merge_reports,
    plan_of,
)
from chaoskit.spec.load import LoadSpec
from tests.fixtures.systems import reference_flows


def spec() -> LoadSpec:
    return LoadSpec.model_validate({
        "duration": "3s", "workers": 1, "max_in_flight": 1000,
        "mix": {"pay": 0.7, "refund": 0.3},
        "profile": [{"shape": "constant", "rate": "700/s"},
                    {"shape": "spike", "at": "1s", "rate": "500/s", "hold": "0.5s"}]})


def arrivals(plan: LoadPlan) -> list[int]:
    schedule = ArrivalSchedule(plan.curve(), seed=plan.seed, weights=plan.weights,
                               worker=plan.worker, workers=plan.workers)
    return [a.k for a in schedule]


@pytest.mark.parametrize(("total", "workers"), [(0, 3), (10, 3), (2101, 4), (5, 8)])
def test_index_shares_sum_to_the_total_and_differ_by_at_most_one(total: int,
                                                                 workers: int) -> None:
    shares = index_shares(total, workers)
    assert len(shares) == workers and sum(shares) == total
    assert max(shares) - min(shares) <= 1


def test_the_job_is_indexed_with_completions_and_parallelism_equal_to_the_pods() -> None:
    plan = plan_for(spec(), "http://gateway.payments:8080", reference_flows(), seed=7,
                    ack_path="/tmp/acks")
    job = load_job(plan, name="load-1", pods=4, image="chaoskit/payment-stack:0.1.0",
                   run="run-1", start_at=1700000000.0)
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == 4
    assert job["metadata"]["labels"][LOAD_JOB] == "load-1"
    assert job["spec"]["activeDeadlineSeconds"] >= plan.run_seconds + plan.timeout
    pod_plans = [plan_of(job, i) for i in range(4)]
    assert [p.worker for p in pod_plans] == [0, 1, 2, 3]
    assert {p.workers for p in pod_plans} == {4} and {p.ack_path for p in pod_plans} == {None}
    assert sum(p.max_in_flight for p in pod_plans) >= plan.max_in_flight


def test_the_pods_shares_are_exactly_the_whole_schedule_at_the_asked_rate() -> None:
    plan = plan_for(spec(), "http://gateway.payments:8080", reference_flows(), seed=7,
                    ack_path=None)
    whole = arrivals(plan)
    job = load_job(plan, name="load-1", pods=3, image="x", run="r", start_at=0.0)
    per_pod = [arrivals(plan_of(job, i)) for i in range(3)]
    assert [len(p) for p in per_pod] == index_shares(len(whole), 3)
    assert sorted(k for pod in per_pod for k in pod) == whole  # no arrival lost or doubled
    assert len(whole) == pytest.approx(700 * 3 + 500 * 0.5, abs=2)  # the asked total


def test_reports_merge_bucket_counts_and_totals() -> None:
    one = {"latency": [[1000, 3]], "lag": [[10, 3]], "acks": 3, "connections": 2,
           "cpu_seconds": 0.5, "substituted": {}}
    two = {"latency": [[1000, 1], [5000, 1]], "lag": [[10, 2]], "acks": 2, "connections": 1,
           "cpu_seconds": 0.25, "refunds_as_payments": 0}
    merged = merge_reports([one, two])
    assert (merged["pods"], merged["acknowledged"], merged["connections"]) == (2, 5, 3)
    assert merged["cpu_seconds"] == 0.75
    assert merged["latency_ms"]["max"] > merged["latency_ms"]["p50"]
