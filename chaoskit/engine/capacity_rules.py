"""The capacity search's rules, pure: what a step's run says about its rate, which rate comes
next, when the search stops, its answer and exit code, and what the faults cost.

bisect (the default): the first step is the required rate when one is declared (the gate is
answered by a run at exactly that rate), else `from`; while every step holds, the rate grows by
`growth` (capped at `to`); once one fails, the gap between the highest rate that held and the
lowest that failed is halved until it is at most `resolution`. From 50/s to 1600/s at 25/s
that is about ten steps, where a ladder of 25/s steps takes up to 63.
steps: `from`, then up by `resolution` (the required rate is a rung too) until the first
failure: more steps, but never more than one step above the capacity (the gentler search for
a system that is slow to recover from overload). The comparison search starts at the rate
the faults left off at (it should hold there without them; if it does not, it climbs from the
bottom up to it).

A step that says nothing about its rate is repeated once, after the cooldown: the system was
not steady before it (an item failed in its baseline, at the declared opening rate with no
fault: a backlog left by the step before), or it could not be judged (chaoskit could not send
the rate, a probe had no evidence). Twice in a row at one rate ends the search: above that
rate nothing is known, and chaoskit's own limit is never taken for the system's capacity. A
guardrail, an error or an interruption end the search at once.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from chaoskit.spec.capacity import CapacitySpec

HELD, FAILED, UNSTEADY = "held", "failed", "unsteady"
INCONCLUSIVE, ABORTED, ERROR, INTERRUPTED = "inconclusive", "aborted", "error", "interrupted"
FINAL = frozenset({ABORTED, ERROR, INTERRUPTED})  # the search stops at once
UNJUDGED = frozenset({UNSTEADY, INCONCLUSIVE})  # the step is repeated once
SIGNAL_CODES = (130, 143, 129)
# the search's answer
FOUND, AT_LEAST, BELOW, PARTIAL, UNKNOWN = "found", "at-least", "below", "partial", "unknown"


@dataclass(frozen=True)
class Rules:
    """One search: its range, how it moves, and the rate it tries first."""

    low: float
    high: float
    resolution: float
    mode: str = "bisect"
    growth: float = 2.0
    required: float | None = None  # the gate (tried first)
    first: float | None = None  # a rate to start from (the comparison search: the capacity
    #                             found with the faults, which should hold without them)

    @classmethod
    def of(cls, spec: CapacitySpec, *, gate: bool = True, first: float | None = None) -> Rules:
        return cls(spec.from_, spec.to, spec.resolution, spec.search, spec.growth,
                   spec.required_rate if gate else None, first)

    def ladder(self) -> list[float]:
        """The rungs of a stepwise search: from `low` up by `resolution`, `high` last, the
        required rate among them."""
        count = math.floor((self.high - self.low) / self.resolution + 1e-9)
        rungs = {round(self.low + k * self.resolution, 6) for k in range(count + 1)}
        rungs.add(self.high)
        if self.required is not None:
            rungs.add(self.required)
        return sorted(rungs)


@dataclass(frozen=True)
class StepResult:
    """What one step's run said about its rate."""

    rate: float
    verdict: str  # held | failed | unsteady | inconclusive | aborted | error | interrupted
    exit_code: int = 0
    reason: str = ""
    generator_limit: bool = False  # inconclusive because chaoskit could not send the rate


def step_verdict(closing: dict[str, Any] | None, exit_code: int
                 ) -> tuple[str, str, bool]:
    """(verdict, why, generator limit) of a step, from its run's result record (None: the run
    never closed its journal) and its exit code."""
    if closing is None:
        if exit_code in SIGNAL_CODES:
            return INTERRUPTED, f"interrupted (exit {exit_code})", False
        return ERROR, f"the step's run did not finish (exit {exit_code})", False
    status = str(closing.get("status"))
    if status == "interrupted" or exit_code in SIGNAL_CODES:
        return INTERRUPTED, f"interrupted (exit {exit_code})", False
    if status in ("error", "invalid", "crashed"):
        return ERROR, str(closing.get("error") or f"{status} (exit {exit_code})"), False
    if status == "aborted":
        abort = closing.get("abort") or {}
        return ABORTED, str(abort.get("reason") or "aborted by a guardrail"), False
    verdicts = list(closing.get("verdicts") or [])
    if status == INCONCLUSIVE:
        unmet = [p for p in closing.get("preconditions") or [] if not p.get("met")]
        if unmet:
            return (INCONCLUSIVE, "; ".join(f"{p['name']}: {p['detail']}" for p in unmet),
                    any(p.get("name") == "load-delivered" for p in unmet))
        blind = [f"{v['item']} [{v['phase']}]" for v in verdicts
                 if v.get("status") == INCONCLUSIVE]
        return INCONCLUSIVE, "no evidence: " + (", ".join(blind) or "?"), False
    failed = [v for v in verdicts if v.get("status") == FAILED]
    if status == FAILED and failed:
        before = [f"{v['item']}" for v in failed if v.get("phase") == "before"]
        if before:
            return (UNSTEADY, "not steady before the step (failed in its baseline, at the "
                    f"opening rate with no fault): {', '.join(before)}", False)
        return FAILED, ", ".join(f"{v['item']} [{v['phase']}]" for v in failed), False
    if status == HELD:
        return HELD, "", False
    return ERROR, f"unknown status {status!r} (exit {exit_code})", False


def highest_held(results: list[StepResult]) -> float | None:
    return max((r.rate for r in results if r.verdict == HELD), default=None)


def lowest_failed(results: list[StepResult]) -> float | None:
    return min((r.rate for r in results if r.verdict == FAILED), default=None)


def _rounded(rate: float, resolution: float) -> float:
    """A rate at a tenth of the resolution's order of magnitude: 612/s, not 612.5/s."""
    digits = max(0, 1 - math.floor(math.log10(resolution)))
    return round(rate, digits) if digits else float(round(rate))


def midpoint(held: float, failed: float, resolution: float) -> float:
    mid = _rounded((held + failed) / 2, resolution)
    return mid if held < mid < failed else (held + failed) / 2


def next_rate(rules: Rules, results: list[StepResult]) -> float | None:
    """The rate of the next step; None when the search is over."""
    if results:
        last = results[-1]
        if last.verdict in FINAL:
            return None
        if last.verdict in UNJUDGED:
            again = len(results) >= 2 and results[-2].verdict in UNJUDGED and \
                results[-2].rate == last.rate
            return None if again else last.rate
    held, failed = highest_held(results), lowest_failed(results)
    if rules.mode == "steps":
        return _next_rung(rules, held, failed)
    if held is None and failed is None:
        return rules.required or rules.first or rules.low
    if held is None:
        assert failed is not None
        return None if failed <= rules.low else rules.low
    if failed is None:
        return None if held >= rules.high else min(rules.high,
                                                   _rounded(held * rules.growth,
                                                            rules.resolution))
    if failed - held <= rules.resolution + 1e-9:
        return None
    return midpoint(held, failed, rules.resolution)


def _next_rung(rules: Rules, held: float | None, failed: float | None) -> float | None:
    """The lowest rung above the highest that held (from `first` when given) and below the
    lowest that failed: up the ladder until a rung fails; when the first rate failed, from the
    bottom up to it."""
    ladder = sorted({*rules.ladder(), *([rules.first] if rules.first is not None else [])})
    if failed is None:
        floor = rules.first if rules.first is not None else ladder[0]
        above = [r for r in ladder if (r > held if held is not None else r >= floor)]
        return above[0] if above else None
    between = [r for r in ladder if r < failed and (held is None or r > held)]
    return between[0] if between else None


@dataclass(frozen=True)
class Conclusion:
    """A search's answer: the highest rate that held, the lowest that failed, what that makes
    of the capacity, and the status and exit code (as `chaoskit run`'s)."""

    status: str
    exit_code: int
    answer: str  # found | at-least | below | partial | unknown
    held: float | None
    failed: float | None
    low: float
    high: float
    stopped: str = ""  # why the search ended before it had its answer
    stopped_at: float | None = None
    generator_limit: float | None = None  # the rate chaoskit itself could not send
    gate: str | None = None  # met | not met | not judged (when a required rate is declared)
    required: float | None = None

    def bounds(self) -> tuple[float, float]:
        """The capacity lies in [lower, upper) (upper inf when nothing above it failed)."""
        lower = self.held if self.held is not None else 0.0
        upper = self.failed if self.failed is not None else math.inf
        return lower, upper

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def conclude(rules: Rules, results: list[StepResult]) -> Conclusion:
    held, failed = highest_held(results), lowest_failed(results)
    last = results[-1] if results else None
    early = last if last is not None and last.verdict in FINAL | UNJUDGED else None
    if early is not None:
        answer = PARTIAL if held is not None or failed is not None else UNKNOWN
    elif held is not None and failed is not None:
        answer = FOUND
    elif held is not None:
        answer = AT_LEAST
    elif failed is not None:
        answer = BELOW
    else:
        answer = UNKNOWN
    limit = early.rate if early is not None and early.generator_limit else None
    status, code, gate = _status(rules, answer, held, failed, early)
    return Conclusion(status, code, answer, held, failed, rules.low, rules.high,
                      early.reason if early else "", early.rate if early else None, limit,
                      gate, rules.required)


def _status(rules: Rules, answer: str, held: float | None, failed: float | None,
            early: StepResult | None) -> tuple[str, int, str | None]:
    """Worst first, as a run's: interrupted, error, a guardrail; then the question asked:
    the gate when a required rate is declared, else the capacity figure."""
    gate = None
    if rules.required is not None:
        gate = ("not met" if failed is not None and failed <= rules.required else
                "met" if held is not None and held >= rules.required else "not judged")
    if early is not None and early.verdict == INTERRUPTED:
        return INTERRUPTED, early.exit_code if early.exit_code in SIGNAL_CODES else 130, gate
    if early is not None and early.verdict == ERROR:
        return ERROR, 4, gate
    if early is not None and early.verdict == ABORTED:
        return ABORTED, 3, gate
    if gate is not None:
        return {"met": (HELD, 0, gate), "not met": (FAILED, 1, gate)}.get(
            gate, (INCONCLUSIVE, 5, gate))
    if answer in (FOUND, AT_LEAST):
        return HELD, 0, None
    if answer == BELOW:
        return FAILED, 1, None
    return INCONCLUSIVE, 5, None


@dataclass(frozen=True)
class Cost:
    """What the faults cost: the capacity without them minus the capacity with them, and the
    share of the fault-free capacity left; with the range the search's resolution allows
    (None: unbounded on that side)."""

    rate: float
    ratio: float
    rate_range: tuple[float | None, float | None]
    ratio_range: tuple[float | None, float | None]
    exact: bool  # both capacities bracketed (found); otherwise the figures are bounds

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def fault_cost(with_faults: Conclusion, without: Conclusion) -> Cost | None:
    """None when either search found no rate that held (no figure to compare)."""
    if with_faults.held is None or without.held is None or without.held <= 0:
        return None
    lo_f, hi_f = with_faults.bounds()
    lo_n, hi_n = without.bounds()
    return Cost(without.held - with_faults.held, with_faults.held / without.held,
                (_finite(lo_n - hi_f), _finite(hi_n - lo_f)),
                (lo_f / hi_n if math.isfinite(hi_n) else None, _finite(hi_f / lo_n)),
                with_faults.answer == FOUND and without.answer == FOUND)


def most_steps(rules: Rules, capacities: int = 400) -> int:
    """The most steps the search takes on a system whose verdict only depends on the rate
    (each step held up to some capacity, failed above it): simulated for capacities across
    the range and beyond it. Unsteady repeats come on top."""
    worst = 0
    span = rules.high - rules.low
    for k in range(-1, capacities + 2):
        capacity = rules.low + span * k / capacities
        results: list[StepResult] = []
        while len(results) < 1000:
            step = next_rate(rules, results)
            if step is None:
                break
            results.append(StepResult(step, HELD if step <= capacity else FAILED))
        worst = max(worst, len(results))
    return worst
