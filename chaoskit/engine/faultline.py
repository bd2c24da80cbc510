"""Faults on the timeline: intent journaled (fsynced) first, then applied, reverted at its end."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

from chaoskit import registry
from chaoskit.engine.journal import JournalWriter, Record, outstanding_intents
from chaoskit.engine.rollback import driver_for, revert_one
from chaoskit.engine.timeline import PlannedFault, fault_window
from chaoskit.errors import FaultError
from chaoskit.faults.base import Intent, MeasuresEffect
from chaoskit.spec.models import Experiment

INJECT_SETTLE_TIMEOUT = 30.0  # how long the final rollback waits for an inject still running


def plan_faults(experiment: Experiment, platform: Any, rng: random.Random) -> list[PlannedFault]:
    """Resolve every fault's driver, magnitude and target; nothing touches the system."""
    planned = []
    for fault in experiment.faults:
        cls = registry.lookup(registry.FAULTS, fault.type)
        if cls is None:
            raise FaultError(f"unknown fault type '{fault.type}'",
                             hint=registry.suggest(registry.FAULTS, fault.type))
        config = cls.Config.model_validate(fault.options())
        seed = rng.getrandbits(63)  # one per fault: the same choices when it is planned again
        intent = cls(platform).plan(fault.name, fault.target, config, random.Random(seed))
        start, end = fault_window(experiment, fault.start, fault.duration)
        planned.append(PlannedFault(fault.name, fault.type, start, end, intent,
                                    fault.target, config, seed))
    return planned


class FaultLine:
    """Applies and reverts the planned faults on the run clock; the journal is its memory."""

    def __init__(self, planned: list[PlannedFault], platform: Any, journal: JournalWriter,
                 scope_check: Callable[[list[PlannedFault]], list[str]] = lambda _: []) -> None:
        self.planned = planned
        self.scope_check = scope_check
        self.platform = platform
        self.journal = journal
        self.records: list[Record] = []  # intents and reverts, for the final rollback
        self.failure: BaseException | None = None
        self._applying: set[asyncio.Task[None]] = set()
        self._measuring: set[asyncio.Task[None]] = set()  # held, so none is collected mid-run

    def _record(self, kind: str, **fields: Any) -> None:
        self.records.append(self.journal.write(kind, **fields))

    async def run(self, t0: float) -> None:
        """Every fault's lifecycle, concurrently; raises the first driver failure."""
        await asyncio.gather(*(self._lifecycle(pf, t0) for pf in self.planned))
        if self.failure is not None:
            raise self.failure

    async def _lifecycle(self, pf: PlannedFault, t0: float) -> None:
        await asyncio.sleep(max(0.0, t0 + pf.start - time.monotonic()))
        task = asyncio.create_task(self._apply(pf))
        self._applying.add(task)
        await asyncio.shield(task)  # a cancelled run waits for the apply, then reverts it
        if self.failure is not None:
            return
        await asyncio.sleep(max(0.0, t0 + pf.end - time.monotonic()))
        await self.revert(pf.name)

    async def _apply(self, pf: PlannedFault) -> None:
        driver = driver_for(pf.type, self.platform)
        try:
            intent = await self._resolve(driver, pf)
        except Exception as exc:  # noqa: BLE001 - nothing applied yet: abort, nothing to revert
            self.journal.write("inject-failed", fault=pf.name, error=repr(exc))
            self.failure = self.failure or exc
            return
        self._record("intent", fault=pf.name, type=pf.type, intent=intent)
        try:
            facts = await driver.inject(intent)
        except Exception as exc:  # noqa: BLE001 - any driver failure aborts, with a revert
            self.journal.write("inject-failed", fault=pf.name, error=repr(exc))
            self.failure = self.failure or exc
            return
        self.journal.write("applied", fault=pf.name, type=pf.type, facts=facts or {})
        if isinstance(driver, MeasuresEffect):
            task = asyncio.create_task(self._measure(driver, pf.name, intent))
            self._measuring.add(task)
            task.add_done_callback(self._measuring.discard)

    async def _resolve(self, driver: Any, pf: PlannedFault) -> dict[str, Any]:
        """The intent as of now: targets resolved against the system at the fault's start,
        still inside the experiment's scope (preflight checked the plan; this checks the act)."""
        if pf.config is None:
            return pf.intent
        intent = await asyncio.to_thread(driver.plan, pf.name, pf.target, pf.config,
                                         random.Random(pf.seed))
        now = PlannedFault(pf.name, pf.type, pf.start, pf.end, intent)
        problems = self.scope_check([now])
        if problems:
            raise FaultError("; ".join(problems), hint="widen target.scope or aim inside it")
        return intent

    async def _measure(self, driver: MeasuresEffect, name: str, intent: Intent) -> None:
        try:
            effect = await driver.measure_effect(intent)
        except Exception as exc:  # noqa: BLE001 - a failed measurement is journaled, not fatal
            effect = {"error": repr(exc)}
        self.journal.write("effect", fault=name, effect=effect)

    async def _revert(self, record: Record) -> bool:
        reverted = await revert_one(record, self.platform, self.journal)
        if reverted:
            self.records.append({"kind": "reverted", "fault": record["fault"]})
        return reverted

    async def revert(self, name: str) -> None:
        for record in outstanding_intents(self.records):
            if record["fault"] == name:
                await self._revert(record)

    async def settle(self) -> None:
        """Wait for applies in flight (blocking clients cannot be cancelled mid-call)."""
        pending = [t for t in self._applying if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=INJECT_SETTLE_TIMEOUT)

    async def revert_everything(self) -> bool:
        await self.settle()
        # A list, not a generator: every fault is attempted even after one fails to revert.
        return all([await self._revert(record) for record in outstanding_intents(self.records)])

    async def stop_measuring(self) -> None:
        """End measurements still watching (e.g. a recovery) before the journal closes."""
        for task in list(self._measuring):
            task.cancel()
        await asyncio.gather(*self._measuring, return_exceptions=True)

    def intents(self) -> list[Record]:
        return [r for r in self.records if r["kind"] == "intent"]
