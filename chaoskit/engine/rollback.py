"""Revert what a journal shows applied, and audit that nothing is left (run, recover, watchdog)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from chaoskit import registry
from chaoskit.engine.journal import JournalWriter, Record
from chaoskit.errors import FaultError

REVERT_ATTEMPTS = 3


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


def driver_for(fault_type: str, platform: Any) -> Any:
    cls = registry.lookup(registry.FAULTS, fault_type)
    if cls is None:
        raise FaultError(f"no driver for fault type '{fault_type}' to revert it",
                         hint="install the plug-in that provides it, then `chaoskit recover`")
    return cls(platform)


async def revert_one(intent_record: Record, platform: Any, journal: JournalWriter | None) -> bool:
    """Revert one fault, retrying; every attempt's outcome is journaled. True when reverted."""
    name, intent = intent_record["fault"], intent_record["intent"]
    driver = driver_for(intent_record["type"], platform)
    for attempt in range(1, REVERT_ATTEMPTS + 1):
        try:
            facts = await driver.revert(intent)
        except Exception as exc:  # noqa: BLE001 - a failing revert must not stop the others
            if journal:
                journal.write("revert-failed", fault=name, attempt=attempt, error=repr(exc))
            await asyncio.sleep(0.1 * attempt)
            continue
        if journal:
            journal.write("reverted", fault=name, facts=facts or {})
        return True
    return False


async def revert_all(intents: list[Record], platform: Any, journal: JournalWriter | None) -> bool:
    """Revert every outstanding intent, newest first; all are attempted even if one fails."""
    results = [await revert_one(record, platform, journal) for record in intents]
    return all(results)


async def audit(intents: list[Record], platform: Any, journal: JournalWriter | None) -> AuditResult:
    """Ask each driver to prove its fault is gone."""
    result = AuditResult()
    for record in intents:
        name = record["fault"]
        try:
            driver = driver_for(record["type"], platform)
            result.residue[name] = list(await driver.verify_reverted(record["intent"]))
        except Exception as exc:  # noqa: BLE001 - an audit that cannot run is itself a finding
            result.errors[name] = repr(exc)
    if journal:
        journal.write("audit", **result.as_dict())
    return result
