"""Verdicts: baseline-relative items judged statistically, and phases a run never reached."""

from __future__ import annotations

from chaoskit.report.verdict import Series, judge_item
from chaoskit.spec.models import Expectation


def item(expect: str, aggregate: str = "every") -> Expectation:
    return Expectation.model_validate({"name": "p99", "probe": {"type": "fake", "signal": "p99"},
                                       "expect": expect, "aggregate": aggregate})


BASE = [100.0, 104.0, 98.0, 101.0, 99.0, 103.0, 97.0, 102.0]


def phases(base: list[float] | None = None, during: list[float] | None = None
           ) -> dict[tuple[str, str], Series]:
    found = {}
    if base is not None:
        found[("p99", "baseline")] = Series(list(base))
    if during is not None:
        found[("p99", "inject")] = Series(list(during))
    return found


SPIKY = [110.0, 108.0, 400.0, 112.0, 109.0, 111.0, 107.0, 110.0]  # one 400 ms spike


def test_the_declared_every_rule_decides_against_the_baseline() -> None:
    verdict = judge_item(item("<= baseline * 1.5"), "during", phases(BASE, SPIKY))
    assert not verdict.held and verdict.status == "failed"
    assert verdict.observed == 400.0 and verdict.threshold == 156.0  # worst vs worst x 1.5
    assert verdict.judged_by == "every sample <= the worst baseline sample x 1.5"
    assert verdict.stats["role"].startswith("context only")  # the median test is shown, not used


def test_a_statistical_aggregate_is_judged_with_its_bootstrap_interval() -> None:
    verdict = judge_item(item("<= baseline * 1.5", "p50"), "during", phases(BASE, SPIKY))
    assert verdict.held and verdict.observed == 110.0 and verdict.threshold == 150.75
    assert verdict.stats["conclusive"] is True and verdict.stats["n"] == [8, 8]
    assert "bootstrap 95% interval" in verdict.judged_by


def test_a_clear_degradation_fails_with_its_statistics() -> None:
    during = [v * 2 for v in BASE]
    verdict = judge_item(item("<= baseline * 1.5", "p50"), "during", phases(BASE, during))
    assert not verdict.held and verdict.note == ""
    assert verdict.stats["ci"][0] > 0 and verdict.stats["effect"]["cliffs_delta"] == 1.0


def test_a_borderline_phase_is_marked_within_noise() -> None:
    during = [149.0, 153.0, 147.0, 152.0, 150.0, 148.0, 151.0, 146.0]
    verdict = judge_item(item("<= baseline * 1.5", "p50"), "during", phases(BASE, during))
    assert verdict.stats["conclusive"] is False
    assert "within noise" in verdict.note


def test_constant_thresholds_keep_the_point_comparison() -> None:
    verdict = judge_item(item("<= 120"), "during", phases(during=[110.0, 125.0]))
    assert not verdict.held and verdict.stats == {}


def test_a_phase_the_run_never_reached_says_so() -> None:
    verdict = judge_item(item("<= 120"), "after", {}, reached=False)
    assert verdict.status == "not-judged" and "stopped before its recover phase" in verdict.note
    silent = judge_item(item("<= 120"), "after", {})
    assert silent.status == "inconclusive" and "the probe never answered" in silent.note


def test_a_failed_item_carries_what_its_probe_found() -> None:
    """The evidence behind a failure (e.g. a money check's violating rows) reaches the
    verdict, the table and the report; a held item carries none."""
    from chaoskit.report.verdict import samples_by_item

    records = [{"kind": "sample", "role": "hypothesis", "name": "legs", "phase": "recover",
                "value": v, **({"detail": {"examples": d}} if d else {})}
               for v, d in ((0.0, None), (2.0, [{"flow_id": "ref_1"}]), (1.0, None))]
    series = samples_by_item(records)  # type: ignore[arg-type]
    failed = judge_item(item("== 0").model_copy(update={"name": "legs"}), "after", series)
    assert failed.status == "failed" and failed.examples == [{"flow_id": "ref_1"}]
    series[("legs", "recover")].values = [0.0]
    assert judge_item(item("== 0").model_copy(update={"name": "legs"}), "after",
                      series).examples == []


def test_a_fault_gone_before_its_revert_makes_the_run_inconclusive() -> None:
    from chaoskit.engine.run import fault_preconditions

    applied = {"kind": "applied", "fault": "slow-bank"}
    kept = {"kind": "reverted", "fault": "slow-bank", "facts": {"vanished": []}}
    lost = {"kind": "reverted", "fault": "slow-bank",
            "facts": {"vanished": ["bank-alpha/chaoskit-x-slow-bank-downstream"]}}
    assert fault_preconditions([]) == []
    (ok,) = fault_preconditions([applied, kept])
    assert ok.met and ok.name == "faults-held"
    (gone,) = fault_preconditions([applied, lost])
    assert not gone.met and "slow-bank: bank-alpha/chaoskit-x-slow-bank-downstream" in gone.detail
    # a rollback after a failed apply removes what it finds: nothing was promised in place
    (never,) = fault_preconditions([{"kind": "applied", "fault": "other"}, lost])
    assert never.met
