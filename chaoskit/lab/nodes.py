"""Node operations: start a node's processes inside it, kill, freeze, isolate, audit."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from chaoskit.errors import PermissionMissing, PlatformError
from chaoskit.lab import cgroups, netns, processes
from chaoskit.lab.state import MARKER_ENV, LabState, NodeRecord, ProcessRecord

NETNS = "netns"
PROCESS = "process"

# Joins the node's cgroups before exec, so no instruction of the service runs outside them.
_JOIN = 'for g in $CHAOSKIT_CGROUPS; do echo $$ > "$g/cgroup.procs" || exit 111; done; exec "$@"'


def process_env(state: LabState, record: ProcessRecord) -> dict[str, str]:
    env = {**os.environ, **record.env, MARKER_ENV: state.marker}
    project = str(Path(__file__).resolve().parents[3])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [project, env.get("PYTHONPATH")]))
    return env


def launch(state: LabState, record: ProcessRecord) -> None:
    """Start a process record (on its node, or on the host) and note its pid in the record."""
    env = process_env(state, record)
    argv = list(record.argv)
    if record.node is not None and state.mode == NETNS:
        node = state.node(record.node)
        env["CHAOSKIT_CGROUPS"] = " ".join(node.cgroups)
        argv = ["/bin/sh", "-c", _JOIN, "sh", *netns.exec_prefix(node.netns or ""), *argv]
    record.pid, record.started = processes.spawn(argv, env, Path(record.log), user=record.user)


def create(state: LabState, node: NodeRecord) -> None:
    """Kernel objects of a root node; the record must already be saved (crash safety)."""
    if state.mode != NETNS:
        return
    node.cgroups = [str(g) for g in cgroups.create(state.lab_id, node.name)]
    prefix = state.subnet.split("/")[1]
    netns.create_node(node.netns or "", node.veth or "", state.bridge,
                      f"{node.address}/{prefix}")


def destroy(state: LabState, node: NodeRecord) -> list[str]:
    """Remove a node's namespace, link and cgroups; returns what could not be removed."""
    if state.mode != NETNS:
        return []
    kill(state, node.name)
    if node.netns:
        netns.delete_netns(node.netns)
    if node.veth:
        netns.delete_link(node.veth)
    return cgroups.remove(cgroups.node_groups(state.lab_id, node.name))


def pids(state: LabState, name: str) -> list[int]:
    """Every live process of a node: its records' groups plus anything in its cgroup."""
    found = {p.pid for p in state.processes_on(name) if processes.alive(p.pid, p.started)}
    if state.mode == NETNS:
        found.update(cgroups.members(cgroups.freezer(state.lab_id, name)))
    return sorted(p for p in found if p)


def kill(state: LabState, name: str) -> list[int]:
    """SIGKILL every process of the node (thawing first: a frozen task cannot die)."""
    group = cgroups.freezer(state.lab_id, name)
    if state.mode == NETNS and cgroups.freeze_state(group) != "ABSENT":
        cgroups.set_frozen(group, False)
    victims = pids(state, name)
    for record in state.processes_on(name):
        processes.signal_group(record.pid, record.started, signal.SIGCONT)
        processes.signal_group(record.pid, record.started, signal.SIGKILL)
    for pid in victims:
        _kill(pid)
    processes.wait_gone(victims, 5.0)
    return victims


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def set_frozen(state: LabState, name: str, frozen: bool) -> None:
    """Root: the freezer cgroup (sockets stay open, nothing runs). Else SIGSTOP/SIGCONT."""
    if state.mode == NETNS:
        cgroups.set_frozen(cgroups.freezer(state.lab_id, name), frozen)
        return
    sig = signal.SIGSTOP if frozen else signal.SIGCONT
    live = [r for r in state.processes_on(name) if processes.alive(r.pid, r.started)]
    for record in live:
        processes.signal_group(record.pid, record.started, sig)
    # Signals land asynchronously: return once every process shows the state asked for, as
    # the cgroup freezer does, so a caller never observes a half-frozen node.
    deadline = time.monotonic() + 5.0
    while any(processes.alive(r.pid, r.started) and processes.stopped(r.pid or 0) != frozen
              for r in live):
        if time.monotonic() > deadline:
            raise PlatformError(f"node {name} did not become {'stopped' if frozen else 'running'}",
                                hint="check `chaoskit lab status`; retry the thaw")
        time.sleep(0.01)


def set_isolated(state: LabState, name: str, isolated: bool) -> None:
    node = state.node(name)
    if state.mode != NETNS or not node.veth:
        raise PermissionMissing(
            f"isolate needs root: isolating node '{name}' needs a network namespace, and the "
            f"lab '{state.name}' runs its nodes as process groups on loopback (started without "
            "root)", hint="run `chaoskit lab up` as root to get netns nodes, or use mode "
                          "kill/freeze")
    netns.set_isolated(node.veth, state.bridge, isolated)


def frozen(state: LabState, name: str) -> bool:
    if state.mode == NETNS:
        return cgroups.freeze_state(cgroups.freezer(state.lab_id, name)) in ("FROZEN", "FREEZING")
    return any(processes.stopped(p.pid) for p in state.processes_on(name) if p.pid)


def residue(state: LabState, name: str) -> list[str]:
    """What keeps the node from being its normal self: frozen, cut off, processes missing."""
    found = []
    if frozen(state, name):
        found.append(f"node {name} is frozen")
    if cut_off := residue_link(state, name):
        found.append(cut_off)
    for record in state.processes_on(name):
        if not processes.alive(record.pid, record.started):
            found.append(f"node {name}: process {record.id} is not running")
    return found


def residue_link(state: LabState, name: str) -> str:
    """Why the node's link is not normal ('' when it is up and on the bridge)."""
    node = state.node(name)
    if state.mode != NETNS or not node.veth:
        return ""
    link = netns.link_state(node.veth)
    if link.get("up") != "yes" or link.get("master") != state.bridge:
        return f"node {name}: link {node.veth} is down or off the bridge ({link or 'gone'})"
    return ""
