"""The detached watchdog: when the runner is gone or hung, fence it and revert its faults."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from chaoskit.engine import lease
from chaoskit.engine.recovery import recover_journal
from chaoskit.journal import is_closed

POLL = 0.2  # seconds between looks at the lease


def watch(journal_path: Path, lease_path: Path, runner_pid: int) -> int:
    """Wait until the run closes its journal (exit) or its lease lapses (recover)."""
    while True:
        if is_closed(journal_path):
            return 0
        why = lease.why_gone(lease_path, runner_pid)
        if why is not None:
            break
        time.sleep(POLL)
    print(f"watchdog: {why}; reverting the run's faults", flush=True)
    if lease.pid_alive(runner_pid):  # hung, not dead: fence it so it cannot re-apply anything
        os.kill(runner_pid, signal.SIGKILL)
    report = asyncio.run(recover_journal(journal_path, f"watchdog: {why}", force=True))
    for line in report.lines():
        print(line, flush=True)
    return 0 if report.clean else 1


class _Unfailing:
    """The watchdog's log (next to the journal): when its disk is full, what cannot be written
    is dropped; the watchdog goes on to revert."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError:
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError:
            return

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chaoskit-watchdog", description=__doc__)
    parser.add_argument("--journal", type=Path, required=True)
    parser.add_argument("--lease", type=Path, required=True)
    parser.add_argument("--runner-pid", type=int, required=True)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # only the lease decides
    sys.stdout, sys.stderr = _Unfailing(sys.stdout), _Unfailing(sys.stderr)  # type: ignore[assignment]
    return watch(args.journal, args.lease, args.runner_pid)


if __name__ == "__main__":
    sys.exit(main())
