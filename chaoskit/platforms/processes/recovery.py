"""Removing what the processes platform left on this machine, without a journal.

Marks say what a run changed; whatever has no mark is found by name: chaoskit/processes/<run>
cgroups (thawed, emptied back into the hierarchy's root, removed), iptables rules commented
`chaoskit:processes:<run>:...` (deleted), offline processes carrying CHAOSKIT_PROCESSES_RUN
(killed). A service a mark shows was killed or stopped is started again by its recorded command.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chaoskit.errors import ChaoskitError
from chaoskit.lab import cgroups, processes
from chaoskit.platforms.processes import (
    colocation,
    firewall,
    freezing,
    groups,
    isolation,
    marks,
    nodes,
    procfs,
)
from chaoskit.platforms.processes.config import ServiceConfig, default_state_dir


def recover_processes(run: str | None = None, state_dir: str | Path | None = None
                      ) -> list[str]:
    """Undo every change of `run` (default: of any run) on this machine; what was done."""
    where = Path(state_dir) if state_dir else default_state_dir()
    done: list[str] = []
    with _locked(where):
        done += _rules(run)
        for path in marks.node_marks(where, run=run):
            done += _node_mark(path, where)
        for path in marks.offline_marks(where, run=run):
            done += _offline_mark(path)
        done += _groups(run)
        done += _offline_processes(run)
    return done


@contextlib.contextmanager
def _locked(where: Path) -> Iterator[None]:
    if where.exists():
        with marks.locked(where):
            yield
    else:
        yield


def _rules(run: str | None) -> list[str]:
    if os.geteuid() != 0 or shutil.which("iptables") is None:
        return []
    return [f"deleted rule: {line}" for line in firewall.remove(run=run)]


def _node_mark(path: Path, where: Path) -> list[str]:
    mark = marks.read(path) or {}
    mode, name = mark.get("mode", ""), mark.get("node", "?")
    try:
        facts = _undo_mark(mark, mode, name, where)
    except (ChaoskitError, OSError, ValueError) as exc:
        return [f"could not undo the {mode} of {name} ({path}): {exc}"]
    marks.remove(path)
    return [f"undid the {mode} of {name} (run {mark.get('run')}): {facts}"]


def _undo_mark(mark: dict[str, Any], mode: str, name: str, where: Path) -> dict[str, Any]:
    if mode == "freeze":
        return {"thawed": freezing.thaw(mark)}
    if mode == "isolate":
        return isolation.reconnect(name, [mark])
    if mode in ("kill", "stop") and mark.get("service"):
        service = ServiceConfig.model_validate(mark["service"])
        node = nodes.Node(name, service, where, str(mark.get("run", "")))
        return nodes.bring_back(node, {pid for pid, _ in mark.get("pids", [])})
    return {}


def _offline_mark(path: Path) -> list[str]:
    mark = marks.read(path) or {}
    try:
        colocation.undo(mark)
    except (ChaoskitError, OSError) as exc:
        return [f"could not stop offline work {mark.get('id')} ({path}): {exc}"]
    marks.remove(path)
    return [f"stopped offline work {mark.get('id')} (run {mark.get('run')})"]


def _groups(run: str | None) -> list[str]:
    """Groups left without a mark: thawed, emptied into the root (offline work killed)."""
    done = []
    for group in groups.ours("freezer", "*", run=run):
        if cgroups.freeze_state(group) != "THAWED":
            cgroups.set_frozen(group, False)
        done += _empty(group, "freezer")
    for group in groups.ours(groups.V2, "*", run=run):
        done += _empty(group, groups.V2)
    for hierarchy in ("cpu", "cpuset"):
        for group in groups.ours(hierarchy, "*", "*", "*", run=run):
            if group.name == "offline":
                processes.kill_all(groups.members(group), grace=0.5)
            done += _empty(group, hierarchy)
    return done


def _empty(group: Path, hierarchy: str) -> list[str]:
    members = groups.members(group)
    for pid in members:
        groups.move_back(pid, hierarchy, None)
    problem = groups.remove(group)
    return [f"removed cgroup {group} ({len(members)} processes moved to the root)"
            + (f"; could not: {problem}" if problem else "")]


def _offline_processes(run: str | None) -> list[str]:
    needle = f"{colocation.RUN_ENV}={run}" if run else f"{colocation.RUN_ENV}="
    found = procfs.tagged(needle, prefix=run is None)
    left = processes.kill_all(found, grace=1.0)
    return [f"killed offline process {pid}" for pid in found if pid not in left] + [
        f"offline process {pid} survived SIGKILL" for pid in left]
