"""ContainerRuntime: a lab's nodes as containers (the NodeRuntime of `--runtime containers`).

Node loss reuses the containers platform's node code, so a container node is lost and given
back exactly as a user's container is: a mark volume (labelled with the lab's run label) is
written before acting, and restoring follows it from any process (the watchdog, `recover`).

    kill     SIGKILL to the container (every service at once); started again at revert
    freeze   pause (the cgroup freezer: sockets stay open); unpause
    isolate  disconnected from the lab network; reconnected at the same address and MAC

Co-location is the containers platform's batch container: on the node container's CPUs, with
cpu.shares 2 against the node's 1024 when isolated. Capacity adds node containers (a gateway
that joins HAProxy through its runtime API, and a worker) and removes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from ipaddress import IPv4Network
from typing import Any

import docker
from docker.errors import DockerException
from requests import RequestException

from chaoskit.errors import PlatformError
from chaoskit.lab import addresses, capacity, haproxy, netns, processes, state
from chaoskit.lab.containers import engine, network, node, sweep
from chaoskit.lab.containers.engine import LAB, lab_run
from chaoskit.lab.runtime import CONTAINERS, NODE_LOSS_MODES
from chaoskit.lab.state import LabState, NodeRecord, ProcessRecord, logs_dir
from chaoskit.platforms.abilities import OfflineProcess, OfflineWork
from chaoskit.platforms.containers import colocation, marks
from chaoskit.platforms.containers import nodes as losses
from chaoskit.platforms.containers.views import NODE

PER_SERVICE_ENV = ("CHAOSKIT_LISTEN", "CHAOSKIT_NODE", "CHAOSKIT_INSTANCE")
MODE = "container"  # LabState.mode of a containers lab: the kind of its nodes


class ContainerRuntime:
    name = CONTAINERS

    def _client(self, lab: LabState) -> docker.DockerClient:
        return engine.client(lab)

    # -- building and taking apart -------------------------------------------------------------
    def make_nodes(self, lab: LabState, count: int) -> None:
        network.create(self._client(lab), lab)
        subnet = IPv4Network(lab.subnet)
        for i in range(count):
            name = f"node-{i + 1}"
            lab.nodes.append(NodeRecord(name, addresses.node_address(subnet, i),
                                        container=node.container_name(lab, name)))
        state.save(lab)

    def place(self, lab: LabState, record: ProcessRecord) -> None:
        node.place(lab.node(record.node or ""), record)

    async def start_stack(self, lab: LabState, records: list[ProcessRecord]) -> None:
        """One container per node, started side by side while initdb and Toxiproxy start."""
        await asyncio.to_thread(self._start_all, lab, records)

    def _start_all(self, lab: LabState, records: list[ProcessRecord]) -> None:
        client = self._client(lab)
        per_node = [(n, [r for r in records if r.node == n.name]) for n in lab.nodes]
        with ThreadPoolExecutor(max(1, len(per_node))) as pool:
            list(pool.map(lambda pair: node.start(client, lab, *pair), per_node))

    def host_ready(self, lab: LabState, timeout: float) -> None:
        network.wait_host_address(lab, timeout)

    def dead(self, lab: LabState) -> list[str]:
        found = [p.id for p in lab.processes
                 if p.node is None and p.pid and not processes.alive(p.pid, p.started)]
        ended = _ended_nodes(self._client(lab), lab)
        return found + [p.id for p in lab.processes if p.node in ended]

    def remove_nodes(self, lab: LabState) -> None:
        if not lab.engine:
            return  # `lab up` stopped before it chose an engine: nothing of it is there
        try:
            sweep.remove(self._client(lab), lab)
        except Exception:  # noqa: BLE001 - the audit after this names whatever is left
            return

    def audit(self, lab: LabState) -> list[str]:
        found = [f"link {lab.bridge} exists"] if lab.bridge and netns.link_exists(lab.bridge) \
            else []
        if not lab.engine:
            return found
        try:
            return found + sweep.residue(self._client(lab), lab)
        except Exception as exc:  # noqa: BLE001 - an engine that does not answer is residue
            return [*found, f"the engine at {lab.engine} could not be asked what is left: {exc}"]

    def describe(self, lab: LabState) -> dict[str, Any]:
        return {"engine": lab.engine, "image": lab.image, "network": lab.network}

    # -- node loss -----------------------------------------------------------------------------
    def node_loss_modes(self, lab: LabState) -> dict[str, str | None]:
        return dict.fromkeys(NODE_LOSS_MODES)

    def lose(self, lab: LabState, name: str, mode: str) -> dict[str, Any]:
        if mode not in NODE_LOSS_MODES:
            raise PlatformError(f"the local platform cannot {mode} a node",
                                hint=f"use one of {', '.join(NODE_LOSS_MODES)}")
        client = self._client(lab)
        view = node.require_view(client, lab, name)
        facts = losses.lose(client, view, name, mode, lab_run(lab))
        if mode == "kill":
            facts["killed"] = [p.id for p in lab.processes_on(name)]
        return facts

    def restore(self, lab: LabState, name: str, mode: str) -> dict[str, Any]:
        """Undo the node's loss marks; a killed node is started even without one (as the
        processes runtime restarts whatever of a node is not running)."""
        client = self._client(lab)
        view = node.require_view(client, lab, name)
        facts: dict[str, Any] = {"undone": losses.restore(client, view.id)}
        if mode == "kill":
            self.restart(lab, name)
            facts["restarted"] = [] if view.running else [p.id for p in lab.processes_on(name)]
        return facts

    def restart(self, lab: LabState, name: str) -> list[str]:
        client = self._client(lab)
        view = node.require_view(client, lab, name)
        if view.status == "paused":
            client.api.unpause(view.id)
        if view.status in ("running", "paused", "restarting"):
            return []
        client.api.start(view.id)
        return [p.id for p in lab.processes_on(name)]

    def frozen(self, lab: LabState, name: str) -> bool:
        view = node.view(self._client(lab), lab, name)
        return view is not None and view.status == "paused"

    def link_up(self, lab: LabState, name: str) -> bool | None:
        view = node.view(self._client(lab), lab, name)
        return view is not None and any(e.network == lab.network for e in view.endpoints)

    def residue(self, lab: LabState, name: str) -> list[str]:
        client = self._client(lab)
        return losses.residue(client, node.view(client, lab, name), name)

    # -- capacity ------------------------------------------------------------------------------
    def add_node(self, lab: LabState, name: str) -> NodeRecord:
        """A node container with a gateway (joining HAProxy's rotation) and a worker."""
        index = capacity.new_node_index(lab, name)
        added = NodeRecord(name, addresses.node_address(IPv4Network(lab.subnet), index),
                           roles=list(capacity.SCALE_SERVICES),
                           container=node.container_name(lab, name))
        records = [_copy_of(lab, added, service) for service in capacity.SCALE_SERVICES]
        lab.nodes.append(added)
        lab.processes.extend(records)
        state.save(lab)
        node.start(self._client(lab), lab, added, records)
        haproxy.add_gateway(lab.haproxy_socket, name, records[0].listen)
        return added

    def remove_node(self, lab: LabState, name: str) -> None:
        record = lab.node(name)
        if any(p.service == "gateway" for p in lab.processes_on(name)):
            with contextlib.suppress(OSError):  # HAProxy gone: no rotation to leave
                haproxy.remove_gateway(lab.haproxy_socket, name)
        client = self._client(lab)
        view = node.view(client, lab, name)
        if view is not None:
            for mark in marks.find(client, container=view.id):
                marks.remove(client, mark)
            sweep.remove_container(client, view.id)
        lab.processes = [p for p in lab.processes if p.node != name]
        lab.nodes.remove(record)
        state.save(lab)

    def retire_node(self, lab: LabState, name: str, drain: float) -> list[str]:
        """Drained out of rotation, then its container stopped (SIGTERM, SIGKILL after the
        grace); records kept, so `restart` brings it back as it was."""
        with contextlib.suppress(OSError):
            capacity.drain_gateway(lab.haproxy_socket, name, drain)
        client = self._client(lab)
        client.api.stop(node.require_view(client, lab, name).id, timeout=node.STOP_GRACE)
        return [p.id for p in lab.processes_on(name)]

    def departed_residue(self, lab: LabState, name: str) -> list[str]:
        found = [f"node {name} is still in the lab" for n in lab.nodes if n.name == name]
        if name in haproxy.server_states(lab.haproxy_socket):
            found.append(f"HAProxy still has a server {name}")
        left = self._client(lab).containers.list(
            all=True, filters={"label": [f"{LAB}={lab.lab_id}", f"{NODE}={name}"]})
        return found + [f"container {c.name} of node {name} exists" for c in left]

    # -- co-location ---------------------------------------------------------------------------
    def start_offline(self, lab: LabState, name: str, tag: str, work: OfflineWork) -> str:
        client = self._client(lab)
        online = node.require_view(client, lab, name)
        batch = colocation.container_name(tag, name)
        shared = _shared_env(lab)
        base = colocation.environment(work, batch, name, shared.get("CHAOSKIT_DATABASE_URL"), {})
        extra = {k: v for k, v in shared.items() if k not in base}
        return colocation.start(client, online, name, tag, work, lab_run(lab), lab.image,
                                {**base, **extra})

    def offline_processes(self, lab: LabState, tag: str) -> list[OfflineProcess]:
        return colocation.processes(self._client(lab), tag)

    def stop_offline(self, lab: LabState, tag: str) -> list[str]:
        return colocation.stop(self._client(lab), tag)

    def offline_residue(self, lab: LabState, tag: str) -> list[str]:
        return colocation.residue(self._client(lab), tag)

    def offline_isolation(self, lab: LabState) -> str:
        return (f"container cpu.shares {colocation.OFFLINE_SHARES} against the node "
                f"containers' {colocation.ONLINE_SHARES}, on the same CPUs")

    def process_cpu_seconds(self, lab: LabState, process_id: str) -> float:
        """A batch container's CPU seconds; for a stack process, its node container's."""
        record = lab.process(process_id)
        if record is not None and record.node:
            return colocation.cpu_seconds(self._client(lab), lab.node(record.node).container
                                          or "")
        return colocation.cpu_seconds(self._client(lab), process_id)


_ended: dict[str, tuple[float, set[str]]] = {}  # lab id -> (when listed, nodes not running)
ENDED_TTL = 0.3  # `lab up` polls `dead` every 50 ms while it waits for health


def _ended_nodes(client: docker.DockerClient, lab: LabState) -> set[str]:
    """Nodes whose container exited: one list call (no inspect per container), reused for
    ENDED_TTL seconds."""
    listed_at, ended = _ended.get(lab.lab_id, (0.0, set()))
    if time.monotonic() - listed_at < ENDED_TTL:
        return ended
    try:
        summaries = client.api.containers(all=True, filters={"label": f"{LAB}={lab.lab_id}"})
    except (DockerException, RequestException) as exc:
        raise PlatformError(f"the container engine at {lab.engine} does not answer: {exc}",
                            hint="start it again (chaoskit starts its Podman service on "
                                 "`lab up`), then `chaoskit lab status`") from exc
    ended = {str((c.get("Labels") or {}).get(NODE)) for c in summaries
             if c.get("State") not in ("running", "paused", "created")}
    _ended[lab.lab_id] = (time.monotonic(), ended)
    return ended


def _shared_env(lab: LabState) -> dict[str, str]:
    """The environment every stack process of the lab shares (DB and banks through
    Toxiproxy, time scale, promises, `lab up --env`)."""
    template = next((p for p in lab.processes if p.node), None)
    if template is None:
        raise PlatformError("the lab has no stack process to copy settings from",
                            hint="recreate the lab with `chaoskit lab up`")
    return {k: v for k, v in template.env.items() if k not in PER_SERVICE_ENV}


def _copy_of(lab: LabState, added: NodeRecord, service: str) -> ProcessRecord:
    """A record of `service` on a new node, with the lab's shared environment."""
    ident = f"{service}-{added.name}"
    record = ProcessRecord(ident, service, added.name, [], {
        **_shared_env(lab), "CHAOSKIT_NODE": added.name, "CHAOSKIT_INSTANCE": ident},
        str(logs_dir(lab) / f"{ident}.log"))
    node.place(added, record)
    return record

