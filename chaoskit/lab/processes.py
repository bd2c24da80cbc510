"""Starting, recognising and stopping lab processes (each leads its own process group)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

from chaoskit.lab.state import MARKER_ENV

# Popen objects of children started by this process, kept so killed ones get reaped
# (a zombie would otherwise look alive to a /proc scan).
_children: dict[int, subprocess.Popen[bytes]] = {}


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of a pid, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], int(fields[19])


def reap() -> None:
    for pid, child in list(_children.items()):
        if child.poll() is not None:
            del _children[pid]


def alive(pid: int | None, started: int | None = None) -> bool:
    """True when pid runs and is the same process we started (guards against pid reuse)."""
    if not pid:
        return False
    reap()
    stat = proc_stat(pid)
    if stat is None or stat[0] in ("Z", "X"):
        return False
    return started is None or stat[1] == started


def stopped(pid: int) -> bool:
    """True when the process is stopped by a signal (SIGSTOP) or frozen (state T/t/D idle)."""
    stat = proc_stat(pid)
    return stat is not None and stat[0] in ("T", "t")


def spawn(argv: list[str], env: dict[str, str], log: Path, user: str | None = None,
          cwd: str | None = None) -> tuple[int, int]:
    """Start a detached process in a new session logging to `log`; returns (pid, start time)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                 user=user, cwd=cwd, close_fds=True)
    _children[child.pid] = child
    stat = proc_stat(child.pid)
    return child.pid, stat[1] if stat else 0


def signal_group(pid: int | None, started: int | None, sig: int) -> bool:
    """Signal the process group a lab process leads; False if it was already gone."""
    if not alive(pid, started):
        return False
    assert pid is not None
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        os.kill(pid, sig)
    return True


def wait_gone(pids: Iterable[int], timeout: float) -> list[int]:
    """Wait until none of pids is alive; returns the ones still alive at the deadline."""
    deadline = time.monotonic() + timeout
    left = [p for p in pids if alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.02)
        left = [p for p in left if alive(p)]
    return left


def marked(marker: str) -> list[int]:
    """Every process carrying MARKER_ENV=marker: finds what a crashed `lab up` started
    before it could write the pid down."""
    needle = f"{MARKER_ENV}={marker}\0".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return [p for p in found if alive(p)]


def kill_all(pids: Iterable[int], grace: float = 2.0) -> list[int]:
    """SIGTERM, wait `grace`, then SIGKILL; returns pids that survived even SIGKILL."""
    pids = [p for p in pids if alive(p)]
    for pid in pids:
        _send(pid, signal.SIGTERM)
    left = wait_gone(pids, grace)
    for pid in left:
        _send(pid, signal.SIGKILL)
    return wait_gone(left, 3.0)


def _send(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)
