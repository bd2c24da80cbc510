"""Expectation arithmetic, guardrail holding and verdict outcomes: the pure judging code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chaoskit.engine.guardrails import GuardrailWatch
from chaoskit.errors import JournalError
from chaoskit.journal import JournalWriter, outstanding_intents, read_journal
from chaoskit.report.expectations import aggregate
from chaoskit.report.verdict import Precondition, judge, outcome
from chaoskit.spec.conditions import parse_threshold
from chaoskit.spec.models import Experiment, Guardrail
from chaoskit.spec.units import parse_quantity


@pytest.mark.parametrize("text, value", [("300ms", 0.3), ("99.9%", 0.999), ("200/s", 200.0),
                                         ("5", 5.0), ("1.5s", 1.5), ("0", 0.0)])
def test_quantities_read_in_human_units(text: str, value: float) -> None:
    assert parse_quantity(text) == pytest.approx(value)


def test_a_constant_threshold_compares_directly() -> None:
    threshold = parse_threshold("<= 300ms")
    assert threshold.holds(0.3) and not threshold.holds(0.31)
    assert parse_threshold("== 0").holds(0.0) and not parse_threshold("== 0").holds(1.0)


def test_a_relative_threshold_needs_and_uses_the_baseline() -> None:
    threshold = parse_threshold("<= baseline * 1.5")
    assert threshold.relative
    assert threshold.holds(0.15, baseline=0.1) and not threshold.holds(0.16, baseline=0.1)
    assert parse_threshold("<= baseline + 50ms").value(0.1) == pytest.approx(0.15)
    with pytest.raises(ValueError, match="baseline"):
        threshold.value(None)


def test_every_reports_the_worst_sample_for_the_direction() -> None:
    assert aggregate("every", [1, 5, 3], "<=") == 5
    assert aggregate("every", [1, 5, 3], ">=") == 1
    assert aggregate("p50", [1, 2, 3, 4], "<=") == 2
    assert aggregate("mean", [1, 2, 3], "<=") == 2


def _guardrail(condition: str, hold: str) -> Guardrail:
    return Guardrail.model_validate({"name": "g", "probe": {"type": "fake", "signal": "x"},
                                     "abort_when": condition, "for": hold})


def test_a_guardrail_trips_only_after_its_condition_held_for_its_time() -> None:
    watch = GuardrailWatch(_guardrail("> 5", "2s"))
    assert not watch.observe(0.0, 6)
    assert not watch.observe(1.9, 7)
    assert watch.observe(2.0, 7)
    assert not watch.observe(2.5, 8)  # trips once


def test_a_guardrail_condition_that_lapses_restarts_its_clock() -> None:
    watch = GuardrailWatch(_guardrail("> 5", "2s"))
    watch.observe(0.0, 6)
    watch.observe(1.5, 1)  # back to healthy
    assert not watch.observe(2.5, 6)
    assert watch.observe(4.5, 6)


def _experiment(expect: str, aggregate_: str = "every") -> Experiment:
    return Experiment.model_validate({
        "apiVersion": "chaoskit/v1", "kind": "Experiment", "metadata": {"name": "x"},
        "hypothesis": [{"name": "lag", "probe": {"type": "fake", "signal": "s"},
                        "expect": expect, "aggregate": aggregate_}]})


def _samples(**phases: list[float]) -> list[dict]:
    return [{"kind": "sample", "role": "hypothesis", "name": "lag", "phase": phase, "value": v}
            for phase, values in phases.items() for v in values]


def test_each_item_is_judged_per_phase_with_observed_beside_expected() -> None:
    verdicts = judge(_experiment("<= 1"), _samples(baseline=[0.5], inject=[0.5, 2], recover=[1]))
    by_phase = {v.phase: v for v in verdicts}
    assert by_phase["before"].held and by_phase["after"].held
    assert not by_phase["during"].held and by_phase["during"].observed == 2


def _phases(*names: str) -> list[dict]:
    return [{"kind": "phase", "phase": name} for name in names]


def test_a_phase_without_samples_is_inconclusive_never_a_pass() -> None:
    records = _phases("baseline", "inject", "recover") + _samples(baseline=[0.5], inject=[0.5])
    after = next(v for v in judge(_experiment("<= 1"), records) if v.phase == "after")
    assert not after.held and after.status == "inconclusive"
    assert "no evidence: the probe never answered" in after.note


def test_no_data_samples_are_not_evidence() -> None:
    records = _phases("baseline", "inject", "recover") + _samples(
        baseline=[0.5], inject=[0.5], recover=[None, None])
    after = next(v for v in judge(_experiment("<= 1"), records) if v.phase == "after")
    assert after.status == "inconclusive" and after.no_data == 2 and after.samples == 0
    assert "all 2 samples had nothing to measure" in after.note


def test_an_item_may_say_what_no_evidence_means() -> None:
    experiment = _experiment("<= 1")
    experiment.hypothesis[0].no_evidence = "held"
    records = _phases("baseline", "inject", "recover") + _samples(baseline=[0.5], inject=[0.5])
    after = next(v for v in judge(experiment, records) if v.phase == "after")
    assert after.held and after.status == "held" and "judged held" in after.note


def test_a_phase_the_run_never_reached_is_not_judged_and_says_so() -> None:
    records = _phases("baseline", "inject") + _samples(baseline=[0.5], inject=[0.5])
    after = next(v for v in judge(_experiment("<= 1"), records) if v.phase == "after")
    assert after.status == "not-judged" and "stopped before its recover phase" in after.note


def test_outcome_orders_error_abort_failure_inconclusive() -> None:
    records = _phases("baseline", "inject", "recover")
    held = judge(_experiment("<= 1"), records + _samples(baseline=[0], inject=[0], recover=[0]))
    failed = judge(_experiment("<= 1"), records + _samples(baseline=[0], inject=[3], recover=[0]))
    unknown = judge(_experiment("<= 1"), records + _samples(baseline=[0], inject=[0]))
    assert outcome(held, False, None, True) == ("held", 0)
    assert outcome(failed, False, None, True) == ("failed", 1)
    assert outcome(unknown, False, None, True) == ("inconclusive", 5)
    assert outcome(failed, True, None, True) == ("aborted", 3)
    assert outcome(held, False, None, False) == ("error", 4)
    assert outcome(held, True, "driver broke", True) == ("error", 4)


def test_an_unmet_precondition_makes_a_held_run_inconclusive() -> None:
    records = _phases("baseline", "inject", "recover")
    held = judge(_experiment("<= 1"), records + _samples(baseline=[0], inject=[0], recover=[0]))
    short = Precondition("load-delivered", False, "chaoskit sent 59% of the arrivals")
    assert outcome(held, False, None, True, [short]) == ("inconclusive", 5)


def test_the_journal_survives_a_torn_last_line(tmp_path: Path) -> None:
    writer = JournalWriter(tmp_path / "j.jsonl")
    writer.write("header", run_id="r")
    writer.write("intent", fault="a", type="fake", intent={})
    writer.write("intent", fault="b", type="fake", intent={})
    writer.write("reverted", fault="a")
    writer.close()
    with open(tmp_path / "j.jsonl", "a") as file:
        file.write('{"kind": "sample", "va')  # the writer died mid-line
    records = read_journal(tmp_path / "j.jsonl")
    assert [r["fault"] for r in outstanding_intents(records)] == ["b"]


def test_a_file_that_is_not_a_journal_is_refused_with_a_hint(tmp_path: Path) -> None:
    (tmp_path / "x.jsonl").write_text(json.dumps({"kind": "sample"}) + "\n")
    with pytest.raises(JournalError) as raised:
        read_journal(tmp_path / "x.jsonl")
    assert raised.value.hint
