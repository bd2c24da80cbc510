"""One fault around a block of code (the pytest fixture `chaoskit_inject`), with the same
guarantee as `chaoskit run`: the intent journaled first, a lease and a watchdog that revert it
if the test process dies, and a revert plus a residue audit whatever the block does."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chaoskit.engine.guard import RunGuard
from chaoskit.engine.lifecycle import FaultLifecycle, build_driver, driver_class, plan_intent
from chaoskit.errors import PreflightError, ResidueError
from chaoskit.faults.base import PreflightChecks
from chaoskit.journal import Intent, JournalWriter, Kind
from chaoskit.platforms.abilities import Platform, missing


@contextlib.contextmanager
def inject_fault(fault_type: str, platform: Platform, *, name: str = "adhoc",
                 target: dict[str, Any] | None = None, seed: int = 0,
                 out_dir: Path = Path("runs"), watchdog: bool = True,
                 **magnitude: Any) -> Iterator[Intent]:
    """Apply one fault for the `with` block; always reverted and audited on the way out."""
    run_id = f"inject-{name}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    run_dir = out_dir / run_id
    journal = JournalWriter(run_dir / "journal.jsonl")
    lease_path = run_dir / "lease"
    journal.write(Kind.HEADER, run_id=run_id, experiment=f"inject {fault_type} {name}",
                  source="chaoskit_inject", seed=seed, pid=os.getpid(), spec={},
                  platform=platform.describe(), lease=str(lease_path))
    guard = RunGuard(journal.path, lease_path, watchdog=watchdog, loop_ticks=False)
    guard.start()
    lifecycle = FaultLifecycle(platform, journal, run_id, measure=False)
    try:
        intent = _plan(fault_type, platform, name, target or {}, seed, run_id, magnitude)
        asyncio.run(_preflight(platform, fault_type, run_id, intent, magnitude))
        asyncio.run(lifecycle.apply(name, fault_type, intent))
        yield intent
    finally:
        try:
            _finish(lifecycle, journal)
        finally:
            guard.stop_blocking()


def _plan(fault_type: str, platform: Platform, name: str, target: dict[str, Any], seed: int,
          run_id: str, magnitude: dict[str, Any]) -> Intent:
    config = driver_class(fault_type).Config.model_validate(magnitude)
    driver = build_driver(fault_type, platform, run_id)
    return plan_intent(driver, name, target, config, seed, run_id)


async def _preflight(platform: Platform, fault_type: str, run_id: str, intent: Intent,
                     magnitude: dict[str, Any]) -> None:
    driver = build_driver(fault_type, platform, run_id)
    problems = missing(platform, driver.needs(type(driver).Config.model_validate(magnitude)))
    if not problems and isinstance(driver, PreflightChecks):
        problems = await driver.preflight(intent)
    if problems:
        raise PreflightError("preflight failed: " + "; ".join(problems),
                             hint="nothing was injected")


def _finish(lifecycle: FaultLifecycle, journal: JournalWriter) -> None:
    async def rollback() -> tuple[bool, Any]:
        reverted = await lifecycle.revert_outstanding()
        return reverted, await lifecycle.audit()
    try:
        reverted, checked = asyncio.run(rollback())
        status = "held" if reverted and checked.clean else "error"
        journal.write(Kind.RESULT, status=status, exit_code=0 if status == "held" else 4,
                      verdicts=[], audit=checked.as_dict(),
                      outstanding=[r["fault"] for r in lifecycle.outstanding()])
    finally:
        journal.close()
    if not reverted or not checked.clean:
        raise ResidueError(f"fault left behind: not reverted {lifecycle.errors or '-'}, "
                           f"residue {checked.residue}, audit errors {checked.errors}",
                           hint=f"run `chaoskit recover {journal.path}`")
