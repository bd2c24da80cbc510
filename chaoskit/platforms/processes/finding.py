"""Finding a service's processes: by pid file, by command pattern, or by systemd unit."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from chaoskit.errors import PlatformError
from chaoskit.platforms.processes import procfs
from chaoskit.platforms.processes.config import ServiceConfig

SYSTEMCTL_TIMEOUT = 10.0


@dataclass(frozen=True)
class Found:
    """A service's processes now: the roots found, their whole trees, and why not if none."""

    roots: tuple[int, ...]
    pids: tuple[int, ...]  # roots and every descendant
    problem: str = ""  # why the service is not (exactly) found; '' when it is
    started: dict[int, int] = field(default_factory=dict)  # pid -> start ticks

    @property
    def running(self) -> bool:
        return bool(self.roots) and not self.problem

    def stamped(self) -> list[list[int]]:
        """[[pid, start ticks], ...]: what a later process needs to signal these and no other."""
        return [[pid, self.started.get(pid, 0)] for pid in self.pids]


def parse_pidfile(text: str) -> int | None:
    """The pid in a pid file's text: the first line, a positive integer (else None)."""
    first = text.strip().splitlines()[0].strip() if text.strip() else ""
    return int(first) if first.isdigit() and int(first) > 0 else None


def pattern_roots(pattern: str, procs: dict[int, procfs.Proc], exclude: set[int]) -> list[int]:
    """Processes whose command line matches, leaving out those with a matching ancestor (a
    `sh -c` wrapper and its child, a master and its workers are one tree) and `exclude`."""
    regex = re.compile(pattern)
    matched = {p.pid for p in procs.values()
               if p.argv and p.pid not in exclude and regex.search(p.cmdline)}
    return sorted(p for p in matched if not procfs.ancestors(p, procs) & matched)


def parse_show(text: str) -> dict[str, str]:
    """`systemctl show -p A -p B UNIT` output (KEY=value lines) as a dict."""
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def systemctl(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("systemctl") is None:
        raise PlatformError("systemctl is not installed",
                            hint="find the service by `pidfile:` or `command:` instead")
    try:
        return subprocess.run(["systemctl", *args], capture_output=True, text=True,
                              timeout=SYSTEMCTL_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise PlatformError(f"`systemctl {' '.join(args)}` did not answer in "
                            f"{SYSTEMCTL_TIMEOUT:g}s", hint="is systemd running?") from None


def unit_state(unit: str) -> dict[str, str]:
    done = systemctl("show", "-p", "ActiveState", "-p", "MainPID", "-p", "ControlGroup",
                     "-p", "LoadState", unit)
    if done.returncode != 0:
        raise PlatformError(f"systemctl cannot show {unit}: {done.stderr.strip()}",
                            hint="is systemd running, and the unit's name right?")
    return parse_show(done.stdout)


def _with_tree(roots: list[int], procs: dict[int, procfs.Proc], problem: str = "") -> Found:
    every = procfs.tree(roots, procs)
    return Found(tuple(roots), tuple(every), problem,
                 {p: procs[p].started for p in every if p in procs})


def by_pidfile(path: str, procs: dict[int, procfs.Proc]) -> Found:
    try:
        pid = parse_pidfile(Path(path).read_text())
    except FileNotFoundError:
        return Found((), (), f"pid file {path} does not exist")
    except OSError as exc:
        return Found((), (), f"pid file {path} cannot be read ({exc.strerror})")
    if pid is None:
        return Found((), (), f"pid file {path} holds no pid")
    if pid not in procs:
        return Found((), (), f"pid file {path} names pid {pid}, which is not running")
    return _with_tree([pid], procs)


def by_command(pattern: str, count: int, procs: dict[int, procfs.Proc]) -> Found:
    roots = pattern_roots(pattern, procs, procfs.own_lineage())
    if not roots:
        return Found((), (), f"no process matches /{pattern}/")
    if len(roots) != count:
        shown = "; ".join(f"{p}: {procs[p].cmdline[:80]}" for p in roots[:5])
        return _with_tree(roots, procs, f"/{pattern}/ matches {len(roots)} separate "
                                        f"processes, not {count} ({shown})")
    return _with_tree(roots, procs)


def by_unit(unit: str, procs: dict[int, procfs.Proc]) -> Found:
    try:
        state = unit_state(unit)
    except PlatformError as exc:
        return Found((), (), exc.message)
    if state.get("LoadState") == "not-found":
        return Found((), (), f"unit {unit} does not exist")
    main = int(state.get("MainPID") or 0)
    if state.get("ActiveState") != "active" or main not in procs:
        return Found((), (), f"unit {unit} is {state.get('ActiveState', '?')} "
                             f"(main pid {main or 'none'})")
    return _with_tree([main], procs)


def find(service: ServiceConfig, procs: dict[int, procfs.Proc] | None = None) -> Found:
    procs = procfs.snapshot() if procs is None else procs
    if service.pidfile:
        return by_pidfile(service.pidfile, procs)
    if service.unit:
        return by_unit(service.unit, procs)
    return by_command(service.command or "", service.count, procs)
