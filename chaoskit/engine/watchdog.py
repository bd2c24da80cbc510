"""The detached watchdog: when the runner's lease lapses, fence the runner and revert its faults."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from chaoskit.engine import lease
from chaoskit.engine.journal import (
    JournalWriter,
    is_closed,
    outstanding_intents,
    read_journal,
    result,
)
from chaoskit.engine.rollback import audit, revert_all
from chaoskit.platforms import platform_from_description

POLL = 0.2  # seconds between looks at the lease


def spawn(journal: Path, lease_path: Path, runner_pid: int) -> subprocess.Popen[bytes]:
    """Start the watchdog in its own session, so Ctrl-C or a killed process group spares it."""
    log = open(journal.with_name("watchdog.log"), "ab")  # noqa: SIM115 - handed to the child
    command = [sys.executable, "-m", "chaoskit.engine.watchdog", "--journal", str(journal),
               "--lease", str(lease_path), "--runner-pid", str(runner_pid)]
    return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                            start_new_session=True, close_fds=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (killed, not yet reaped by its parent) is not a live runner.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return True


def _runner_gone(lease_path: Path, runner_pid: int) -> bool:
    return lease.age(lease_path) > lease.LEASE_TTL or not _alive(runner_pid)


async def recover_journal(journal_path: Path, reason: str) -> bool:
    """Revert everything the journal shows applied and not reverted, audit, and close it."""
    records = read_journal(journal_path)
    if result(records) is not None:
        return True
    platform = platform_from_description(records[0]["platform"])
    writer = JournalWriter(journal_path)
    try:
        writer.write("abort", reason=reason, by="recovery")
        intents = outstanding_intents(records)
        reverted = await revert_all(intents, platform, writer)
        all_intents = [r for r in records if r["kind"] == "intent"]
        checked = await audit(all_intents, platform, writer)
        writer.write("result", status="crashed", exit_code=4, recovered_by=reason,
                     reverted=reverted, audit=checked.as_dict(), verdicts=[])
        return reverted and checked.clean
    finally:
        writer.close()


def watch(journal_path: Path, lease_path: Path, runner_pid: int) -> int:
    """Wait until the run closes its journal (exit) or its lease lapses (recover)."""
    while True:
        if is_closed(journal_path):
            return 0
        if _runner_gone(lease_path, runner_pid):
            break
        time.sleep(POLL)
    if _alive(runner_pid):  # hung, not dead: fence it so it cannot re-apply anything
        os.kill(runner_pid, signal.SIGKILL)
    ok = asyncio.run(recover_journal(journal_path, "watchdog: runner lease lapsed"))
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chaoskit-watchdog", description=__doc__)
    parser.add_argument("--journal", type=Path, required=True)
    parser.add_argument("--lease", type=Path, required=True)
    parser.add_argument("--runner-pid", type=int, required=True)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # only the lease decides
    return watch(args.journal, args.lease, args.runner_pid)


if __name__ == "__main__":
    sys.exit(main())
