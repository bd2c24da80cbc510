"""Reverting what a run left applied, from its journal alone: the watchdog and `recover`.

A journal is recovered when its run is gone (or `--force`) and either it never closed, or it
closed with faults not reverted or a dirty residue audit. Every fault is reverted and audited
on its own; the report says plainly what was reverted, what could not be, and what remains.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaoskit.engine import claims, lease
from chaoskit.engine.lifecycle import FaultLifecycle
from chaoskit.errors import ChaoskitError, JournalError
from chaoskit.journal import (
    JournalWriter,
    Kind,
    Record,
    header,
    intents,
    needs_recovery,
    outstanding_intents,
    read_journal,
    result,
)
from chaoskit.platforms import platform_from_description


class RunAlive(JournalError):
    """The run that owns the journal is alive: it reverts its own faults."""

    code = "CK710"


@dataclass
class RecoveryReport:
    journal: Path
    run_id: str
    needed: bool = False  # False: nothing was outstanding and the last audit was clean
    reverted: list[str] = field(default_factory=list)
    not_reverted: dict[str, str] = field(default_factory=dict)  # fault -> the last error
    residue: dict[str, list[str]] = field(default_factory=dict)
    audit_errors: dict[str, str] = field(default_factory=dict)
    problem: str = ""  # why nothing could be done at all (e.g. the platform is unknown)

    @property
    def clean(self) -> bool:
        return not (self.not_reverted or any(self.residue.values()) or self.audit_errors
                    or self.problem)

    def lines(self) -> list[str]:
        if not self.needed:
            return [f"{self.journal}: nothing to recover (every fault was reverted and the "
                    "residue audit was clean)"]
        out = [f"{self.journal}: recovered run {self.run_id}"]
        out += [f"  reverted: {name}" for name in self.reverted]
        out += [f"  COULD NOT REVERT {name}: {why}" for name, why in self.not_reverted.items()]
        out += [f"  STILL IN PLACE ({name}): {item}" for name, items in self.residue.items()
                for item in items]
        out += [f"  audit of {name} failed: {why}" for name, why in self.audit_errors.items()]
        if self.problem:
            out.append(f"  NOTHING COULD BE REVERTED: {self.problem}")
        if not self.clean:
            out.append("  fix what is named above by hand, or fix its cause and run "
                       "`chaoskit recover` again")
        return out


def _needs_recovery(records: list[Record]) -> bool:
    return bool(outstanding_intents(records)) or needs_recovery(result(records))


def check_not_alive(records: list[Record], path: Path) -> None:
    head = header(records)
    lease_path = Path(head.get("lease") or path.with_name("lease"))
    pid = int(head.get("pid") or 0)
    if pid and result(records) is None and lease.alive(lease_path, pid):
        raise RunAlive(f"run {head.get('run_id')} is alive (pid {pid}) and reverts its own "
                       "faults; recovering it now could undo them under its feet",
                       hint="stop it with Ctrl-C or SIGTERM (it reverts, then exits), or pass "
                            "--force if you are sure it is hung")


async def recover_journal(path: Path, reason: str, *, force: bool = False) -> RecoveryReport:
    """Revert and audit what the journal shows left behind; close it with a result."""
    records = read_journal(path)
    if not force:
        check_not_alive(records, path)
    report = RecoveryReport(path, str(header(records).get("run_id", "?")))
    if not _needs_recovery(records):
        return report
    report.needed = True
    writer = JournalWriter(path, required=False)
    try:
        await _recover(records, writer, reason, report)
    finally:
        writer.close()
        claims.release(report.run_id)
    return report


async def _recover(records: list[Record], writer: JournalWriter, reason: str,
                   report: RecoveryReport) -> None:
    head, closing = header(records), result(records)
    writer.write(Kind.ABORT, reason=reason, by="recovery")
    try:
        platform = platform_from_description(head["platform"])
    except ChaoskitError as exc:
        report.problem = exc.render()
        report.not_reverted = {r["fault"]: report.problem for r in outstanding_intents(records)}
        _close(writer, closing, reason, report)
        return
    lifecycle = FaultLifecycle(platform, writer, report.run_id)
    lifecycle.adopt(records)
    for record in lifecycle.outstanding():
        if await lifecycle.revert(record):
            report.reverted.append(record["fault"])
        else:
            report.not_reverted[record["fault"]] = lifecycle.errors.get(
                record["fault"], "see the journal's revert-failed records")
    audit = await lifecycle.audit(intents(records))
    report.residue = {k: v for k, v in audit.residue.items() if v}
    report.audit_errors = dict(audit.errors)
    _close(writer, closing, reason, report)


def _close(writer: JournalWriter, closing: Record | None, reason: str,
           report: RecoveryReport) -> None:
    audit: dict[str, Any] = {"clean": report.clean, "residue": report.residue,
                             "errors": report.audit_errors}
    if closing is None:  # the run never finished: it crashed
        writer.write(Kind.RESULT, status="crashed", exit_code=4, recovered_by=reason,
                     reverted=not report.not_reverted, audit=audit, verdicts=[],
                     outstanding=sorted(report.not_reverted), error=report.problem or None)
        return
    # the run had finished but left faults or residue: its verdicts stand, the audit is new
    writer.write(Kind.RESULT, **{**{k: v for k, v in closing.items()
                                    if k not in ("kind", "t", "ts")},
                                 "recovered_by": reason, "audit": audit,
                                 "outstanding": sorted(report.not_reverted)})
