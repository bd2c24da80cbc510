"""What /proc says about processes: command lines, parents, process trees, cgroups, CPU."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Proc:
    """One process as /proc/<pid>/stat and cmdline show it."""

    pid: int
    ppid: int
    state: str
    pgrp: int
    started: int  # clock ticks since boot: with pid, names one process for ever
    cpu_ticks: int  # utime + stime
    argv: tuple[str, ...]

    @property
    def cmdline(self) -> str:
        return " ".join(self.argv)

    @property
    def alive(self) -> bool:
        return self.state not in ("Z", "X")

    @property
    def stopped(self) -> bool:
        return self.state in ("T", "t")


def parse_stat(text: str) -> tuple[str, int, int, int, int]:
    """(state, ppid, pgrp, start ticks, cpu ticks) from the text of /proc/<pid>/stat (the
    command name in parentheses may hold spaces and parentheses itself)."""
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1]), int(fields[2]), int(fields[19]), int(fields[11]) + int(
        fields[12])


def read(pid: int) -> Proc | None:
    """The process, or None when it is gone (or hidden from us)."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    state, ppid, pgrp, started, ticks = parse_stat(stat)
    argv = tuple(a.decode(errors="replace") for a in raw.split(b"\0") if a)
    return Proc(pid, ppid, state, pgrp, started, ticks, argv)


def pids() -> list[int]:
    return sorted(int(e.name) for e in PROC.iterdir() if e.name.isdigit())


def snapshot() -> dict[int, Proc]:
    """Every live process now (zombies left out: they are gone for our purposes)."""
    found = {}
    for pid in pids():
        proc = read(pid)
        if proc is not None and proc.alive:
            found[pid] = proc
    return found


def alive(pid: int | None, started: int | None = None) -> bool:
    """True while pid runs and (when `started` is given) is still the same process."""
    proc = read(pid) if pid else None
    return proc is not None and proc.alive and (started is None or proc.started == started)


def tree(roots: Iterable[int], procs: dict[int, Proc] | None = None) -> list[int]:
    """The roots and all their live descendants."""
    procs = snapshot() if procs is None else procs
    children: dict[int, list[int]] = {}
    for proc in procs.values():
        children.setdefault(proc.ppid, []).append(proc.pid)
    found: list[int] = []
    todo = [p for p in roots if p in procs]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.append(pid)
            todo += children.get(pid, [])
    return sorted(found)


def ancestors(pid: int, procs: dict[int, Proc]) -> set[int]:
    """Every ancestor of pid (pid left out), as far as `procs` knows them."""
    seen: set[int] = set()
    while pid in procs and procs[pid].ppid not in seen and procs[pid].ppid > 0:
        pid = procs[pid].ppid
        seen.add(pid)
    return seen


def own_lineage() -> set[int]:
    """This process and its ancestors: never a service, whatever their command lines say."""
    return {os.getpid()} | ancestors(os.getpid(), snapshot())


def cgroup_of(pid: int, hierarchy: str) -> str | None:
    """The cgroup path of pid in a v1 hierarchy ('freezer', 'cpu') or '' for the v2 one."""
    try:
        text = (PROC / str(pid) / "cgroup").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        if (hierarchy == "" and controllers == "") or (
                hierarchy and hierarchy in controllers.split(",")):
            return path
    return None


def cgroups_of(pid: int | None) -> list[str]:
    """'controllers:path' of each v1 hierarchy and '0::path' of v2 (for the journal)."""
    try:
        text = (PROC / str(pid) / "cgroup").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError, TypeError):
        return []
    return [line.split(":", 1)[1] if line.split(":")[1] else line for line in text.splitlines()]


def environ_has(pid: int, needle: bytes, prefix: bool = False) -> bool:
    with contextlib.suppress(FileNotFoundError, ProcessLookupError, PermissionError):
        found = (PROC / str(pid) / "environ").read_bytes().split(b"\0")
        return any(v.startswith(needle) if prefix else v == needle for v in found)
    return False


def tagged(needle: str, prefix: bool = False) -> list[int]:
    """Live processes whose environment holds exactly `NAME=value` (or starts so)."""
    return [p.pid for p in snapshot().values()
            if p.pid != os.getpid() and environ_has(p.pid, needle.encode(), prefix)]


def cpu_seconds(pids_: Iterable[int]) -> float:
    total = 0
    for pid in pids_:
        proc = read(pid)
        total += proc.cpu_ticks if proc else 0
    return total / TICK


def group_cpu_seconds(leader: int) -> float:
    """CPU seconds of the live processes of the process group `leader` leads."""
    return cpu_seconds(p.pid for p in snapshot().values() if p.pgrp == leader)


def started_at(ticks: int | None) -> float | None:
    """Epoch seconds of a /proc start time (clock ticks since boot)."""
    if ticks is None:
        return None
    for line in (PROC / "stat").read_text().splitlines():
        if line.startswith("btime "):
            return int(line.split()[1]) + ticks / TICK
    return None


def send(pids_: Iterable[int], sig: int) -> list[int]:
    """Signal each pid; returns the ones that got it."""
    sent = []
    for pid in pids_:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
            sent.append(pid)
    return sent


def wait_gone(pids_: Iterable[int], timeout: float) -> list[int]:
    """Wait until none of pids is alive; the ones still alive at the deadline."""
    left = [p for p in pids_ if alive(p)]
    deadline = time.monotonic() + timeout
    while left and time.monotonic() < deadline:
        time.sleep(0.02)
        left = [p for p in left if alive(p)]
    return left


def wait_stopped(pids_: Iterable[int], stopped: bool, timeout: float) -> list[int]:
    """Wait until every live pid shows the stopped state asked for; the ones that do not."""
    def wrong() -> list[int]:
        return [p for p in pids_ if (proc := read(p)) and proc.alive and proc.stopped != stopped]
    deadline = time.monotonic() + timeout
    left = wrong()
    while left and time.monotonic() < deadline:
        time.sleep(0.01)
        left = wrong()
    return left


def kill_tree(pids_: list[int], timeout: float = 5.0) -> list[int]:
    """SIGKILL (after SIGCONT, so stopped ones go too); the pids still alive after timeout."""
    send(pids_, signal.SIGCONT)
    send(pids_, signal.SIGKILL)
    return wait_gone(pids_, timeout)
