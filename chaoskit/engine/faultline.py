"""Faults on the run's timeline: each one applied at its start and reverted at its end.

A fault is resolved again when it starts (a role means the system at that moment), checked
against the scope and claimed for the run, then applied through the one fault lifecycle. The
first fault that fails to apply stops the line: no later fault is applied, and the run goes
to its rollback. `stop()` does the same for any other reason (an abort, an error elsewhere in
the inject phase); an apply already under way finishes and is then reverted with the rest.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

from chaoskit.engine.lifecycle import FaultLifecycle, build_driver, driver_class, plan_intent
from chaoskit.engine.roles import declared_target
from chaoskit.engine.timeline import PlannedFault, fault_window
from chaoskit.errors import FaultError
from chaoskit.journal import Intent, Kind
from chaoskit.platforms.abilities import Platform
from chaoskit.spec.models import Experiment
from chaoskit.spec.system import SystemSpec

INJECT_SETTLE_TIMEOUT = 95.0  # how long the final rollback waits for an apply still running

# (planned fault, its intent as of now) -> problems that forbid applying it (scope, claims)
Admission = Callable[[PlannedFault, Intent], list[str]]


async def plan_faults(experiment: Experiment, platform: Platform, rng: random.Random,
                      run: str) -> list[PlannedFault]:
    """Resolve every fault's driver, magnitude and target (a declared role: where it is now);
    nothing touches the system."""
    planned = []
    for fault in experiment.faults:
        cls = driver_class(fault.type)
        config = cls.Config.model_validate(fault.options())
        seed = rng.getrandbits(63)  # one per fault: the same choices when it is planned again
        driver = build_driver(fault.type, platform, run)
        start, end = fault_window(experiment, fault.start, fault.duration)
        try:
            target = await declared_target(fault.target, experiment.system, platform)
        except FaultError as exc:
            if start <= 0 or "role" not in fault.target:
                raise
            # "the worker holding the most leases" may hold none before the load starts: a
            # fault that starts later looks for its role then (and fails the line if absent)
            planned.append(PlannedFault(fault.name, fault.type, start, end,
                                        {"fault": fault.name, "role": fault.target["role"]},
                                        fault.target, config, seed, waiting=exc.message))
            continue
        intent = await asyncio.to_thread(plan_intent, driver, fault.name, target, config, seed,
                                         run)
        planned.append(PlannedFault(fault.name, fault.type, start, end, intent,
                                    fault.target, config, seed))
    return planned


class FaultLine:
    """Applies and reverts the planned faults on the run clock, through the lifecycle."""

    def __init__(self, planned: list[PlannedFault], lifecycle: FaultLifecycle,
                 admit: Admission = lambda _pf, _intent: [],
                 system: SystemSpec | None = None) -> None:
        self.planned = planned
        self.system = system
        self.lifecycle = lifecycle
        self.admit = admit
        self.failure: BaseException | None = None
        self._stop = asyncio.Event()
        self._applying: set[asyncio.Task[bool]] = set()

    def stop(self) -> None:
        """No fault starts after this; applies under way finish (and are reverted later)."""
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    async def run(self, t0: float) -> None:
        """Every fault's window, concurrently; raises the first failure to apply."""
        await asyncio.gather(*(self._window(pf, t0) for pf in self.planned))
        if self.failure is not None:
            raise self.failure

    async def _until(self, at: float) -> bool:
        """Sleep until monotonic `at`; False when the line was stopped first."""
        try:
            await asyncio.wait_for(self._stop.wait(), max(0.0, at - time.monotonic()))
        except TimeoutError:
            return not self._stop.is_set()
        return False

    async def _window(self, pf: PlannedFault, t0: float) -> None:
        if not await self._until(t0 + pf.start):
            return
        task = asyncio.create_task(self._apply(pf))
        self._applying.add(task)
        if not await asyncio.shield(task):  # a cancelled run waits for the apply, reverts it
            return
        if await self._until(t0 + pf.end):
            await self.lifecycle.revert_named(pf.name)

    async def _apply(self, pf: PlannedFault) -> bool:
        try:
            intent = await self._resolve(pf)
            await self.lifecycle.apply(pf.name, pf.type, intent)
        except Exception as exc:  # noqa: BLE001 - the first failure stops the line
            self.failure = self.failure or exc
            self.stop()
            return False
        return True

    async def _resolve(self, pf: PlannedFault) -> Intent:
        """The intent as of now: targets resolved against the system at the fault's start,
        still inside the experiment's scope and not held by another run."""
        intent = pf.intent
        if pf.config is not None:
            driver = self.lifecycle.driver(pf.type)
            target = await declared_target(pf.target, self.system, self.lifecycle.platform)
            intent = await asyncio.to_thread(plan_intent, driver, pf.name, target,
                                             pf.config, pf.seed, self.lifecycle.run)
        problems = self.admit(pf, intent)
        if problems:
            self.lifecycle.journal.write(Kind.INJECT_FAILED, fault=pf.name,
                                         error="; ".join(problems))
            raise FaultError(f"fault {pf.name} was not applied: " + "; ".join(problems),
                             hint="widen target.scope, aim inside it, or wait for the run "
                                  "that holds the target")
        return intent

    async def settle(self) -> None:
        """Wait for applies in flight (blocking clients cannot be cancelled mid-call)."""
        pending = [t for t in self._applying if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=INJECT_SETTLE_TIMEOUT)

    async def revert_everything(self) -> bool:
        self.stop()
        await self.settle()
        return await self.lifecycle.revert_outstanding()
