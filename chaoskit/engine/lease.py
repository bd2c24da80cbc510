"""The runner's lease: a heartbeat file that tells the watchdog a live runner from a dead one.

The file holds two monotonic timestamps (CLOCK_MONOTONIC is the same clock in every process of
the machine, and wall-clock jumps do not move it):

    beat   written every HEARTBEAT_INTERVAL by a thread of the runner: the process lives
           (a SIGSTOPped or frozen runner stops beating; the watchdog acts after LEASE_TTL)
    loop   the last time the runner's event loop ran a tick: the run makes progress
           (a wedged loop stops ticking; the watchdog acts after LOOP_HANG_LIMIT, long enough
           that CPU-heavy work on the loop never gets a healthy runner killed)
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

HEARTBEAT_INTERVAL = 0.5  # seconds between heartbeats
LEASE_TTL = 3.0  # a beat older than this: the runner is stopped or gone
LOOP_HANG_LIMIT = 20.0  # a loop tick older than this: the runner is wedged


@dataclass(frozen=True)
class LeaseState:
    pid: int
    beat: float  # monotonic
    loop: float  # monotonic

    def beat_age(self) -> float:
        return time.monotonic() - self.beat

    def loop_age(self) -> float:
        return time.monotonic() - self.loop


LEASE_BYTES = 128  # every lease is this long, so it can be rewritten where it is


def write(path: Path, pid: int, loop_tick: float) -> None:
    """Replace the lease atomically (a reader never sees half a file). When the disk refuses a
    new file (full: the run's journal is on it too), rewrite the lease's own bytes in place,
    which needs no new space: a full disk must not make a live runner look dead."""
    now = time.monotonic()
    body = json.dumps({"pid": pid, "beat": now, "loop": loop_tick}).ljust(LEASE_BYTES)
    spare = path.with_name(path.name + ".new")
    try:
        spare.write_text(body)
        os.replace(spare, path)
    except OSError:
        with contextlib.suppress(OSError):
            spare.unlink()
        with open(path, "r+") as lease:  # no lease yet: nothing to rewrite, the error stands
            lease.write(body)


def read(path: Path) -> LeaseState | None:
    """The lease as last written; None when it is missing or unreadable (read twice: an
    in-place rewrite may be caught half done)."""
    for attempt in range(2):
        try:
            data = json.loads(path.read_text())
            return LeaseState(int(data["pid"]), float(data["beat"]), float(data["loop"]))
        except (OSError, ValueError, KeyError, TypeError):
            if attempt == 0:
                time.sleep(0.01)
    return None


def pid_alive(pid: int) -> bool:
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


def why_gone(path: Path, pid: int) -> str | None:
    """Why the runner counts as gone (None while it is alive and making progress)."""
    if not pid_alive(pid):
        return f"runner process {pid} is gone"
    state = read(path)
    if state is None:
        return "the runner's lease is missing"
    if state.beat_age() > LEASE_TTL:
        return f"no heartbeat for {state.beat_age():.1f}s (TTL {LEASE_TTL:g}s)"
    if state.loop_age() > LOOP_HANG_LIMIT:
        return f"the runner's event loop has not run for {state.loop_age():.1f}s"
    return None


def alive(path: Path, pid: int) -> bool:
    return why_gone(path, pid) is None


def remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
