"""The one fault lifecycle: apply (intent journaled first), revert (bounded, retried), audit.

The run's fault timeline, `chaoskit recover`, the watchdog and the pytest fixture all go
through this class, so a fault is applied, reverted and audited the same way on every path.
Every driver call is bounded in time; every fault is reverted and audited on its own, so one
that fails (or whose driver is not installed) never stops the others.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from chaoskit import registry
from chaoskit.errors import ChaoskitError, FaultError
from chaoskit.faults.base import FaultConfig, FaultDriver, MeasuresEffect
from chaoskit.journal import Intent, JournalWriter, Kind, Record, outstanding_intents
from chaoskit.platforms.abilities import Platform

REVERT_ATTEMPTS = 3
INJECT_TIMEOUT = 90.0  # a fault that takes longer to apply has failed (it is then reverted)
REVERT_TIMEOUT = 90.0  # per attempt; a driver may ask for more in its intent (`revert_timeout`)
AUDIT_TIMEOUT = 30.0


@dataclass
class AuditResult:
    """Residue per fault after the final rollback; clean when every list is empty."""

    residue: dict[str, list[str]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not any(self.residue.values()) and not self.errors

    def as_dict(self) -> dict[str, Any]:
        return {"clean": self.clean, "residue": self.residue, "errors": self.errors}


def driver_class(fault_type: str) -> Any:
    """The registered driver class of a fault type (FaultError naming the known ones)."""
    return registry.get(registry.FAULTS, fault_type)


def build_driver(fault_type: str, platform: Platform, run: str) -> FaultDriver:
    driver: FaultDriver = driver_class(fault_type)(platform, run)
    return driver


def plan_intent(driver: FaultDriver, name: str, target: dict[str, Any], config: FaultConfig,
                seed: int, run: str) -> Intent:
    """The driver's plan with the run's owner written in, so any later reader knows it."""
    intent = driver.plan(name, target, config, random.Random(seed))
    intent.setdefault("fault", name)
    intent.setdefault("owner", run)
    return intent


async def bounded(work: Coroutine[Any, Any, Any], seconds: float, what: str) -> Any:
    try:
        return await asyncio.wait_for(work, seconds)
    except TimeoutError:
        raise FaultError(f"{what} did not finish within {seconds:g}s",
                         hint="the target may be hung; `chaoskit recover` retries the revert"
                         ) from None


class FaultLifecycle:
    """Applies, reverts and audits faults of one run on one platform, journaling every step."""

    def __init__(self, platform: Platform, journal: JournalWriter, run: str, *,
                 measure: bool = True) -> None:
        self.platform = platform
        self.measure = measure
        self.journal = journal
        self.run = run
        self.records: list[Record] = []  # intents and reverts, in order: what is outstanding
        self.errors: dict[str, str] = {}  # fault -> why its last revert attempt failed
        self._measuring: set[asyncio.Task[None]] = set()

    def driver(self, fault_type: str) -> FaultDriver:
        return build_driver(fault_type, self.platform, self.run)

    # -- apply ------------------------------------------------------------------------------
    async def apply(self, name: str, fault_type: str, intent: Intent) -> dict[str, Any]:
        """Journal the intent (fsynced; if that fails nothing is applied), then inject."""
        driver = self.driver(fault_type)
        self.records.append(self.journal.write(Kind.INTENT, fault=name, type=fault_type,
                                               intent=intent))
        try:
            facts = await bounded(driver.inject(intent), INJECT_TIMEOUT, f"injecting {name}")
        except Exception as exc:
            self.journal.write(Kind.INJECT_FAILED, fault=name, error=_describe(exc))
            raise
        self.journal.write(Kind.APPLIED, fault=name, type=fault_type, facts=facts or {})
        if self.measure and isinstance(driver, MeasuresEffect):
            self._measure(driver, name, intent)
        return dict(facts or {})

    def _measure(self, driver: MeasuresEffect, name: str, intent: Intent) -> None:
        async def measure() -> None:
            try:
                effect = await driver.measure_effect(intent)
            except Exception as exc:  # noqa: BLE001 - a failed measurement is journaled
                effect = {"error": repr(exc)}
            self.journal.write(Kind.EFFECT, fault=name, effect=effect)
        task = asyncio.create_task(measure())
        self._measuring.add(task)
        task.add_done_callback(self._measuring.discard)

    async def stop_measuring(self) -> None:
        """End measurements still watching (e.g. a recovery) before the journal closes."""
        for task in list(self._measuring):
            task.cancel()
        await asyncio.gather(*self._measuring, return_exceptions=True)

    # -- revert -----------------------------------------------------------------------------
    def outstanding(self) -> list[Record]:
        return outstanding_intents(self.records)

    def intents(self) -> list[Record]:
        return [r for r in self.records if r["kind"] == Kind.INTENT]

    def adopt(self, records: list[Record]) -> None:
        """Take over the intents and reverts of a journal (recovery in another process)."""
        self.records += [r for r in records if r["kind"] in (Kind.INTENT, Kind.REVERTED)]

    async def revert(self, record: Record) -> bool:
        """Revert one fault, retrying; each attempt journaled. True once it is reverted."""
        name, intent = record["fault"], record["intent"]
        try:
            driver = self.driver(record["type"])
        except ChaoskitError as exc:
            self.errors[name] = exc.render()
            self.journal.write(Kind.REVERT_FAILED, fault=name, attempt=0, error=exc.render())
            return False
        limit = max(REVERT_TIMEOUT, float(intent.get("revert_timeout") or 0))
        for attempt in range(1, REVERT_ATTEMPTS + 1):
            try:
                facts = await bounded(driver.revert(intent), limit, f"reverting {name}")
            except Exception as exc:  # noqa: BLE001 - a failing revert must not stop others
                self.errors[name] = _describe(exc)
                self.journal.write(Kind.REVERT_FAILED, fault=name, attempt=attempt,
                                   error=self.errors[name])
                await asyncio.sleep(0.1 * attempt)
                continue
            self.records.append(self.journal.write(Kind.REVERTED, fault=name,
                                                   facts=facts or {}))
            return True
        return False

    async def revert_named(self, name: str) -> bool:
        return all([await self.revert(r) for r in self.outstanding() if r["fault"] == name])

    async def revert_outstanding(self) -> bool:
        """Every fault not yet reverted, newest first; each one attempted whatever the others
        do (a list, not a generator)."""
        return all([await self.revert(record) for record in self.outstanding()])

    # -- audit ------------------------------------------------------------------------------
    async def audit(self, records: list[Record] | None = None) -> AuditResult:
        """Ask each driver to prove its fault is gone; an audit that cannot run is a finding."""
        result = AuditResult()
        for record in records if records is not None else self.intents():
            name = record["fault"]
            try:
                driver = self.driver(record["type"])
                residue = await bounded(driver.verify_reverted(record["intent"]), AUDIT_TIMEOUT,
                                        f"auditing {name}")
                result.residue[name] = list(residue)
            except Exception as exc:  # noqa: BLE001 - each fault audited on its own
                result.errors[name] = _describe(exc)
        self.journal.write(Kind.AUDIT, **result.as_dict())
        return result


def _describe(exc: BaseException) -> str:
    return exc.render() if isinstance(exc, ChaoskitError) else repr(exc)

