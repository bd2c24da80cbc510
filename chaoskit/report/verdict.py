"""Verdicts derived from a journal: each hypothesis item judged per phase, and the run's outcome."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from chaoskit.engine.journal import Record
from chaoskit.report.expectations import aggregate
from chaoskit.spec.conditions import COMPARE, Threshold, parse_threshold
from chaoskit.spec.models import Expectation, Experiment

# hypothesis phase -> the engine phase whose samples it judges
PHASE_OF = {"before": "baseline", "during": "inject", "after": "recover"}

EXIT_HELD, EXIT_FAILED, EXIT_INVALID, EXIT_ABORTED, EXIT_ERROR = 0, 1, 2, 3, 4


@dataclass
class ItemVerdict:
    """One hypothesis item in one phase, with what was observed beside what was expected."""

    item: str
    phase: str
    expect: str
    aggregate: str
    held: bool
    observed: float | None
    threshold: float | None
    baseline: float | None = None
    samples: int = 0
    note: str = ""
    stats: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def samples_by_item(records: list[Record]) -> dict[tuple[str, str], list[float]]:
    """(item, engine phase) -> values of the hypothesis samples, in time order."""
    series: dict[tuple[str, str], list[float]] = defaultdict(list)
    for record in records:
        if record["kind"] == "sample" and record.get("role") == "hypothesis":
            series[(record["name"], record["phase"])].append(float(record["value"]))
    return series


def _every_holds(threshold: Threshold, values: list[float], baseline: float | None) -> bool:
    return all(threshold.holds(v, baseline) for v in values)


def judge_item(item: Expectation, phase: str, series: dict[tuple[str, str], list[float]],
               reached: bool = True) -> ItemVerdict:
    threshold = parse_threshold(item.expect)
    values = series.get((item.name, PHASE_OF[phase]), [])
    verdict = ItemVerdict(item.name, phase, item.expect, item.aggregate, False, None, None,
                          samples=len(values))
    if not values:
        verdict.note = ("no samples in this phase: the probe never answered" if reached else
                        f"not judged: the run stopped before its {PHASE_OF[phase]} phase")
        return verdict
    base_values = series.get((item.name, "baseline"), [])
    if threshold.relative:
        if not base_values:
            verdict.note = "relative to the baseline, but the baseline has no samples"
            return verdict
        verdict.baseline = aggregate(item.aggregate, base_values, threshold.op)
    verdict.observed = aggregate(item.aggregate, values, threshold.op)
    verdict.threshold = threshold.value(verdict.baseline)
    if item.aggregate == "every":
        verdict.held = _every_holds(threshold, values, verdict.baseline)
    else:
        verdict.held = COMPARE[threshold.op](verdict.observed, verdict.threshold)
    if threshold.relative and phase != "before":
        _judge_against_baseline(item, threshold, base_values, values, verdict)
    return verdict


def _judge_against_baseline(item: Expectation, threshold: Threshold, base: list[float],
                            values: list[float], verdict: ItemVerdict) -> None:
    """Replace a point comparison by a statistical one where the statistics module can."""
    try:
        from chaoskit.report import statistics as stats
    except ImportError:
        return
    outcome = stats.compare_to_baseline(base, values, threshold, item.confidence,
                                        aggregate=item.aggregate)
    if outcome is None:
        return
    if outcome.held != verdict.held:
        verdict.note = (f"the {item.aggregate} rule alone would have "
                        f"{'held' if verdict.held else 'failed'}; judged on the "
                        f"{outcome.statistic} instead")
    elif not outcome.conclusive:
        verdict.note = f"within noise: not conclusive at {item.confidence:.0%}"
    verdict.held = outcome.held
    verdict.observed, verdict.baseline = outcome.observed, outcome.baseline
    verdict.threshold = outcome.limit
    verdict.stats = outcome.as_dict()


def judge(experiment: Experiment, records: list[Record]) -> list[ItemVerdict]:
    series = samples_by_item(records)
    entered = {r["phase"] for r in records if r["kind"] == "phase"}
    return [judge_item(item, phase, series, reached=PHASE_OF[phase] in entered)
            for item in experiment.hypothesis for phase in item.phases]


def outcome(verdicts: list[ItemVerdict], aborted_by_guardrail: bool, error: str | None,
            audit_clean: bool) -> tuple[str, int]:
    """(status, exit code): error beats abort beats failure; residue is an error."""
    if error or not audit_clean:
        return "error", EXIT_ERROR
    if aborted_by_guardrail:
        return "aborted", EXIT_ABORTED
    if all(v.held for v in verdicts):
        return "held", EXIT_HELD
    return "failed", EXIT_FAILED
