"""Isolating a service on a shared host: a cgroup v2 group plus iptables rules that DROP.

The tree moves into chaoskit/processes/<run>/<node> of the v2 hierarchy, and rules match
`-m cgroup --path` that group in OUTPUT and INPUT: every socket the service opens from then on
is cut. A socket keeps the cgroup it was created in, though, so the sockets the tree already
holds are cut by address: packets to its listening ports, and both directions of each of its
connections (pooled database connections, keep-alive clients). Packets vanish (DROP): a client
times out, as on a partition. Reconnecting deletes the rules and moves the tree back.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chaoskit.errors import PermissionMissing, PlatformError
from chaoskit.platforms.processes import firewall, groups, procfs, sockets
from chaoskit.platforms.processes.finding import Found

V2 = groups.V2


def unavailable() -> str | None:
    """Why isolate does not work here (None: it does)."""
    if os.geteuid() != 0:
        return ("isolate needs root (a cgroup v2 group and iptables rules); run chaoskit as "
                "root, or use kill/stop/freeze")
    if groups.mount(V2) is None:
        return "isolate needs the cgroup v2 hierarchy (none mounted); use kill/stop/freeze"
    if shutil.which("iptables") is None or shutil.which("iptables-restore") is None:
        return "isolate needs iptables and iptables-restore (not installed); use kill/freeze"
    if not _cgroup_match():
        return ("this kernel's iptables has no `cgroup` match (xt_cgroup); isolate cannot tell "
                "the service's packets apart: use kill/stop/freeze, or the containers platform")
    return None


def _cgroup_match() -> bool:
    path = Path("/proc/net/ip_tables_matches")
    try:
        return "cgroup" in path.read_text().split()
    except OSError:
        return True  # not listed until first used on some kernels: the rules will tell


def isolate(found: Found, run: str, node: str,
            save: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Cut the tree off, saving the mark (what reconnecting needs) before anything changes."""
    why = unavailable()
    if why:
        raise PermissionMissing(why, hint="see `node_loss_modes` of the processes platform")
    foreign = [p for p in found.roots if not sockets.same_netns(p)]
    if foreign:
        raise PlatformError(f"node {node}: pids {foreign} are in another network namespace",
                            hint="isolate them where they run (e.g. the containers platform)")
    group = groups.make(groups.group(V2, run, node))
    note = firewall.comment(run, node)
    mark: dict[str, Any] = {"how": "cgroup v2 + iptables", "group": str(group),
                            "comment": note, "pids": found.stamped(),
                            "cgroups": groups.originals(list(found.pids), V2)}
    save(mark)
    # first into the group (new sockets are matched), then the sockets that exist already
    for pid in procfs.tree(found.roots):
        groups.remember(mark["cgroups"], pid, V2, found.roots)
        groups.move(pid, group)
    firewall.add(firewall.cgroup_rules(groups.relative(group)), note)
    held = sockets.held(procfs.tree(found.roots))
    firewall.add([r for s in held for r in firewall.socket_rules(s)], note)
    mark["sockets"] = [f"{s.proto} {s.local}:{s.lport} -> {s.remote}:{s.rport}" for s in held]
    save(mark)
    return mark


def reconnect(node: str, marks: list[dict[str, Any]]) -> dict[str, Any]:
    """Delete the node's rules (any run) and move its processes back out of our groups."""
    removed = firewall.remove(node=node) if not unavailable() else []
    originals: dict[str, str] = {}
    for mark in marks:
        originals.update(mark.get("cgroups", {}))
    moved, problems = [], []
    for group in leftover_groups(node):
        for pid in groups.members(group):
            groups.move_back(pid, V2, originals.get(str(pid)))
            moved.append(pid)
        if problem := groups.remove(group):
            problems.append(problem)
    if problems:
        raise PlatformError(f"isolation groups left behind: {'; '.join(problems)}",
                            hint="retry the revert, or `chaoskit recover`")
    return {"rules_removed": len(removed), "moved_back": moved}


def leftover_groups(node: str) -> list[Path]:
    return groups.ours(V2, node)


def residue(node: str) -> list[str]:
    out = [f"node {node}: isolation group {g} exists ({len(groups.members(g))} processes)"
           for g in leftover_groups(node)]
    if os.geteuid() == 0 and shutil.which("iptables"):
        out += [f"node {node}: iptables rule left: {line}"
                for lines in firewall.ours(node=node).values() for line in lines]
    return out
