"""One run of an experiment: phases on one clock, guardrails, and the rollback guarantee."""

from __future__ import annotations

import asyncio
import contextlib
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

from chaoskit.engine import lease, watchdog
from chaoskit.engine.faultline import FaultLine, plan_faults
from chaoskit.engine.journal import JournalWriter, Record, read_journal
from chaoskit.engine.preflight import scope_problems
from chaoskit.engine.rollback import audit, driver_for
from chaoskit.engine.sampling import Sampler, SamplingLoop, build_samplers
from chaoskit.errors import PreflightError
from chaoskit.faults.base import PreflightChecks
from chaoskit.load.shapes import steady_load
from chaoskit.platforms import platform_for
from chaoskit.probes.base import ProbeContext
from chaoskit.report import verdict as verdicts
from chaoskit.spec.load import LoadSpec
from chaoskit.spec.models import Experiment

SIGNAL_EXIT = {"SIGINT": 130, "SIGTERM": 143, "SIGHUP": 129}
CLUSTER_LOAD_LEAD = 5.0  # seconds a load Job's pods get to be scheduled before they all start


@dataclass
class RunOptions:
    seed: int | None = None
    out_dir: Path = Path("runs")
    watchdog: bool = True
    observer: Callable[[Record], None] | None = None  # the live display, the exporter


@dataclass
class RunResult:
    status: str
    exit_code: int
    run_dir: Path
    journal: Path
    verdicts: list[verdicts.ItemVerdict] = field(default_factory=list)
    message: str = ""


class Aborted(Exception):
    """Raised inside the phase flow when a guardrail, a signal or a failure stops the run."""


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
        self.phase = "validate"
        self.abort_reason: dict[str, str] | None = None
        self._abort = asyncio.Event()
        self._signals: list[str] = []

    # -- abort -----------------------------------------------------------------------------
    def abort(self, reason: str, by: str) -> None:
        if self.abort_reason is None:
            self.abort_reason = {"reason": reason, "by": by}
            self.journal.write("abort", reason=reason, by=by, phase=self.phase)
        self._abort.set()

    def _on_signal(self, name: str) -> None:
        self._signals.append(name)
        if len(self._signals) == 1:
            self.abort(f"interrupted by {name}", by="signal")
        else:
            self.journal.write("event", message=f"{name} again: still reverting faults; chaoskit "
                               "exits once they are reverted and audited")

    def _on_trip(self, sampler: Sampler, value: float) -> None:
        condition = sampler.watch.guardrail.abort_when if sampler.watch else "?"
        self.journal.write("guardrail", name=sampler.name, value=value, condition=condition)
        self.abort(f"guardrail {sampler.name}: {value:g} {condition}", by="guardrail")

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
        self.journal.write("phase", phase=phase)

    # -- phases ----------------------------------------------------------------------------
    async def _preflight(self) -> None:
        problems = list(await self.platform.preflight())
        problems += scope_problems(self.experiment, self.faultline.planned)
        for pf in self.faultline.planned:
            driver = driver_for(pf.type, self.platform)
            if isinstance(driver, PreflightChecks):
                problems += [f"{pf.name}: {p}" for p in await driver.preflight(pf.intent)]
        if problems:
            raise PreflightError("preflight failed: " + "; ".join(problems),
                                 hint="fix the target or the experiment's scope; nothing was "
                                      "injected")

    async def _inject(self) -> None:
        t0 = time.monotonic()
        work = [self.faultline.run(t0)]
        if self.experiment.load is not None:
            work.append(self._drive_load())
        work.append(asyncio.sleep(self.experiment.inject_seconds()))
        await asyncio.gather(*work)

    async def _drive_load(self, spec: LoadSpec | None = None,
                          stop: asyncio.Event | None = None) -> None:
        from chaoskit.load.engine import drive  # imported late: heavy, and only when needed

        load = spec or self.experiment.load
        assert load is not None
        if spec is None and load.pods and hasattr(self.platform, "start_load_job"):
            await self._drive_from_cluster(load, load.pods)
            return
        summary = await drive(load, self._entry_url(load.target), seed=self.seed,
                              stop=stop or self._abort, on_window=self._load_window,
                              ack_path=str(self.run_dir / "acknowledged.jsonl"))
        totals = {k: v for k, v in dataclasses.asdict(summary).items() if k != "series"}
        self.journal.write("load-summary", phase=self.phase, **totals)

    async def _drive_from_cluster(self, load: LoadSpec, pods: int) -> None:
        """The inject phase's load from an Indexed Job: each pod sends its share of the one
        schedule from its own machine; their merged report joins this journal."""
        from chaoskit.load.engine import plan_for

        plan = plan_for(load, self._entry_url(load.target), seed=self.seed, ack_path=None)
        start_at = time.time() + CLUSTER_LOAD_LEAD
        job = await asyncio.to_thread(self.platform.start_load_job, plan, pods=pods,
                                      start_at=start_at)
        self.journal.write("load-job", job=job, pods=pods, start_at=start_at)
        deadline = time.monotonic() + CLUSTER_LOAD_LEAD + plan.run_seconds + plan.timeout + 60
        try:
            while (time.monotonic() < deadline and
                   await asyncio.to_thread(self.platform.load_reports_ready, job) < pods):
                await asyncio.sleep(0.5)
        except asyncio.CancelledError:
            await asyncio.to_thread(self.platform.stop_load_job, job)
            raise
        merged = await asyncio.to_thread(self.platform.collect_load, job, pods, 0.0)
        self.journal.write("load-summary", phase=self.phase, distributed=True, **merged)

    async def _steady(self, seconds: float) -> None:
        """A steady phase (baseline, recover): the profile's opening rate, so that what is
        measured there is the system under normal traffic, not an idle one."""
        if self.experiment.load is None or seconds <= 0:
            await asyncio.sleep(seconds)
            return
        stop = asyncio.Event()
        steady = steady_load(self.experiment.load, seconds, self.seed)
        task = asyncio.create_task(self._drive_load(steady, stop))
        try:
            await asyncio.sleep(seconds)
        finally:
            stop.set()
            await task

    def _load_window(self, window: dict[str, Any]) -> None:
        # The window's own clock is load time; the journal's `t` stays run time for every record.
        window = dict(window)
        self.journal.write("load", load_t=window.pop("t", None), **window)
        self.load_windows.append((time.monotonic(), window))

    def _entry_url(self, target: str) -> str:
        if target.startswith(("http://", "https://")):
            return target
        if self.experiment.target.entry:
            return self.experiment.target.entry
        return str(self.platform.entry_url())

    async def _recover(self) -> None:
        await self.faultline.revert_everything()
        await self._steady(self.experiment.phases.recover)
        for sampler in self.sampling.samplers:  # the 'after' judgement ends on a fresh look
            await self.sampling.sample_once(sampler)

    # -- the run ---------------------------------------------------------------------------
    def _open(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.journal = JournalWriter(self.run_dir / "journal.jsonl", self.options.observer)
        self.journal.write("header", run_id=self.run_id, experiment=self.experiment.metadata.name,
                           source=self.source, seed=self.seed, pid=os.getpid(),
                           spec=self.experiment.model_dump(mode="json", by_alias=True),
                           platform=self.platform.describe(), lease=str(self.lease_path))

    async def execute(self) -> RunResult:
        self.platform = platform_for(self.experiment.target)
        bind_run = getattr(self.platform, "bind_run", None)
        if bind_run is not None:  # platforms that mark what they change name it by our run id
            bind_run(self.run_id)
        planned = plan_faults(self.experiment, self.platform, self.rng)
        self.lease_path = self.run_dir / "lease"
        self._open()
        self.faultline = FaultLine(planned, self.platform, self.journal,
                                   lambda faults: scope_problems(self.experiment, faults))
        self.load_windows: deque[tuple[float, dict[str, Any]]] = deque(maxlen=36000)
        context = ProbeContext(self.platform, str(self.run_dir),
                               str(self.run_dir / "acknowledged.jsonl"),
                               self.load_windows if self.experiment.load else None)
        self.sampling = SamplingLoop(build_samplers(self.experiment, context), self.journal,
                                     lambda: self.phase, self._on_trip)
        return await self._guarded()

    async def _guarded(self) -> RunResult:
        loop = asyncio.get_running_loop()
        for name in SIGNAL_EXIT:
            loop.add_signal_handler(getattr(signal, name), self._on_signal, name)
        stop_lease = asyncio.Event()
        lease.beat(self.lease_path)  # before the watchdog looks: no lease reads as a dead runner
        heart = asyncio.create_task(lease.keep_alive(self.lease_path, stop_lease))
        guard = watchdog.spawn(self.journal.path, self.lease_path, os.getpid()) \
            if self.options.watchdog else None
        error: BaseException | None = None
        try:
            await self._phases()
        except Aborted:
            pass
        except Exception as exc:  # noqa: BLE001 - every failure still ends in the rollback
            error = exc
            self.journal.write("error", error=str(exc), traceback=traceback.format_exc())
            self.abort(f"error: {exc}", by="error")
        try:
            return await self._finish(error)
        finally:
            stop_lease.set()
            await heart
            for name in SIGNAL_EXIT:
                loop.remove_signal_handler(getattr(signal, name))
            if guard is not None:
                with contextlib.suppress(Exception):
                    guard.wait(timeout=5)

    async def _phases(self) -> None:
        self._enter("preflight")
        await self._until_abort(self._preflight())
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
        await self.faultline.stop_measuring()
        checked = await audit(self.faultline.intents(), self.platform, self.journal)
        await self.sampling.close_probes()
        judged = verdicts.judge(self.experiment, self._records())
        by = (self.abort_reason or {}).get("by")
        message = str(error) if error else ""
        if not reverted:
            message = message or "a fault could not be reverted; run `chaoskit recover`"
        status, code = verdicts.outcome(judged, by == "guardrail", message or None, checked.clean)
        if by == "signal" and not message and checked.clean:
            status, code = "interrupted", SIGNAL_EXIT[self._signals[0]]
        self.journal.write("result", status=status, exit_code=code, seed=self.seed,
                           verdicts=[v.as_dict() for v in judged], audit=checked.as_dict(),
                           abort=self.abort_reason, error=message or None)
        self.journal.close()
        return RunResult(status, code, self.run_dir, self.journal.path, judged, message)

    def _records(self) -> list[Record]:
        self.journal.sync()
        return read_journal(self.journal.path)


def run_experiment(experiment: Experiment, source: str, options: RunOptions) -> RunResult:
    """Run to the end, whatever happens; the exit code is in the result."""
    run = Run(experiment, source, options)
    return asyncio.run(run.execute())
