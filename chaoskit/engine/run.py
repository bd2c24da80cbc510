"""One run of an experiment: phases on one clock, guardrails, and the rollback guarantee.

validate -> preflight -> baseline -> inject -> recover -> verify, then always: revert
whatever is still applied, audit that nothing is left, close the journal. The lease (beaten
from a thread) and the detached watchdog revert from the journal if this process dies.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import secrets
import signal
import time
import traceback
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaoskit.engine import claims, preflight
from chaoskit.engine.faultline import FaultLine, plan_faults
from chaoskit.engine.guard import RunGuard
from chaoskit.engine.lifecycle import FaultLifecycle
from chaoskit.engine.sampling import Sampler, SamplingLoop, build_samplers
from chaoskit.engine.timeline import PlannedFault
from chaoskit.errors import ChaoskitError, PlatformError, PreflightError, SpecError
from chaoskit.journal import Intent, JournalWriter, Kind, Record, read_journal
from chaoskit.load.shapes import steady_load
from chaoskit.platforms import platform_for
from chaoskit.platforms.abilities import DistributedLoad, RunBinding
from chaoskit.probes.base import ProbeContext
from chaoskit.report import verdict as judging
from chaoskit.spec.load import ConstantShape, LoadSpec
from chaoskit.spec.models import Experiment
from chaoskit.spec.system import FlowSpec
from chaoskit.spec.units import seconds

SIGNAL_EXIT = {"SIGINT": 130, "SIGTERM": 143, "SIGHUP": 129}
CLUSTER_LOAD_LEAD = 5.0  # seconds a load Job's pods get to be scheduled before they all start
# Seconds of 100 ms load windows kept in memory for the load probes (more when one of them
# judges a longer window); the journal keeps one record per second of load for the whole run.
LOAD_HISTORY = 60.0


@dataclass
class RunOptions:
    seed: int | None = None
    out_dir: Path = Path("runs")
    watchdog: bool = True
    observer: Callable[[Record], None] | None = None  # the live display, the exporter
    parameters: dict[str, str] = field(default_factory=dict)  # the `--set` values it was given
    overrides: list[str] = field(default_factory=list)  # what the operator overrode, and why
    steady_rate: float | None = None  # of baseline and recover (default: the profile's opening
    #                                   rate; a capacity step keeps the declared one)


@dataclass
class RunResult:
    status: str
    exit_code: int
    run_dir: Path
    journal: Path
    verdicts: list[judging.ItemVerdict] = field(default_factory=list)
    message: str = ""
    preconditions: list[judging.Precondition] = field(default_factory=list)


class Aborted(Exception):
    """Raised inside the phase flow when a guardrail, a signal or a failure stops the run."""


def first_error(exc: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups of the inject phase."""
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


class Run:
    def __init__(self, experiment: Experiment, source: str, options: RunOptions) -> None:
        self.experiment = experiment
        self.source = source
        self.options = options
        self.seed = options.seed if options.seed is not None else secrets.randbelow(2**31)
        self.rng = random.Random(self.seed)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.run_id = f"{experiment.metadata.name}-{stamp}-{secrets.token_hex(2)}"
        self.run_dir = options.out_dir / self.run_id
        self.lease_path = self.run_dir / "lease"
        self.phase = "validate"
        self.abort_reason: dict[str, str] | None = None
        self._abort = asyncio.Event()
        self._signals: list[str] = []
        self.load_windows: deque[tuple[float, dict[str, Any]]] = deque()
        self.load_history = LOAD_HISTORY

    # -- abort -----------------------------------------------------------------------------
    def abort(self, reason: str, by: str) -> None:
        if self.abort_reason is None:
            self.abort_reason = {"reason": reason, "by": by}
            self.journal.write(Kind.ABORT, reason=reason, by=by, phase=self.phase)
        self.faultline.stop()  # no fault starts once the run is stopping
        self._abort.set()

    def _on_signal(self, name: str) -> None:
        self._signals.append(name)
        if len(self._signals) == 1:
            self.abort(f"interrupted by {name}", by="signal")
        else:
            self.journal.write(Kind.EVENT, message=f"{name} again: still reverting faults; "
                               "chaoskit exits once they are reverted and audited")

    def _on_trip(self, sampler: Sampler, value: float | None, why: str) -> None:
        condition = sampler.watch.guardrail.abort_when if sampler.watch else "?"
        self.journal.write(Kind.GUARDRAIL, name=sampler.name, value=value, condition=condition,
                           why=why)
        self.abort(f"guardrail {sampler.name}: {why}", by="guardrail")

    async def _until_abort(self, work: Awaitable[Any]) -> None:
        """Run a phase's work; stop it at once when the run is aborted."""
        task = asyncio.ensure_future(work)
        waiter = asyncio.create_task(self._abort.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            raise Aborted()
        task.result()
        if self._abort.is_set():
            raise Aborted()

    def _enter(self, phase: str) -> None:
        self.phase = phase
        self.journal.write(Kind.PHASE, phase=phase)

    # -- preflight -------------------------------------------------------------------------
    async def _preflight(self) -> None:
        problems, keys = await preflight.check(self.experiment, self.platform,
                                               self.faultline.planned, self.run_id,
                                               self.source, self.seed)
        if problems:
            raise PreflightError("preflight failed: " + "; ".join(problems),
                                 hint="fix the target or the experiment's scope; nothing was "
                                      "injected")
        declarations = await preflight.probe_problems(self.sampling.samplers, self.experiment,
                                                      self.source)
        if declarations:  # the system refuses what is declared: bad input, nothing injected
            raise SpecError(declarations)
        claims.claim(self.run_id, keys, os.getpid(), self.journal.path, self.lease_path)

    def _claim_keys(self, pf: PlannedFault, intent: Intent) -> set[str]:
        return {t.claim() for t in preflight.touches(pf, intent, self.platform, self.run_id)}

    def _admit(self, pf: PlannedFault, intent: Intent) -> list[str]:
        """At a fault's start: its targets as resolved now, in scope and not held elsewhere."""
        problems = preflight.scope_problems(self.experiment, pf, intent, self.platform,
                                            self.run_id)
        keys = self._claim_keys(pf, intent)
        problems += claims.conflicts(self.run_id, keys)
        if not problems:
            claims.claim(self.run_id, keys, os.getpid(), self.journal.path, self.lease_path)
        return problems

    # -- phases ----------------------------------------------------------------------------
    async def _inject(self) -> None:
        """Faults, load and the phase's clock together; if any of them fails, the fault line
        stops at once (no fault is applied after that) and the run goes to its rollback."""
        t0 = time.monotonic()
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self.faultline.run(t0))
                if self.experiment.load is not None:
                    group.create_task(self._drive_load())
                group.create_task(asyncio.sleep(self.experiment.inject_seconds()))
        except BaseExceptionGroup as failed:
            raise first_error(failed) from None
        finally:
            self.faultline.stop()

    async def _drive_load(self, spec: LoadSpec | None = None,
                          stop: asyncio.Event | None = None) -> None:
        from chaoskit.load.drive import drive  # imported late: heavy, and only when needed

        load = spec or self.experiment.load
        assert load is not None
        if spec is None and load.pods and isinstance(self.platform, DistributedLoad):
            await self._drive_from_cluster(self.platform, load, load.pods)
            return
        summary = await drive(load, self._entry_url(load.target), self._flows(), seed=self.seed,
                              stop=stop or self._abort, on_window=self._load_window,
                              ack_path=str(self.run_dir / "acknowledged.jsonl"),
                              keep_series=False, on_second=self._load_second,
                              ack_captures=self._ack_captures())
        totals = {k: v for k, v in dataclasses.asdict(summary).items() if k != "series"}
        self.journal.write(Kind.LOAD_SUMMARY, phase=self.phase, **totals)

    async def _drive_from_cluster(self, cluster: DistributedLoad, load: LoadSpec,
                                  pods: int) -> None:
        """The inject phase's load from an Indexed Job: each pod sends its share of the one
        schedule from its own machine; their merged report joins this journal."""
        from chaoskit.load.drive import plan_for
        from chaoskit.platforms.calls import blocking

        plan = plan_for(load, self._entry_url(load.target), self._flows(), seed=self.seed,
                        ack_path=None)
        start_at = time.time() + CLUSTER_LOAD_LEAD
        job = await blocking(lambda: cluster.start_load_job(plan, pods=pods, start_at=start_at))
        self.journal.write(Kind.LOAD_JOB, job=job, pods=pods, start_at=start_at)
        deadline = time.monotonic() + CLUSTER_LOAD_LEAD + plan.run_seconds + plan.timeout + 60
        try:
            while (time.monotonic() < deadline and
                   await blocking(cluster.load_reports_ready, job) < pods):
                await asyncio.sleep(0.5)
        except asyncio.CancelledError:
            await blocking(cluster.stop_load_job, job)
            raise
        merged = await blocking(cluster.collect_load, job, pods, 0.0)
        self.journal.write(Kind.LOAD_SUMMARY, phase=self.phase, distributed=True, **merged)

    async def _steady(self, seconds: float) -> None:
        """A steady phase (baseline, recover): the profile's opening rate, so that what is
        measured there is the system under normal traffic, not an idle one."""
        if self.experiment.load is None or seconds <= 0:
            await asyncio.sleep(seconds)
            return
        stop = asyncio.Event()
        steady = steady_load(self.experiment.load, seconds, self.seed)
        if self.options.steady_rate is not None:
            steady = steady.model_copy(update={"profile": [
                ConstantShape(shape="constant", rate=self.options.steady_rate)]})
        task = asyncio.create_task(self._drive_load(steady, stop))
        try:
            await asyncio.sleep(seconds)
        finally:
            stop.set()
            await task

    def _flows(self) -> dict[str, FlowSpec]:
        system = self.experiment.system
        return dict(system.flows) if system else {}

    def _ack_captures(self) -> list[str]:
        """The captured values the acknowledged probe looks requests up by (when its key is
        one): the only ones worth keeping with each acknowledgement."""
        system = self.experiment.system
        spec = system.acknowledged if system else None
        return [spec.key] if spec is not None and spec.key != "key" else []

    def _load_window(self, window: dict[str, Any]) -> None:
        """A 100 ms window, for the load probes: kept in memory for `load_history` seconds."""
        now = time.monotonic()
        self.load_windows.append((now, window))
        while self.load_windows and self.load_windows[0][0] < now - self.load_history:
            self.load_windows.popleft()

    def _load_second(self, span: dict[str, Any]) -> None:
        # One record per second of load keeps a day-long journal small; its own clock is load
        # time (`load_t`, the end of the second; `width` its length); the journal's `t` stays
        # run time for every record.
        span = dict(span)
        self.journal.write(Kind.LOAD, load_t=span.pop("t", None), **span)

    def _entry_url(self, target: str) -> str:
        url = preflight.entry_url(self.experiment, self.platform, target)
        if url is None:
            raise PlatformError(f"the {self.platform.name} platform has no entry for the load",
                                hint="set target.entry to the system's base URL")
        return url

    async def _recover(self) -> None:
        await self.faultline.revert_everything()
        await self._steady(self.experiment.phases.recover)
        for sampler in self.sampling.samplers:  # the 'after' judgement ends on a fresh look
            await self.sampling.sample_once(sampler)

    # -- the run ---------------------------------------------------------------------------
    def _open(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.journal = JournalWriter(self.run_dir / "journal.jsonl", self.options.observer)
        self.journal.write(Kind.HEADER, run_id=self.run_id,
                           experiment=self.experiment.metadata.name, source=self.source,
                           seed=self.seed, pid=os.getpid(),
                           spec=self.experiment.model_dump(mode="json", by_alias=True),
                           platform=self.platform.describe(), lease=str(self.lease_path),
                           parameters=self.options.parameters, overrides=self.options.overrides)

    async def execute(self) -> RunResult:
        preflight.check_caps(self.experiment, self.source, self.seed)  # bad input: no run at all
        self.platform = platform_for(self.experiment.target)
        if isinstance(self.platform, RunBinding):  # it marks what it changes with our id
            self.platform.bind_run(self.run_id)
        planned = await plan_faults(self.experiment, self.platform, self.rng, self.run_id)
        self._open()
        self.lifecycle = FaultLifecycle(self.platform, self.journal, self.run_id)
        self.faultline = FaultLine(planned, self.lifecycle, self._admit, self.experiment.system)
        context = ProbeContext(self.platform, str(self.run_dir),
                               str(self.run_dir / "acknowledged.jsonl"),
                               self.load_windows if self.experiment.load else None,
                               self.experiment.system)
        self.sampling = SamplingLoop(build_samplers(self.experiment, context), self.journal,
                                     lambda: self.phase, self._on_trip)
        self.load_history = max([LOAD_HISTORY, *(
            seconds(s.ref.options().get("window", 0) or 1) + 1.0
            for s in self.sampling.samplers if s.ref.type == "load")])
        return await self._guarded()

    def _event(self, message: str) -> None:
        self.journal.write(Kind.EVENT, message=message)

    async def _guarded(self) -> RunResult:
        loop = asyncio.get_running_loop()
        for name in SIGNAL_EXIT:
            loop.add_signal_handler(getattr(signal, name), self._on_signal, name)
        guard = RunGuard(self.journal.path, self.lease_path, watchdog=self.options.watchdog,
                         on_event=self._event)
        guard.start()
        error: BaseException | None = None
        try:
            await self._phases()
        except Aborted:
            pass
        except Exception as exc:  # noqa: BLE001 - every failure still ends in the rollback
            error = exc
            self.journal.write(Kind.ERROR, error=str(exc), traceback=traceback.format_exc())
            self.abort(f"error: {exc}", by="error")
        finished = False
        try:
            outcome = await self._finish(error)
            finished = True
            return outcome
        finally:
            await guard.stop(dismiss=finished and self.journal.degraded)
            for name in SIGNAL_EXIT:
                loop.remove_signal_handler(getattr(signal, name))

    async def _phases(self) -> None:
        self._enter("preflight")
        await self._until_abort(self._preflight())
        self.sampling.describe()
        self.sampling.start()
        self._enter("baseline")
        await self._until_abort(self._steady(self.experiment.phases.baseline))
        self._enter("inject")
        await self._until_abort(self._inject())
        self._enter("recover")
        await self._until_abort(self._recover())

    async def _finish(self, error: BaseException | None) -> RunResult:
        self._enter("rollback")
        await self.sampling.stop()
        reverted = await self.faultline.revert_everything()
        await self.lifecycle.stop_measuring()
        checked = await self.lifecycle.audit()
        claims.release(self.run_id)
        await self.sampling.close_probes()
        records = self._records()
        judged = await asyncio.to_thread(judging.judge, self.experiment, records)
        met = load_preconditions(self.experiment, records) + fault_preconditions(records)
        by = (self.abort_reason or {}).get("by")
        message = _message(error)
        if not reverted:
            message = message or "a fault could not be reverted; run `chaoskit recover`"
        if self.journal.degraded:  # the verdict would be judged on part of the record
            message = message or (
                f"the journal could not be written ({self.journal.failure}); the records from "
                f"then on are in {self.journal.fallback or 'stderr'}, so this run has no "
                "verdict: free space where --out points and run it again")
        status, code = judging.outcome(judged, by == "guardrail", message or None,
                                        checked.clean, met)
        if by == "signal" and not message and checked.clean:
            status, code = "interrupted", SIGNAL_EXIT[self._signals[0]]
        if isinstance(error, SpecError) and checked.clean:  # refused in preflight: bad input
            status, code = "invalid", judging.EXIT_INVALID
        self.journal.write(Kind.RESULT, status=status, exit_code=code, seed=self.seed,
                           verdicts=[v.as_dict() for v in judged], audit=checked.as_dict(),
                           abort=self.abort_reason, error=message or None,
                           preconditions=[p.as_dict() for p in met],
                           outstanding=[r["fault"] for r in self.lifecycle.outstanding()])
        self.journal.close()
        return RunResult(status, code, self.run_dir, self.journal.path, judged, message, met)

    def _records(self) -> list[Record]:
        self.journal.sync()
        return read_journal(self.journal.path)


def _message(error: BaseException | None) -> str:
    if error is None:
        return ""
    return error.render() if isinstance(error, ChaoskitError) else str(error)


def load_preconditions(experiment: Experiment, records: list[Record]
                       ) -> list[judging.Precondition]:
    """The load engine sent what the experiment declared (within its shortfall tolerance)."""
    load = experiment.load
    if load is None:
        return []
    found = []
    for summary in (r for r in records if r["kind"] == Kind.LOAD_SUMMARY
                    and r.get("phase") == "inject" and not r.get("distributed")):
        intended = int(summary.get("intended") or 0)
        short = int(summary.get("behind") or 0)
        ratio = short / intended if intended else 0.0
        met = ratio <= load.shortfall_tolerance
        detail = (f"chaoskit sent {intended - short:,} of {intended:,} arrivals on time "
                  f"({1 - ratio:.1%}); {short:,} were not: {summary.get('capped', 0):,} "
                  "dropped at its in-flight cap, the rest sent late because the load engine "
                  "was behind its schedule (its CPU saturated)")
        if not met:
            detail += (f"; above the tolerance of {load.shortfall_tolerance:.1%}, so the system "
                       "was not tested at the declared rate: lower the rate, add load workers, "
                       "or send from more machines (load.pods)")
        found.append(judging.Precondition("load-delivered", met, detail))
    return found


def fault_preconditions(records: list[Record]) -> list[judging.Precondition]:
    """Every applied fault was still in place when it was reverted: one that vanished earlier
    (its Toxiproxy restarted, someone removed it) did not test the system for its window."""
    applied = {r["fault"] for r in records if r["kind"] == Kind.APPLIED}
    gone = {r["fault"]: r["facts"]["vanished"] for r in records
            if r["kind"] == Kind.REVERTED and r["fault"] in applied
            and (r.get("facts") or {}).get("vanished")}
    if not applied:
        return []
    if not gone:
        return [judging.Precondition("faults-held", True,
                                     f"{len(applied)} fault(s) in place until reverted")]
    lost = "; ".join(f"{fault}: {', '.join(map(str, what))}" for fault, what in gone.items())
    return [judging.Precondition(
        "faults-held", False,
        f"faults were gone before their revert ({lost}): removed by something else (a "
        "restarted Toxiproxy forgets its toxics), so the system was not tested under them for "
        "their whole window")]


def run_experiment(experiment: Experiment, source: str, options: RunOptions) -> RunResult:
    """Run to the end, whatever happens; the exit code is in the result."""
    run = Run(experiment, source, options)
    return asyncio.run(run.execute())

