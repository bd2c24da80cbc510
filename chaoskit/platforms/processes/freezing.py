"""Freezing a service's process tree: the cgroup v1 freezer as root, else SIGSTOP/SIGCONT.

With the freezer the tree is moved into chaoskit/processes/<run>/<node> and FROZEN: sockets
stay open, nothing runs, not even signal handlers; thawing moves each process back to the
freezer group it came from. Without root (or without a freezer hierarchy) every process of the
tree gets SIGSTOP, and SIGCONT at the thaw: a process can see that (SIGCHLD to its parent).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chaoskit.errors import PlatformError
from chaoskit.lab import cgroups
from chaoskit.platforms.processes import groups, procfs
from chaoskit.platforms.processes.finding import Found

FREEZER = "freezer"
CGROUP = "cgroup freezer"
SIGNALS = "SIGSTOP/SIGCONT"
WAIT_S = 5.0


def mechanism() -> str:
    return CGROUP if os.geteuid() == 0 and groups.mount(FREEZER) is not None else SIGNALS


Save = Callable[[dict[str, Any]], None]


def freeze(found: Found, run: str, node: str, save: Save) -> dict[str, Any]:
    """Freeze the tree, saving the mark (what the thaw needs) before anything changes."""
    if mechanism() == CGROUP:
        return _freeze_group(found, run, node, save)
    save({"how": SIGNALS, "pids": found.stamped()})
    procfs.send(found.pids, signal.SIGSTOP)
    left = procfs.wait_stopped(found.pids, True, WAIT_S)
    if left:
        procfs.send(found.pids, signal.SIGCONT)
        raise PlatformError(f"pids {left} of node {node} did not stop",
                            hint="are they yours to signal? run chaoskit as their user or root")
    return {"how": SIGNALS, "pids": found.stamped()}


def _freeze_group(found: Found, run: str, node: str, save: Save) -> dict[str, Any]:
    group = groups.make(groups.group(FREEZER, run, node))
    mark: dict[str, Any] = {"how": CGROUP, "group": str(group), "pids": found.stamped(),
                            "cgroups": groups.originals(list(found.pids), FREEZER)}
    save(mark)
    for pid in found.pids:
        groups.move(pid, group)
    # a child forked while we moved its parent: move the whole tree again, then freeze
    for pid in procfs.tree(found.roots):
        groups.remember(mark["cgroups"], pid, FREEZER, found.roots)
        groups.move(pid, group)
    save(mark)
    cgroups.set_frozen(group, True, WAIT_S)
    return mark


def thaw(mark: dict[str, Any]) -> list[int]:
    """Undo one freeze mark; the pids thawed."""
    if mark.get("how") == CGROUP:
        return _thaw_group(Path(mark["group"]), mark.get("cgroups", {}))
    live = [pid for pid, started in mark.get("pids", []) if procfs.alive(pid, started)]
    procfs.send(live, signal.SIGCONT)
    left = procfs.wait_stopped(live, False, WAIT_S)
    if left:
        raise PlatformError(f"pids {left} are still stopped after SIGCONT",
                            hint="retry the revert; check them with `ps -o pid,stat`")
    return live


def _thaw_group(group: Path, originals: dict[str, str]) -> list[int]:
    if not group.exists():
        return []
    if cgroups.freeze_state(group) != "THAWED":
        cgroups.set_frozen(group, False, WAIT_S)
    thawed = groups.members(group)
    for pid in thawed:
        groups.move_back(pid, FREEZER, originals.get(str(pid)))
    problem = groups.remove(group)
    if problem:
        raise PlatformError(f"freezer group left behind: {problem}",
                            hint="retry the revert, or `chaoskit recover`")
    return thawed


def leftover_groups(node: str) -> list[Path]:
    return groups.ours(FREEZER, node)


def residue(node: str, found: Found) -> list[str]:
    """A chaoskit freezer group of the node, or stopped processes in its tree."""
    out = [f"node {node}: freezer group {g} exists ({cgroups.freeze_state(g)}, "
           f"{len(groups.members(g))} processes)" for g in leftover_groups(node)]
    stopped = [p for p in found.pids if (proc := procfs.read(p)) and proc.stopped]
    if stopped:
        out.append(f"node {node}: pids {stopped} are stopped (SIGSTOP)")
    return out
