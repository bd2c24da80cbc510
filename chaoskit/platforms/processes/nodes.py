"""Losing a service (a node) by mode and getting it back, with a mark for another process.

    kill     SIGKILL the process tree; back: its start command (or systemctl start), health
    stop     SIGTERM, stop_timeout, then SIGKILL; back: as kill
    freeze   cgroup v1 freezer (root) or SIGSTOP; back: thawed (SIGCONT), moved back
    isolate  cgroup v2 group + iptables DROP (root); back: rules deleted, moved back

Undoing works from the node's name alone (marks of any run, groups and rules found by name),
so `chaoskit recover` and the watchdog revert with a platform rebuilt from the journal header.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaoskit.errors import PlatformError
from chaoskit.platforms.processes import finding, freezing, isolation, launch, marks, procfs
from chaoskit.platforms.processes.config import ServiceConfig
from chaoskit.platforms.processes.finding import Found

MODES = ("kill", "stop", "freeze", "isolate")


def modes() -> dict[str, str | None]:
    """kill, stop and freeze work everywhere (freeze by signals without root)."""
    return {"kill": None, "stop": None, "freeze": None, "isolate": isolation.unavailable()}


@dataclass(frozen=True)
class Node:
    """One service as a node: its name, its configuration, where marks and logs go."""

    name: str
    service: ServiceConfig
    state_dir: Path
    run: str

    @property
    def log(self) -> Path:
        return Path(self.service.log or self.state_dir / "logs" / f"{self.name}.log")

    def find(self) -> Found:
        return finding.find(self.service)

    def running(self) -> Found:
        found = self.find()
        if not found.running:
            raise PlatformError(f"node {self.name} is not running: {found.problem}",
                                hint=f"start it, or check how it is found "
                                     f"({self.service.found_by})")
        return found

    def base_mark(self, mode: str, found: Found) -> dict[str, Any]:
        return {"run": self.run, "node": self.name, "mode": mode, "pids": found.stamped(),
                "service": self.service.model_dump(mode="json"), "log": str(self.log)}


def lose(node: Node, mode: str) -> dict[str, Any]:
    if mode not in MODES:
        raise PlatformError(f"the processes platform cannot {mode} a node",
                            hint=f"use one of {', '.join(MODES)}")
    with marks.locked(node.state_dir):
        found = node.running()
        path = marks.node_mark(node.state_dir, node.run, node.name, mode)
        base = node.base_mark(mode, found)
        commands = {str(p): proc.cmdline[:200] for p in found.pids if (proc := procfs.read(p))}
        facts: dict[str, Any] = {"found_by": node.service.found_by, "pids": list(found.pids),
                                 "commands": commands}
        try:
            facts.update(_lose(node, mode, found, path, base))
        except Exception:
            with contextlib.suppress(Exception):  # leave nothing half done (the revert
                _undo(node, mode)                 # runs again anyway); the cause is raised
            raise
    return facts


def _lose(node: Node, mode: str, found: Found, path: Path, base: dict[str, Any]
          ) -> dict[str, Any]:
    def save(extra: dict[str, Any]) -> None:
        marks.write(path, {**base, **extra})

    if mode in ("kill", "stop"):
        save({})
        if mode == "kill":
            return {"killed": launch.kill(node.service, found)}
        return launch.stop(node.service, found)
    if mode == "freeze":
        mark = freezing.freeze(found, node.run, node.name, save)
        return {"freeze": mark["how"], "group": mark.get("group")}
    mark = isolation.isolate(found, node.run, node.name, save)
    return {"isolate": mark["how"], "group": mark["group"], "comment": mark["comment"],
            "sockets_cut": mark["sockets"]}


def restore(node: Node, mode: str) -> dict[str, Any]:
    """Idempotent: a node already itself is left alone (facts say so)."""
    with marks.locked(node.state_dir):
        return _undo(node, mode)


def _undo(node: Node, mode: str) -> dict[str, Any]:
    paths = marks.node_marks(node.state_dir, node.name, mode)
    recorded = [m for p in paths if (m := marks.read(p)) is not None]
    if mode in ("kill", "stop"):
        facts = bring_back(node, {pid for m in recorded for pid, _ in m.get("pids", [])})
    elif mode == "freeze":
        facts = thaw(node.name, recorded)
    elif mode == "isolate":
        facts = isolation.reconnect(node.name, recorded)
    else:
        facts = {}
    for path in paths:
        marks.remove(path)
    return facts


def bring_back(node: Node, gone: set[int]) -> dict[str, Any]:
    found = node.find()
    if found.running:
        return {"already_running": list(found.roots)}
    started = launch.start(node.service, node.log)
    return {"started": started, **launch.wait_up(node.service, gone, node.log)}


def thaw(name: str, recorded: list[dict[str, Any]]) -> dict[str, Any]:
    """Every freeze mark of the node, then any freezer group of it left without one."""
    thawed = [pid for mark in recorded for pid in freezing.thaw(mark)]
    for group in freezing.leftover_groups(name):
        thawed += freezing.thaw({"how": freezing.CGROUP, "group": str(group)})
    how = {m.get("how") for m in recorded}
    return {"thawed": thawed, "how": ", ".join(sorted(h for h in how if h)) or "nothing frozen"}


def residue(node: Node) -> list[str]:
    """What keeps the node from being its normal self."""
    found = node.find()
    out = [] if found.running else [f"node {node.name}: {found.problem}"]
    out += freezing.residue(node.name, found)
    out += isolation.residue(node.name)
    out += [f"node {node.name}: chaoskit's record of a change is still there ({p})"
            for p in marks.node_marks(node.state_dir, node.name)]
    return out
