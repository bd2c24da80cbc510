"""A game day: the plan's steps one after another, each experiment in its own `chaoskit run`
process (its own journal, lease and watchdog: the rollback guarantee of any run), side by side
where the plan says so, holds before steps, and the stop rule. The plan journal (plan.jsonl)
records the day; each step's journal records its run.

Stopping the day (Ctrl-C, SIGTERM, the stop rule, a declined hold) never leaves a step's faults
applied: a running step is sent SIGINT and the day waits for its revert.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from chaoskit.engine.child_run import run_command
from chaoskit.engine.day_rules import (
    STATUS_OF_EXIT,
    StepOutcome,
    day_exit,
    step_seeds,
    stop_reason,
)
from chaoskit.journal import JournalWriter, Kind, Record, read_journal, result
from chaoskit.spec.plan import PlanExperiment, PlanStep
from chaoskit.spec.plan_loader import LoadedPlan

POLL = 0.2
STOP_GRACE = 120.0  # seconds a step gets to revert after SIGINT before SIGTERM, then SIGKILL


@dataclass
class DayOptions:
    seed: int | None = None
    out: Path = Path("runs")
    history: Path | None = None  # where step runs are indexed (default: out)
    report: bool = True
    ignore_window: str | None = None
    sets: dict[str, str] = field(default_factory=dict)


@dataclass
class DayResult:
    exit_code: int
    status: str
    day_dir: Path
    journal: Path
    outcomes: list[StepOutcome]
    stopped: str | None


# (step entry, record of its journal) -> the live display; (step entry, None) when it ends
Watcher = Callable[[str, Record | None], None]
# (step, what it will inject) -> go on?
Hold = Callable[[PlanStep], bool]


class StepProcess:
    """One experiment of a step, run by `chaoskit run` in its own session."""

    def __init__(self, entry: PlanExperiment, source: Path, command: list[str],
                 out: Path) -> None:
        self.entry, self.source, self.out = entry, source, out
        out.mkdir(parents=True, exist_ok=True)
        self.log = open(out / "output.log", "w", encoding="utf-8")  # noqa: SIM115
        self.proc = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        self.journal: Path | None = None
        self._offset = 0
        self.signalled = False

    def new_records(self) -> list[Record]:
        if self.journal is None:
            found = sorted(self.out.glob("*/journal.jsonl"))
            if not found:
                return []
            self.journal = found[0]
        with open(self.journal, encoding="utf-8") as handle:
            handle.seek(self._offset)
            text = handle.read()
        complete = text[:text.rfind("\n") + 1]
        self._offset += len(complete.encode())
        return [json.loads(line) for line in complete.splitlines() if line.strip()]

    def interrupt(self) -> None:
        if not self.signalled and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.signalled = True

    def outcome(self, step: str) -> StepOutcome:
        code = self.proc.wait()
        self.log.close()
        self.new_records()
        closing = result(read_journal(self.journal)) if self.journal else None
        if closing is None:  # invalid, refused, or it died before its result
            log = (self.out / "output.log").read_text(errors="replace").strip().splitlines()
            code = code or 4
            return StepOutcome(step, self.entry.name, code, STATUS_OF_EXIT.get(code, "error"),
                               journal=str(self.journal) if self.journal else None,
                               note=log[-1] if log else f"exit {code}")
        verdicts = list(closing.get("verdicts") or [])
        failed = [v["item"] for v in verdicts if v.get("status") == "failed"]
        report = self.journal.with_name("report.html") if self.journal else None
        return StepOutcome(step, self.entry.name, code, str(closing.get("status")),
                           failed, str(self.journal),
                           str(report) if report and report.exists() else None, verdicts)


class GameDay:
    def __init__(self, loaded: LoadedPlan, options: DayOptions, watch: Watcher,
                 hold: Hold) -> None:
        self.loaded, self.plan, self.options = loaded, loaded.plan, options
        self.watch, self.hold = watch, hold
        self.seed = options.seed if options.seed is not None else secrets.randbelow(2**31)
        self.seeds = step_seeds(self.plan, self.seed)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.dir = options.out / f"{self.plan.metadata.name}-{stamp}-{secrets.token_hex(2)}"
        self.running: list[StepProcess] = []
        self.stopping: str | None = None

    def command(self, entry: PlanExperiment, out: Path) -> list[str]:
        return run_command(self.loaded.sources[entry.name], seed=self.seeds[entry.name],
                           out=out, history=self.options.history or self.options.out,
                           sets=self.loaded.sets[entry.name], report=self.options.report,
                           ignore_window=self.options.ignore_window)

    def run(self) -> DayResult:
        journal = JournalWriter(self.dir / "plan.jsonl")
        journal.write(Kind.DAY, plan=self.plan.metadata.name, source=str(self.loaded.path),
                      seed=self.seed, pid=os.getpid(), parameters=self.options.sets,
                      steps=[{"step": s.name, "experiments": [
                          {"name": e.name, "source": str(self.loaded.sources[e.name]),
                           "seed": self.seeds[e.name], "set": self.loaded.sets[e.name]}
                          for e in s.experiments()], "hold": s.hold} for s in self.plan.steps])
        previous = {sig: signal.signal(sig, self._on_signal)
                    for sig in (signal.SIGINT, signal.SIGTERM)}
        outcomes: list[StepOutcome] = []
        try:
            for step in self.plan.steps:
                if self.stopping:
                    break
                if step.hold is not None:
                    go = self.hold(step)
                    journal.write(Kind.HOLD, step=step.name, message=step.hold,
                                  answer="go on" if go else "stop")
                    if not go:
                        self.stopping = f"stopped at the hold before {step.name}"
                        break
                ended = self._step(step, journal)
                outcomes += ended
                why = self.stopping or stop_reason(ended, self.plan.stop_when)
                if why and step is not self.plan.steps[-1]:
                    self.stopping = self.stopping or why
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        codes = [o.exit_code for o in outcomes]
        if self.stopping and self.stopping.startswith(("interrupted", "stopped at the hold")):
            codes.append(130 if "SIGTERM" not in self.stopping else 143)
        code = day_exit(codes)
        status = _status(code)
        if self.stopping:
            journal.write(Kind.DAY_STOPPED, reason=self.stopping,
                          skipped=[s.name for s in self.plan.steps
                                   if s.name not in {o.step for o in outcomes}])
        journal.write(Kind.RESULT, status=status, exit_code=code, seed=self.seed,
                      steps=[vars(o) for o in outcomes], stopped=self.stopping)
        journal.close()
        return DayResult(code, status, self.dir, self.dir / "plan.jsonl", outcomes,
                         self.stopping)

    def _step(self, step: PlanStep, journal: JournalWriter) -> list[StepOutcome]:
        base = self.dir / "steps"
        for entry in step.experiments():
            out = base / entry.name
            journal.write(Kind.STEP_STARTED, step=step.name, name=entry.name,
                          experiment=str(self.loaded.sources[entry.name]),
                          seed=self.seeds[entry.name], set=self.loaded.sets[entry.name],
                          out=str(out))
            self.running.append(StepProcess(entry, self.loaded.sources[entry.name],
                                            self.command(entry, out), out))
        try:
            self._follow()
        finally:
            outcomes = [p.outcome(step.name) for p in self.running]
            self.running = []
        for outcome in outcomes:
            journal.write(Kind.STEP_ENDED, **vars(outcome))
            self.watch(outcome.name, None)
        return outcomes

    def _follow(self) -> None:
        """Show every record of the running experiments until all have ended."""
        interrupted_at: float | None = None
        while True:
            for process in self.running:
                for record in process.new_records():
                    self.watch(process.entry.name, record)
            if all(p.proc.poll() is not None for p in self.running):
                return
            if self.stopping:
                for process in self.running:
                    process.interrupt()
                interrupted_at = interrupted_at or time.monotonic()
                if time.monotonic() - interrupted_at > STOP_GRACE:
                    for process in self.running:  # its watchdog reverts what it leaves
                        if process.proc.poll() is None:
                            process.proc.terminate()
            time.sleep(POLL)

    def _on_signal(self, signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        self.stopping = self.stopping or f"interrupted by {name}"


def _status(code: int) -> str:
    return STATUS_OF_EXIT.get(code, "error")
