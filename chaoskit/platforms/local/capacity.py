"""Changing a running lab: extra stack processes on a node, nodes joining and leaving."""

from __future__ import annotations

import contextlib
import signal
from ipaddress import IPv4Network

from chaoskit.errors import PlatformError
from chaoskit.platforms.local import addresses, haproxy, nodes, processes, state
from chaoskit.platforms.local.state import LabState, NodeRecord, ProcessRecord, logs_dir
from chaoskit.platforms.local.topology import STACK_SERVICES, instance_id

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


def add_node(lab: LabState) -> NodeRecord:
    """A new node with a gateway (joining HAProxy's rotation) and a worker (the lease pool)."""
    name = _unique_node_name(lab)
    index = int(name.rsplit("-", 1)[1]) - 1  # the number names the address and link: unique
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


def _unique_node_name(lab: LabState) -> str:
    taken = {n.name for n in lab.nodes}
    return next(f"node-{i}" for i in range(1, 1000) if f"node-{i}" not in taken)


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
