"""Verdicts derived from a journal: each hypothesis item judged per phase, and the run's outcome.

No evidence is never a pass. A phase in which an item's probe had nothing to measure (no
sample, or only samples that said "no data": no flow fell due, no request was sent) is
`inconclusive`, which fails a gate unless the item says `no_evidence: held`. Items a run never
reached (it stopped before their phase) are `not judged`, never `FAILED`.

Statuses of an item in a phase: held, failed, inconclusive, not-judged.
Statuses of a run, worst first: error, aborted, failed, inconclusive, held (interrupted and
crashed come from the engine and recovery).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from chaoskit.journal import Kind, Record
from chaoskit.report.expectations import aggregate
from chaoskit.spec.conditions import COMPARE, Threshold, parse_threshold
from chaoskit.spec.models import Expectation, Experiment

# hypothesis phase -> the engine phase whose samples it judges
PHASE_OF = {"before": "baseline", "during": "inject", "after": "recover"}

EXIT_HELD, EXIT_FAILED, EXIT_INVALID, EXIT_ABORTED, EXIT_ERROR = 0, 1, 2, 3, 4
EXIT_INCONCLUSIVE = 5
HELD, FAILED, INCONCLUSIVE, NOT_JUDGED = "held", "failed", "inconclusive", "not-judged"
POINT_RULES = {"every": "every sample", "last": "the last sample", "max": "the largest sample",
               "min": "the smallest sample"}


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
    samples: int = 0  # samples with evidence
    no_data: int = 0  # samples that said "nothing to measure"
    status: str = FAILED
    unit: str = ""  # of observed, threshold and baseline (report.values formats them)
    note: str = ""
    judged_by: str = ""
    stats: dict[str, Any] = field(default_factory=dict)
    examples: list[Any] = field(default_factory=list)  # what the probe found, when failed

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Series:
    """One item's samples in one engine phase: values with evidence, and no-data samples."""

    values: list[float] = field(default_factory=list)
    no_data: int = 0
    examples: list[Any] = field(default_factory=list)  # of the last sample that had some


def samples_by_item(records: list[Record]) -> dict[tuple[str, str], Series]:
    """(item, engine phase) -> its hypothesis samples, in time order."""
    series: dict[tuple[str, str], Series] = defaultdict(Series)
    for record in records:
        if record["kind"] == Kind.SAMPLE and record.get("role") == "hypothesis":
            bucket = series[(record["name"], record["phase"])]
            if record.get("value") is None:
                bucket.no_data += 1
            else:
                bucket.values.append(float(record["value"]))
            examples = (record.get("detail") or {}).get("examples")
            if examples:
                bucket.examples = list(examples)
    return series


def _no_evidence(item: Expectation, verdict: ItemVerdict, why: str) -> ItemVerdict:
    verdict.status = item.no_evidence
    verdict.held = item.no_evidence == HELD
    verdict.note = (f"no evidence: {why}" + ("" if item.no_evidence == INCONCLUSIVE
                                             else f"; judged {item.no_evidence} as the item "
                                                  "says (no_evidence)"))
    return verdict


def judge_item(item: Expectation, phase: str, series: dict[tuple[str, str], Series],
               reached: bool = True) -> ItemVerdict:
    threshold = parse_threshold(item.expect)
    found = series.get((item.name, PHASE_OF[phase]), Series())
    verdict = ItemVerdict(item.name, phase, item.expect, item.aggregate, False, None, None,
                          samples=len(found.values), no_data=found.no_data)
    if not reached and not found.values and not found.no_data:
        verdict.status = NOT_JUDGED
        verdict.note = f"not judged: the run stopped before its {PHASE_OF[phase]} phase"
        return verdict
    if not found.values:
        why = (f"all {found.no_data} samples had nothing to measure" if found.no_data
               else "the probe never answered in this phase")
        return _no_evidence(item, verdict, why)
    base = series.get((item.name, "baseline"), Series()).values
    if threshold.relative:
        if not base:
            return _no_evidence(item, verdict, "relative to the baseline, which has no samples")
        verdict.baseline = aggregate(item.aggregate, base, threshold.op)
    verdict.observed = aggregate(item.aggregate, found.values, threshold.op)
    verdict.threshold = threshold.value(verdict.baseline)
    if item.aggregate == "every":
        verdict.held = all(threshold.holds(v, verdict.baseline) for v in found.values)
    else:
        verdict.held = COMPARE[threshold.op](verdict.observed, verdict.threshold)
    verdict.judged_by = _rule(item, threshold)
    if threshold.relative and phase != "before":
        _judge_against_baseline(item, threshold, base, found.values, verdict)
    verdict.status = HELD if verdict.held else FAILED
    if not verdict.held:
        verdict.examples = found.examples
    return verdict


def _rule(item: Expectation, threshold: Threshold) -> str:
    """How the item is judged, in words (shown in the report)."""
    what = POINT_RULES.get(item.aggregate, f"the {item.aggregate} of the samples")
    if not threshold.relative:
        return f"{what} {threshold.op} the limit"
    base = {"every": "the worst baseline sample", "last": "the last baseline sample",
            "max": "the largest baseline sample", "min": "the smallest baseline sample"
            }.get(item.aggregate, f"the baseline's {item.aggregate}")
    scaled = f" x {threshold.scale:g}" if threshold.scale != 1 else ""
    if threshold.shift:
        scaled += f" {'+' if threshold.shift > 0 else '-'} {abs(threshold.shift):g}"
    return f"{what} {threshold.op} {base}{scaled}"


def _judge_against_baseline(item: Expectation, threshold: Threshold, base: list[float],
                            values: list[float], verdict: ItemVerdict) -> None:
    """The declared aggregate decides. Where it is a statistic (mean, p50, p90, p99), its
    seeded bootstrap interval says whether the verdict is conclusive; point rules (every, last,
    max, min) stand as declared, with the median comparison reported beside them."""
    from chaoskit.report import statistics as stats

    outcome = stats.compare_to_baseline(base, values, threshold, item.confidence,
                                        aggregate=item.aggregate)
    if outcome is None:
        return
    verdict.stats = outcome.as_dict()
    if item.aggregate in POINT_RULES:
        verdict.stats["role"] = "context only: the declared point rule decides"
        return
    verdict.judged_by += f" (bootstrap {outcome.confidence:.0%} interval of the margin)"
    verdict.held = outcome.held
    verdict.observed, verdict.baseline = outcome.observed, outcome.baseline
    verdict.threshold = outcome.limit
    if not outcome.conclusive:
        verdict.note = f"within noise: not conclusive at {item.confidence:.0%}"


def units(records: list[Record]) -> dict[str, str]:
    """Item -> the unit its probe measures in (from the run's `probes` record)."""
    described = next((r for r in records if r["kind"] == Kind.PROBES), {})
    return {name: str(info.get("unit", "")) for name, info in
            (described.get("items") or {}).items()}


def judge(experiment: Experiment, records: list[Record]) -> list[ItemVerdict]:
    series = samples_by_item(records)
    entered = {r["phase"] for r in records if r["kind"] == Kind.PHASE}
    unit_of = units(records)
    judged = [judge_item(item, phase, series, reached=PHASE_OF[phase] in entered)
              for item in experiment.hypothesis for phase in item.phases]
    for verdict in judged:
        verdict.unit = unit_of.get(verdict.item, "")
    return judged


@dataclass(frozen=True)
class Precondition:
    """Something the run had to achieve for its verdict to mean anything (e.g. the load
    engine sent what the experiment declared). Unmet: the run is inconclusive."""

    name: str
    met: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def outcome(verdicts: list[ItemVerdict], aborted_by_guardrail: bool, error: str | None,
            audit_clean: bool, preconditions: list[Precondition] | None = None
            ) -> tuple[str, int]:
    """(status, exit code). Worst first: an error (residue is one), a guardrail abort, an
    unmet precondition (the run did not test what it declared: its failures may be chaoskit's
    own, its passes prove nothing), a failed item, an item without evidence, held."""
    if error or not audit_clean:
        return "error", EXIT_ERROR
    if aborted_by_guardrail:
        return "aborted", EXIT_ABORTED
    if any(not p.met for p in preconditions or []):
        return INCONCLUSIVE, EXIT_INCONCLUSIVE
    judged = [v for v in verdicts if v.status != NOT_JUDGED]
    if any(v.status == FAILED for v in judged):
        return FAILED, EXIT_FAILED
    if any(v.status == INCONCLUSIVE for v in judged):
        return INCONCLUSIVE, EXIT_INCONCLUSIVE
    return HELD, EXIT_HELD
