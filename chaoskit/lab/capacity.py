"""Changing a running lab: extra stack processes on a node, nodes joining and leaving."""

from __future__ import annotations

import contextlib
import signal
import time
from ipaddress import IPv4Network
from pathlib import Path

from chaoskit.errors import PlatformError
from chaoskit.lab import addresses, cgroups, haproxy, netns, nodes, processes, state
from chaoskit.lab.state import LabState, NodeRecord, ProcessRecord, logs_dir
from chaoskit.lab.topology import STACK_SERVICES, instance_id

SCALE_SERVICES = ("gateway", "worker")


def _template(lab: LabState, service: str) -> ProcessRecord:
    """An existing stack record to copy the shared environment from (DB, banks, scale)."""
    same = [p for p in lab.processes if p.service == service and p.node]
    stack = [p for p in lab.processes if p.service in STACK_SERVICES and p.node]
    if not (same or stack):
        raise PlatformError("the lab has no stack process to copy settings from",
                            hint="recreate the lab with `chaoskit lab up`")
    return (same or stack)[0]


def _unique_id(lab: LabState, base: str) -> str:
    taken = {p.id for p in lab.processes}
    if base not in taken:
        return base
    return next(f"{base}-{i}" for i in range(2, 1000) if f"{base}-{i}" not in taken)


def start_service(lab: LabState, node_name: str, service: str,
                  env: dict[str, str] | None = None) -> ProcessRecord:
    """Start one more stack process on a node; recorded first, so `lab down` stops it too."""
    if service not in STACK_SERVICES:
        raise PlatformError(f"'{service}' is not a stack service",
                            hint=f"use one of: {', '.join(STACK_SERVICES)}")
    node = lab.node(node_name)
    template = _template(lab, service)
    name = _unique_id(lab, instance_id(service, node_name))
    listen = f"{node.address}:{addresses.free_port()}"
    record = ProcessRecord(
        name, service, node_name, list(template.argv[:-1]) + [service],
        {**template.env, **(env or {}), "CHAOSKIT_LISTEN": listen, "CHAOSKIT_NODE": node_name,
         "CHAOSKIT_INSTANCE": name},
        str(logs_dir(lab) / f"{name}.log"), listen, health=f"http://{listen}/healthz")
    lab.processes.append(record)
    state.save(lab)
    nodes.launch(lab, record)
    state.save(lab)
    return record


def stop_service(lab: LabState, process_id: str) -> None:
    """Stop a process (TERM, then KILL) and forget it; a missing one is already stopped."""
    record = lab.process(process_id)
    if record is None:
        return
    processes.signal_group(record.pid, record.started, signal.SIGCONT)
    terminated = processes.signal_group(record.pid, record.started, signal.SIGTERM)
    if terminated and processes.wait_gone([record.pid or 0], 5.0):
        processes.signal_group(record.pid, record.started, signal.SIGKILL)
        processes.wait_gone([record.pid or 0], 3.0)
    lab.processes.remove(record)
    state.save(lab)


def add_node(lab: LabState, name: str | None = None) -> NodeRecord:
    """A new node with a gateway (joining HAProxy's rotation) and a worker (the lease pool);
    `name` (node-N) lets a caller pick it ahead, as a journaled intent needs."""
    name = name or free_node_name(lab)
    index = new_node_index(lab, name)
    address = "127.0.0.1"
    if lab.mode == nodes.NETNS:
        address = addresses.node_address(IPv4Network(lab.subnet), index)
    node = NodeRecord(name, address, netns=f"ck{lab.lab_id}-{name}" if lab.mode == nodes.NETNS
                      else None, veth=f"ck{lab.lab_id}v{index + 1}" if lab.mode == nodes.NETNS
                      else None, roles=list(SCALE_SERVICES))
    lab.nodes.append(node)
    state.save(lab)
    nodes.create(lab, node)
    state.save(lab)
    gateway = start_service(lab, name, "gateway")
    start_service(lab, name, "worker")
    haproxy.add_gateway(lab.haproxy_socket, name, gateway.listen)
    return node


def new_node_index(lab: LabState, name: str) -> int:
    """The 0-based index of a node to add (node-N: N - 1), refusing a taken or odd name; the
    number names its address and link, so it is unique."""
    if any(n.name == name for n in lab.nodes) or not name.rsplit("-", 1)[-1].isdigit():
        raise PlatformError(f"cannot add node '{name}': taken, or not named node-N",
                            hint=f"use a free name such as {next_node_names(lab, 1)[0]}")
    return int(name.rsplit("-", 1)[1]) - 1


def free_node_name(lab: LabState) -> str:
    taken = {n.name for n in lab.nodes}
    return next(f"node-{i}" for i in range(1, 1000) if f"node-{i}" not in taken)


def next_node_names(lab: LabState, count: int) -> list[str]:
    """Names the next `count` added nodes get: after the highest index in use (deterministic
    from the lab's state, so a plan can name a node before it exists)."""
    used = [int(n.name.rsplit("-", 1)[1]) for n in lab.nodes
            if n.name.rsplit("-", 1)[-1].isdigit()]
    top = max(used, default=0)
    return [f"node-{top + i}" for i in range(1, count + 1)]


def remove_node(lab: LabState, name: str) -> None:
    """Take a node out of rotation, stop its processes and remove its kernel objects."""
    node = lab.node(name)
    if nodes.frozen(lab, name):  # frozen processes would not act on SIGTERM
        nodes.set_frozen(lab, name, False)
    if any(p.service == "gateway" for p in lab.processes_on(name)):
        with contextlib.suppress(OSError):  # HAProxy gone: no rotation to take the node out of
            haproxy.remove_gateway(lab.haproxy_socket, name)
    for record in list(lab.processes_on(name)):
        stop_service(lab, record.id)
    left = nodes.destroy(lab, node)
    if left:
        raise PlatformError(f"node {name} left behind: {'; '.join(left)}",
                            hint="run `chaoskit lab down` to sweep the lab")
    lab.nodes.remove(node)
    state.save(lab)


# -- draining: out of rotation without cutting a request -------------------------------------
def gateway_sessions(socket_path: str, name: str) -> int | None:
    """Current sessions HAProxy holds to a gateway (None when it has no such server)."""
    text = haproxy.runtime(socket_path, "show stat")
    header = text.splitlines()[0].lstrip("# ").split(",") if text else []
    for line in text.splitlines()[1:]:
        row = dict(zip(header, line.split(","), strict=False))
        if row.get("pxname") == "gateways" and row.get("svname") == name:
            return int(row.get("scur") or 0)
    return None


def drain_gateway(socket_path: str, name: str, timeout: float) -> float:
    """No new requests to the gateway, wait (bounded) for those in flight, then maintenance;
    returns the seconds the drain took."""
    started = time.monotonic()
    if gateway_sessions(socket_path, name) is None:
        return 0.0
    haproxy.runtime(socket_path, f"set server gateways/{name} state drain")
    while time.monotonic() - started < timeout and gateway_sessions(socket_path, name):
        time.sleep(0.05)
    haproxy.runtime(socket_path, f"set server gateways/{name} state maint")
    return round(time.monotonic() - started, 3)


def retire_node(lab: LabState, name: str, drain: float) -> list[str]:
    """Capacity removed: the node drained out of rotation and its processes stopped, records
    kept, so `restart_node` and `return_to_rotation` bring it back as it was."""
    lab.node(name)
    with contextlib.suppress(OSError):
        drain_gateway(lab.haproxy_socket, name, drain)
    stopped = []
    for record in lab.processes_on(name):
        processes.signal_group(record.pid, record.started, signal.SIGCONT)
        if processes.signal_group(record.pid, record.started, signal.SIGTERM):
            stopped.append(record.id)
    if processes.wait_gone([p.pid or 0 for p in lab.processes_on(name)], 5.0):
        nodes.kill(lab, name)
    return stopped


def return_to_rotation(lab: LabState, name: str) -> None:
    """Out of maintenance; HAProxy's health check puts it back once its gateway answers."""
    if gateway_sessions(lab.haproxy_socket, name) is not None:
        haproxy.runtime(lab.haproxy_socket, f"set server gateways/{name} state ready")


def entry_states(lab: LabState) -> dict[str, str]:
    return haproxy.server_states(lab.haproxy_socket)


def departed_residue(lab: LabState, name: str) -> list[str]:
    """What is left of a removed node: its record, HAProxy server, processes, kernel objects."""
    found = [f"node {name} is still in the lab" for n in lab.nodes if n.name == name]
    if name in haproxy.server_states(lab.haproxy_socket):
        found.append(f"HAProxy still has a server {name}")
    needle = f"CHAOSKIT_NODE={name}\0".encode()
    for pid in processes.marked(lab.marker):
        with contextlib.suppress(OSError):
            if needle in Path(f"/proc/{pid}/environ").read_bytes():
                found.append(f"process {pid} of node {name} is running")
    found += [f"cgroup {g} exists" for g in cgroups.node_groups(lab.lab_id, name) if g.exists()]
    found += [f"netns {n} exists" for n in netns.netns_list() if n == f"ck{lab.lab_id}-{name}"]
    return found
