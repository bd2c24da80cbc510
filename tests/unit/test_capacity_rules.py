"""The capacity search's rules, pure: which rate next, when it stops, its answer and exit code,
what a step's run says about its rate, and what the faults cost."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from chaoskit.engine.capacity_rules import (
    ABORTED,
    ERROR,
    FAILED,
    HELD,
    INCONCLUSIVE,
    INTERRUPTED,
    UNSTEADY,
    Rules,
    StepResult,
    conclude,
    fault_cost,
    most_steps,
    next_rate,
    step_verdict,
)
from chaoskit.spec.capacity import CapacitySpec

Verdict = Callable[[float], StepResult]


def system(capacity: float) -> Verdict:
    """A system that holds up to `capacity` and fails above it."""
    return lambda rate: StepResult(rate, HELD if rate <= capacity else FAILED,
                                   0 if rate <= capacity else 1)


def search(rules: Rules, step: Verdict, limit: int = 100) -> list[StepResult]:
    results: list[StepResult] = []
    while (rate := next_rate(rules, results)) is not None:
        results.append(step(rate))
        assert len(results) < limit, "the search does not end"
    return results


BISECT = Rules(low=50, high=1600, resolution=25)


@pytest.mark.parametrize("capacity", [50, 73, 99.5, 100, 310, 799, 800, 1234, 1575, 1599])
def test_bisect_brackets_any_capacity_within_one_resolution(capacity: float) -> None:
    results = search(BISECT, system(capacity))
    answer = conclude(BISECT, results)
    assert answer.answer == "found" and (answer.status, answer.exit_code) == ("held", 0)
    assert answer.held is not None and answer.failed is not None
    assert answer.held <= capacity < answer.failed
    assert answer.failed - answer.held <= BISECT.resolution
    assert len(results) <= most_steps(BISECT) <= 12  # ~log2 steps, not a 63-rung ladder


def test_bisect_grows_by_its_factor_then_halves_the_gap() -> None:
    rates = [r.rate for r in search(BISECT, system(310))]
    assert rates[:4] == [50, 100, 200, 400]  # x2 while every step holds
    assert rates[4] == 300  # the middle of the last held (200) and first failed (400)
    assert all(200 < r < 400 for r in rates[4:])


def test_growth_stops_at_the_top_of_the_range() -> None:
    rules = Rules(low=50, high=300, resolution=10, growth=4)
    rates = [r.rate for r in search(rules, system(10_000))]
    assert rates == [50, 200, 300]
    answer = conclude(rules, search(rules, system(10_000)))
    assert answer.answer == "at-least" and answer.held == 300 and answer.exit_code == 0


def test_a_system_failing_at_the_bottom_is_below_the_range() -> None:
    results = search(BISECT, system(10))
    assert [r.rate for r in results] == [50]
    answer = conclude(BISECT, results)
    assert (answer.answer, answer.status, answer.exit_code) == ("below", "failed", 1)
    assert answer.held is None and answer.failed == 50


def test_the_required_rate_is_tried_first_and_gates_the_exit() -> None:
    rules = Rules(low=50, high=1600, resolution=25, required=400)
    failing = search(rules, system(310))
    assert failing[0].rate == 400 and failing[1].rate == 50  # then down to bracket it
    answer = conclude(rules, failing)
    assert (answer.status, answer.exit_code, answer.gate) == ("failed", 1, "not met")
    assert answer.held is not None and answer.held <= 310 < (answer.failed or 0)
    holding = search(rules, system(900))
    assert holding[0].rate == 400
    met = conclude(rules, holding)
    assert (met.status, met.exit_code, met.gate) == ("held", 0, "met")


def test_the_ladder_climbs_by_the_resolution_and_stops_at_the_first_failure() -> None:
    rules = Rules(low=100, high=200, resolution=30, mode="steps", required=150)
    assert rules.ladder() == [100, 130, 150, 160, 190, 200]
    results = search(rules, system(155))
    assert [r.rate for r in results] == [100, 130, 150, 160]
    answer = conclude(rules, results)
    assert (answer.held, answer.failed, answer.exit_code, answer.gate) == (150, 160, 0, "met")


def test_the_midpoint_is_rounded_yet_strictly_inside_the_gap() -> None:
    rules = Rules(low=1, high=4, resolution=0.25)
    results = [StepResult(1, HELD), StepResult(2, HELD), StepResult(4, FAILED)]
    assert next_rate(rules, results) == 3
    results += [StepResult(3, HELD), StepResult(3.5, FAILED)]
    assert next_rate(rules, results) == 3.25
    results.append(StepResult(3.25, HELD))
    assert next_rate(rules, results) is None  # 3.25 .. 3.5 is within the resolution


def test_an_unsteady_step_is_repeated_once_then_ends_the_search() -> None:
    rules = BISECT
    results = [StepResult(50, HELD), StepResult(100, UNSTEADY, 1, "backlog")]
    assert next_rate(rules, results) == 100  # the same rate again, after the cooldown
    results.append(StepResult(100, HELD))
    assert next_rate(rules, results) == 200  # steady again: the search goes on
    stuck = [StepResult(50, HELD), StepResult(100, UNSTEADY, 1, "backlog"),
             StepResult(100, UNSTEADY, 1, "backlog")]
    assert next_rate(rules, stuck) is None
    answer = conclude(rules, stuck)
    assert (answer.status, answer.exit_code, answer.answer) == ("inconclusive", 5, "partial")
    assert answer.held == 50 and answer.stopped_at == 100 and "backlog" in answer.stopped


def test_the_generators_own_limit_is_inconclusive_never_the_capacity() -> None:
    limit = 300.0

    def step(rate: float) -> StepResult:
        if rate > limit:
            return StepResult(rate, INCONCLUSIVE, 5, "load-delivered: sent 61% on time", True)
        return StepResult(rate, HELD)

    results = search(BISECT, step)
    assert [r.rate for r in results] == [50, 100, 200, 400, 400]  # repeated once: not a blip
    answer = conclude(BISECT, results)
    assert (answer.status, answer.exit_code, answer.answer) == ("inconclusive", 5, "partial")
    assert answer.held == 200 and answer.failed is None and answer.generator_limit == 400


def test_a_one_off_generator_hiccup_does_not_end_the_search() -> None:
    results = [StepResult(50, HELD), StepResult(100, INCONCLUSIVE, 5, "late", True)]
    assert next_rate(BISECT, results) == 100
    results.append(StepResult(100, HELD))
    assert next_rate(BISECT, results) == 200
    assert conclude(BISECT, results).generator_limit is None


@pytest.mark.parametrize(("verdict", "code", "status", "exit_code"), [
    (ABORTED, 3, "aborted", 3), (ERROR, 4, "error", 4), (INTERRUPTED, 143, "interrupted", 143),
    (INTERRUPTED, 130, "interrupted", 130)])
def test_a_guardrail_an_error_or_a_signal_ends_the_search_at_once(
        verdict: str, code: int, status: str, exit_code: int) -> None:
    results = [StepResult(50, HELD), StepResult(100, verdict, code, "why")]
    assert next_rate(BISECT, results) is None
    answer = conclude(BISECT, results)
    assert (answer.status, answer.exit_code) == (status, exit_code)
    assert answer.held == 50 and answer.stopped_at == 100


def test_a_guardrail_trip_outranks_a_met_gate() -> None:
    rules = Rules(low=50, high=1600, resolution=25, required=100)
    results = [StepResult(100, HELD), StepResult(200, ABORTED, 3, "guardrail books")]
    answer = conclude(rules, results)
    assert (answer.status, answer.exit_code, answer.gate) == ("aborted", 3, "met")


def test_a_met_gate_stands_when_the_search_above_it_is_inconclusive() -> None:
    rules = Rules(low=50, high=1600, resolution=25, required=100)
    results = [StepResult(100, HELD), StepResult(200, INCONCLUSIVE, 5, "x", True),
               StepResult(200, INCONCLUSIVE, 5, "x", True)]
    answer = conclude(rules, results)
    assert (answer.status, answer.exit_code, answer.gate) == ("held", 0, "met")
    assert answer.answer == "partial" and answer.generator_limit == 200
    unjudged = conclude(rules, [StepResult(100, INCONCLUSIVE, 5, "x", True),
                                StepResult(100, INCONCLUSIVE, 5, "x", True)])
    assert (unjudged.exit_code, unjudged.gate) == (5, "not judged")


def test_no_step_at_all_is_no_answer() -> None:
    answer = conclude(BISECT, [])
    assert (answer.answer, answer.exit_code) == ("unknown", 5)


def test_a_fault_that_halves_capacity_costs_half() -> None:
    with_faults = conclude(BISECT, search(BISECT, system(400)))
    without = conclude(Rules(50, 1600, 25, first=with_faults.held),
                       search(Rules(50, 1600, 25, first=with_faults.held), system(800)))
    cost = fault_cost(with_faults, without)
    assert cost is not None and cost.exact
    assert cost.rate == pytest.approx(400, abs=25) and cost.ratio == pytest.approx(0.5, abs=0.04)
    low, high = cost.ratio_range
    assert low is not None and high is not None and low <= 0.5 <= high
    r_low, r_high = cost.rate_range
    assert r_low is not None and r_high is not None and r_low <= 400 <= r_high


def test_the_comparison_search_starts_where_the_faults_left_off() -> None:
    rules = Rules(50, 1600, 25, first=400)
    assert next_rate(rules, []) == 400
    assert fault_cost(conclude(BISECT, [StepResult(50, FAILED)]),
                      conclude(BISECT, search(BISECT, system(800)))) is None


def test_a_cost_against_an_open_ended_capacity_is_a_bound() -> None:
    with_faults = conclude(BISECT, search(BISECT, system(400)))
    without = conclude(BISECT, search(BISECT, system(5000)))  # held up to 1600: >= 1600
    cost = fault_cost(with_faults, without)
    assert cost is not None and not cost.exact
    assert cost.rate_range[1] is None and cost.ratio_range[0] is None


def test_rules_come_from_the_spec() -> None:
    spec = CapacitySpec.model_validate({"from": "50/s", "to": "1600/s", "resolution": "25/s",
                                        "step": "30s", "required_rate": "400/s",
                                        "search": "steps", "growth": 3})
    assert Rules.of(spec) == Rules(50, 1600, 25, "steps", 3, 400, None)
    assert Rules.of(spec, gate=False, first=200).required is None


# -- what a step's run says about its rate --------------------------------------------------
def verdict(item: str, phase: str, status: str) -> dict:
    return {"item": item, "phase": phase, "status": status}


@pytest.mark.parametrize(("closing", "code", "expected"), [
    ({"status": "held", "verdicts": [verdict("a", "during", "held")]}, 0, HELD),
    ({"status": "failed", "verdicts": [verdict("a", "during", "failed")]}, 1, FAILED),
    ({"status": "failed", "verdicts": [verdict("a", "after", "failed")]}, 1, FAILED),
    ({"status": "failed", "verdicts": [verdict("a", "before", "failed"),
                                       verdict("a", "during", "failed")]}, 1, UNSTEADY),
    ({"status": "aborted", "abort": {"reason": "guardrail money: > 0"}}, 3, ABORTED),
    ({"status": "error", "error": "toxiproxy is down"}, 4, ERROR),
    ({"status": "interrupted"}, 130, INTERRUPTED),
    (None, 143, INTERRUPTED),
    (None, 4, ERROR),
])
def test_a_steps_verdict_follows_its_run(closing: dict | None, code: int,
                                         expected: str) -> None:
    assert step_verdict(closing, code)[0] == expected


def test_a_step_the_load_engine_could_not_send_is_the_generators_limit() -> None:
    closing = {"status": "inconclusive", "verdicts": [verdict("a", "during", "failed")],
               "preconditions": [{"name": "load-delivered", "met": False,
                                  "detail": "chaoskit sent 61% on time"}]}
    found, why, limit = step_verdict(closing, 5)
    assert (found, limit) == (INCONCLUSIVE, True)
    assert "load-delivered: chaoskit sent 61% on time" in why


def test_a_step_without_evidence_is_inconclusive_but_not_the_generator() -> None:
    closing = {"status": "inconclusive",
               "verdicts": [verdict("refunds", "during", "inconclusive")]}
    found, why, limit = step_verdict(closing, 5)
    assert (found, limit) == (INCONCLUSIVE, False) and "refunds [during]" in why


def test_the_ladder_can_start_where_the_faults_left_off() -> None:
    rules = Rules(low=25, high=200, resolution=25, mode="steps", first=110)
    assert [r.rate for r in search(rules, system(160))] == [110, 125, 150, 175]
    # a first rate that fails: climb from the bottom up to it
    assert [r.rate for r in search(rules, system(60))] == [110, 25, 50, 75]
    answer = conclude(rules, search(rules, system(60)))
    assert (answer.held, answer.failed, answer.answer) == (50, 75, "found")
    assert [r.rate for r in search(rules, system(10))] == [110, 25]
    assert conclude(rules, search(rules, system(10))).answer == "below"
