"""The capacity search in words and numbers: each step's evidence from its run's journal, which
item failed first and by how much (with units), and each kind of answer."""

from __future__ import annotations

from chaoskit.report.capacity import (
    answer_text,
    by_how_much,
    cost_text,
    failed_first,
    gate_text,
    step_evidence,
)
from tests.fixtures.capacity_steps import step_records


def test_a_steps_evidence_is_what_its_run_sent_and_when_the_item_crossed() -> None:
    evidence = step_evidence(step_records(400, held=False, sent_ratio=0.995))
    load = evidence["load"]
    assert (load["intended"], load["sent"], load["behind"]) == (800, 796, 4)
    assert load["sent_rate"] == 398.0 and load["on_time"] == 0.995 and load["p99_s"] == 0.3
    (verdict,) = evidence["verdicts"]
    assert verdict["status"] == "failed" and verdict["observed"] == 0.3
    assert verdict["first_crossed_s"] == 1.5  # the third sample, 1.5 s into inject
    assert verdict["first_crossed_t"] == 2.0  # ... 2 s into the run


def test_a_held_step_has_no_crossing() -> None:
    (verdict,) = step_evidence(step_records(100, held=True))["verdicts"]
    assert "first_crossed_s" not in verdict


def test_by_how_much_speaks_the_units() -> None:
    latency = {"observed": 0.412, "threshold": 0.1, "unit": "s", "expect": "<= 100ms"}
    assert by_how_much(latency) == "412 ms against <= 100ms: 312 ms over (4.1x the limit)"
    on_time = {"observed": 0.971, "threshold": 0.999, "unit": "ratio", "expect": ">= 99.9%"}
    assert by_how_much(on_time) == "97.1% against >= 99.9%: 2.8 points short"
    twice = {"observed": 3, "threshold": 0, "unit": "count", "expect": "== 0"}
    assert by_how_much(twice) == "3 against == 0: off by 3"
    blind = {"observed": None, "threshold": None, "unit": "s", "expect": "<= 1s",
             "note": "no evidence"}
    assert by_how_much(blind) == "- against <= 1s (no evidence)"


def test_the_item_that_crossed_first_in_the_run_leads() -> None:
    evidence = {"verdicts": [
        {"item": "late", "status": "failed", "first_crossed_s": 9.0, "first_crossed_t": 19.0},
        {"item": "aggregate-only", "status": "failed"},
        {"item": "after", "status": "failed", "first_crossed_s": 0.5, "first_crossed_t": 41.0},
        {"item": "early", "status": "failed", "first_crossed_s": 2.5, "first_crossed_t": 12.5},
        {"item": "fine", "status": "held"}]}
    assert [v["item"] for v in failed_first(evidence)] == ["early", "late", "after",
                                                           "aggregate-only"]


def conclusion(**fields: object) -> dict:
    return {"held": None, "failed": None, "low": 50.0, "high": 1600.0, "stopped": "",
            "stopped_at": None, "generator_limit": None, "gate": None, "required": None,
            **fields}


def test_each_answer_in_words() -> None:
    assert answer_text(conclusion(answer="found", held=300.0, failed=325.0)) == (
        "capacity 300/s: the highest rate that held; the lowest that failed was 325/s")
    assert "the capacity is at least 1600/s" in answer_text(
        conclusion(answer="at-least", held=1600.0))
    assert "failed already at 50/s" in answer_text(conclusion(answer="below", failed=50.0))
    limited = answer_text(conclusion(answer="partial", held=1000.0, stopped_at=100000.0,
                                     generator_limit=100000.0, stopped="load-delivered: x"))
    assert limited.startswith("the capacity is at least 1000/s; inconclusive above 1000/s: "
                              "chaoskit could not send 100000/s (its own limit, not the "
                              "system's capacity)")
    assert "capacity 1000" not in limited


def test_the_gate_and_an_unknown_cost_are_said() -> None:
    assert gate_text(conclusion(required=400.0, gate="not met")) == (
        "required rate 400/s: FAILED")
    assert gate_text(conclusion()) is None
    assert cost_text(None, "no rate held with the faults") == (
        "what the faults cost: unknown (no rate held with the faults)")


def test_a_negative_cost_is_called_noise_not_a_cost() -> None:
    cost = {"rate": -25.0, "ratio": 1.33, "rate_range": [-50.0, 0.0],
            "ratio_range": [1.0, 1.67], "exact": True}
    assert "NOT A COST" in cost_text(cost)
    straddles = {**cost, "rate": 25.0, "rate_range": [-25.0, 50.0]}
    assert cost_text(straddles).endswith("Not distinguishable from no cost at this resolution")
    clear = {**cost, "rate": 400.0, "rate_range": [375.0, 425.0]}
    assert "NOT" not in cost_text(clear) and "Not" not in cost_text(clear)
