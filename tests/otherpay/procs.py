"""Finding and stopping otherpay processes by pid file and by their instance tag."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2:][:1] not in ("Z", "X")


def read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def tagged(tag: str) -> set[int]:
    """Pids of live processes whose environment has a variable starting with `tag`
    (e.g. `OTHERPAY_INSTANCE=op1234-`): whatever started them, they are ours."""
    needle = tag.encode()
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if any(var.startswith(needle) for var in (entry / "environ").read_bytes().split(b"\0")):
                found.add(int(entry.name))
    return {pid for pid in found if alive(pid)}


def reap(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        child.poll()


def wait_gone(pids: set[int], children: list[subprocess.Popen[bytes]], timeout: float
              ) -> set[int]:
    """The pids still alive after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        reap(children)
        left = {pid for pid in pids if alive(pid)}
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.05)


def signal_all(pids: set[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def stop(pids: set[int], children: list[subprocess.Popen[bytes]], grace: float = 15.0
         ) -> list[str]:
    """SIGTERM, then SIGKILL after `grace`; the problems seen (a stop that needed SIGKILL,
    a child that exited non-zero after SIGTERM)."""
    problems: list[str] = []
    signal_all(pids, signal.SIGTERM)
    stubborn = wait_gone(pids, children, grace)
    if stubborn:
        problems.append(f"pids {sorted(stubborn)} ignored SIGTERM for {grace:g}s; killed")
        signal_all(stubborn, signal.SIGKILL)
        wait_gone(stubborn, children, 5)
    for child in children:
        if child.pid in pids and child.pid not in stubborn and child.returncode not in (0, None):
            problems.append(f"pid {child.pid} exited {child.returncode} after SIGTERM")
    return problems
