"""A capacity search: steps at rising (then bisected) arrival rates, each one a `chaoskit run
FILE --at-rate RATE` process of its own (its own journal, lease and watchdog: the rollback
guarantee and the guardrails of any run), until the highest rate at which the hypothesis holds
with the faults active is bracketed; then, when asked, the same search without the faults.
The rules (which rate next, when to stop, the answer) are `capacity_rules`; the search journal
(search.jsonl) records every step with its evidence, and the report is derived from it alone.

Stopping the search (Ctrl-C, SIGTERM) never leaves a step's faults applied: the running step
is sent SIGINT and the search waits for its revert, as a game day does.
"""

from __future__ import annotations

import os
import secrets
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from chaoskit.engine.capacity_rules import (
    ABORTED,
    ERROR,
    INTERRUPTED,
    Conclusion,
    Cost,
    Rules,
    StepResult,
    conclude,
    fault_cost,
    next_rate,
    step_verdict,
)
from chaoskit.engine.child_run import run_command
from chaoskit.engine.day_rules import StepOutcome
from chaoskit.engine.gameday import POLL, STOP_GRACE, StepProcess
from chaoskit.journal import JournalWriter, Kind, Record, read_journal, result
from chaoskit.report.capacity import WITH, WITHOUT, step_evidence
from chaoskit.spec.models import Experiment
from chaoskit.spec.plan import PlanExperiment

SEARCH_END = (ERROR, INTERRUPTED, ABORTED)  # after these, no comparison search follows
EXIT_PRECEDENCE = (130, 143, 129, 4, 3)  # a comparison that ends this way marks the whole


@dataclass
class SearchOptions:
    seed: int | None = None
    out: Path = Path("runs")
    sets: dict[str, str] = field(default_factory=dict)
    compare: bool = False
    report: bool = True
    ignore_window: str | None = None


@dataclass
class SearchResult:
    status: str
    exit_code: int
    dir: Path
    journal: Path
    conclusions: dict[str, Conclusion]
    cost: Cost | None


# what happened, for the display: (line) -> shown
Say = Callable[[str], None]
# (the step's command, its folder) -> how its run ended (tests replace the process)
Launch = Callable[[list[str], Path], StepOutcome]


class CapacitySearch:
    def __init__(self, experiment: Experiment, source: str, options: SearchOptions,
                 say: Say, launch: Launch | None = None) -> None:
        assert experiment.capacity is not None
        self.experiment, self.spec = experiment, experiment.capacity
        self.source, self.options, self.say = source, options, say
        self.seed = options.seed if options.seed is not None else secrets.randbelow(2**31)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.search_id = f"{experiment.metadata.name}-capacity-{stamp}-{secrets.token_hex(2)}"
        self.dir = options.out / self.search_id
        self.stopping: str | None = None
        self.steps = 0
        self.launch = launch or self._launch

    # -- one step --------------------------------------------------------------------------
    def command(self, rate: float, faults: bool, out: Path) -> list[str]:
        """The step's own `chaoskit run`: the same seed for every step (the same arrivals and
        target picks; only the rate differs), indexed in its own folder's history (steps at
        other rates are not earlier runs of the experiment)."""
        extra = ("--at-rate", f"{rate:g}") + (() if faults else ("--without-faults",))
        return run_command(self.source, seed=self.seed, out=out, history=out,
                           sets=self.options.sets, report=self.options.report,
                           ignore_window=self.options.ignore_window, extra=extra)

    def _step(self, journal: JournalWriter, search: str, rate: float) -> StepResult:
        self.steps += 1
        faults = search == WITH
        out = self.dir / "steps" / f"{self.steps:02d}-{search}-{rate:g}"
        command = self.command(rate, faults, out)
        journal.write(Kind.RATE_STEP, search=search, step=self.steps, rate=rate, faults=faults,
                      out=str(out), command=command)
        self.say(f"step {self.steps}: {rate:g}/s {_title(search)}, "
                 f"{self.spec.step:g} s at that rate")
        ended = self.launch(command, out)
        records = _records(ended.journal)
        verdict, reason, limit = step_verdict(result(records) if records else None,
                                              ended.exit_code)
        if not records and ended.note:
            reason = f"{reason}: {ended.note}"
        evidence = step_evidence(records) if records else {}
        journal.write(Kind.RATE_STEP_ENDED, search=search, step=self.steps, rate=rate,
                      faults=faults, verdict=verdict, exit_code=ended.exit_code, reason=reason,
                      generator_limit=limit, journal=ended.journal, report=ended.report,
                      evidence=evidence)
        self.say(f"step {self.steps}: {rate:g}/s {_title(search)}: {verdict}"
                 + (f" ({reason})" if reason else ""))
        return StepResult(rate, verdict, ended.exit_code, reason, limit)

    def _launch(self, command: list[str], out: Path) -> StepOutcome:
        """The step's `chaoskit run` in its own session, followed until it ends."""
        process = StepProcess(PlanExperiment(name=f"step-{self.steps}",
                                             experiment=self.source),
                              Path(self.source), command, out)
        self._follow(process)
        return process.outcome(out.name)

    def _follow(self, process: StepProcess) -> None:
        """Show the step's phases and guardrail trips; on a stop, interrupt it and wait for
        its revert (SIGTERM after the grace: its watchdog reverts what it leaves)."""
        interrupted_at: float | None = None
        while process.proc.poll() is None:
            for record in process.new_records():
                line = _progress(record)
                if line:
                    self.say(f"  {line}")
            if self.stopping:
                process.interrupt()
                interrupted_at = interrupted_at or time.monotonic()
                if time.monotonic() - interrupted_at > STOP_GRACE:
                    process.proc.terminate()
            time.sleep(POLL)

    # -- one search ------------------------------------------------------------------------
    def _search(self, journal: JournalWriter, search: str, rules: Rules) -> Conclusion:
        results: list[StepResult] = []
        while not self.stopping:
            rate = next_rate(rules, results)
            if rate is None:
                break
            if self.steps and not self._cool_down():
                break
            results.append(self._step(journal, search, rate))
        if self.stopping and (not results or results[-1].verdict != INTERRUPTED):
            code = 143 if "SIGTERM" in self.stopping else 130
            results.append(StepResult(next_rate(rules, results) or 0.0, INTERRUPTED, code,
                                      f"{self.stopping} between steps"))
        conclusion = conclude(rules, results)
        self.say(f"{_title(search)}: {conclusion.status} (exit {conclusion.exit_code})")
        return conclusion

    def _cool_down(self) -> bool:
        """Idle between steps; False when the search is stopped meanwhile."""
        until = time.monotonic() + self.spec.cooldown
        while time.monotonic() < until:
            if self.stopping:
                return False
            time.sleep(min(POLL, until - time.monotonic()))
        return not self.stopping

    def run(self) -> SearchResult:
        self.dir.mkdir(parents=True, exist_ok=True)
        journal = JournalWriter(self.dir / "search.jsonl")
        journal.write(Kind.CAPACITY, search_id=self.search_id,
                      experiment=self.experiment.metadata.name, source=self.source,
                      seed=self.seed, pid=os.getpid(), parameters=self.options.sets,
                      compare=self.options.compare,
                      capacity=self.spec.model_dump(mode="json", by_alias=True),
                      hypothesis=[{"name": h.name, "expect": h.expect, "phases": h.phases,
                                   "aggregate": h.aggregate}
                                  for h in self.experiment.hypothesis],
                      faults=[f.name for f in self.experiment.faults])
        previous = {sig: signal.signal(sig, self._on_signal)
                    for sig in (signal.SIGINT, signal.SIGTERM)}
        conclusions: dict[str, Conclusion] = {}
        try:
            conclusions[WITH] = self._search(journal, WITH, Rules.of(self.spec))
            if self.options.compare and conclusions[WITH].status not in SEARCH_END \
                    and not self.stopping:
                conclusions[WITHOUT] = self._search(
                    journal, WITHOUT, Rules.of(self.spec, gate=False,
                                               first=conclusions[WITH].held))
        except Exception as exc:  # a step could not even be started: the search says so
            journal.write(Kind.ERROR, error=str(exc), traceback=traceback.format_exc())
            journal.write(Kind.RESULT, status=ERROR, exit_code=4, seed=self.seed,
                          searches={k: c.as_dict() for k, c in conclusions.items()},
                          error=str(exc), steps=self.steps)
            journal.close()
            raise
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        cost = fault_cost(conclusions[WITH], conclusions[WITHOUT]) \
            if WITHOUT in conclusions else None
        status, code = _overall(conclusions)
        journal.write(Kind.RESULT, status=status, exit_code=code, seed=self.seed,
                      searches={k: c.as_dict() for k, c in conclusions.items()},
                      cost=cost.as_dict() if cost else None, cost_note=_cost_note(conclusions),
                      steps=self.steps)
        journal.close()
        return SearchResult(status, code, self.dir, self.dir / "search.jsonl", conclusions,
                            cost)

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.stopping = self.stopping or f"interrupted by {signal.Signals(signum).name}"


def _overall(conclusions: dict[str, Conclusion]) -> tuple[str, int]:
    """The search with the faults answers the question; a comparison that was interrupted,
    errored or tripped a guardrail says so too (worst first)."""
    main, other = conclusions[WITH], conclusions.get(WITHOUT)

    def rank(code: int) -> int:
        return EXIT_PRECEDENCE.index(code) if code in EXIT_PRECEDENCE else len(EXIT_PRECEDENCE)
    if other is not None and rank(other.exit_code) < rank(main.exit_code):
        return other.status, other.exit_code
    return main.status, main.exit_code


def _cost_note(conclusions: dict[str, Conclusion]) -> str:
    if WITHOUT not in conclusions:
        return ""
    missing = [_title(k) for k, c in conclusions.items() if c.held is None]
    return f"no rate held {' or '.join(missing)}" if missing else ""


def _title(search: str) -> str:
    return "with the faults" if search == WITH else "without the faults"


def _records(journal: str | None) -> list[Record]:
    if not journal:
        return []
    try:
        return read_journal(journal)
    except Exception:  # noqa: BLE001 - a damaged step journal is reported as no evidence
        return []


def _progress(record: Record) -> str | None:
    kind = record.get("kind")
    if kind == Kind.PHASE:
        return f"phase {record.get('phase')}"
    if kind == Kind.GUARDRAIL:
        return f"guardrail {record.get('name')} tripped: {record.get('why')}"
    if kind == Kind.INJECT_FAILED:
        return f"fault {record.get('fault')} failed to apply: {record.get('error')}"
    if kind == Kind.APPLIED:
        return f"fault {record.get('fault')} applied"
    return None
