"""LocalPlatform: what fault drivers, probes and the engine may ask of a local lab."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import Field

from chaoskit import toxiproxy
from chaoskit.errors import ChaoskitError, PermissionMissing, PlatformError
from chaoskit.lab import capacity, cgroups, health, nodes, state
from chaoskit.lab.runtime import NODE_LOSS_MODES, PROCESSES, NodeRuntime, runtime_of
from chaoskit.lab.state import LabState
from chaoskit.platforms.abilities import NodeInfo, OfflineProcess, OfflineWork, PlatformConfig

STACK = ("gateway", "worker", "scheduler", "bank", "offline")
T = TypeVar("T")


class LocalConfig(PlatformConfig):
    lab: str | None = Field(default=None, description="the lab's name or state directory "
                            "(default: the lab `chaoskit lab up` started)")


class LocalPlatform:
    """A lab found by name or state directory; every call re-reads its state file, so two
    processes (the runner and the watchdog) see the same pids after a node restart.

    Abilities: Entry, Database, ToxiproxyAccess, MetricsTargets, OwnHosts,
    NodeOperations (kill, freeze, isolate), NodeHealth, Capacity, CapacityRetire, Colocation,
    ProcessCpu. It knows nothing of the stack it runs: the stack's roles, flows and books are
    declared in experiments/systems/reference-stack.yaml like any user's.

    What a node is (host processes in a netns or on loopback, or a container) is the lab's
    runtime's business (`chaoskit.lab.runtime`): node operations, capacity and co-location go
    through `runtime_of(lab)`, so the same abilities hold on every runtime.
    """

    name = "local"
    Config = LocalConfig

    def __init__(self, lab: str | Path | None = None, toxiproxy_url: str | None = None,
                 proxies: list[dict[str, str]] | None = None) -> None:
        self.dir = state.lab_dir(str(lab) if lab is not None else None)
        self._toxiproxy = toxiproxy_url
        self._declared = list(proxies or [])

    @classmethod
    def from_target(cls, target: Any) -> LocalPlatform:
        config = LocalConfig.model_validate(target.options())
        declared = [p.model_dump() for p in target.proxies]
        return cls(config.lab, target.toxiproxy, declared)

    @classmethod
    def from_description(cls, desc: dict[str, Any]) -> LocalPlatform:
        return cls(desc["lab_dir"], desc.get("toxiproxy"), desc.get("proxies"))

    def describe(self) -> dict[str, Any]:
        return {"platform": "local", "lab_dir": str(self.dir), "toxiproxy": self._toxiproxy,
                "proxies": self._declared}

    def identity(self) -> str:
        return str(self.dir.resolve())

    def lab(self) -> LabState:
        return state.load(self.dir)

    def running_lab(self) -> LabState:
        """The lab's state, refusing one that is not up: its addresses would lead nowhere."""
        if not state.exists(self.dir):
            raise PlatformError(f"no lab at {self.dir}",
                                hint="start one with `chaoskit lab up` (target.lab names it)")
        lab = self.lab()
        if lab.status not in ("up", "creating"):
            raise PlatformError(f"the lab at {self.dir} is {lab.status}",
                                hint="start it with `chaoskit lab up` (target.lab names it)")
        return lab

    # -- addresses -------------------------------------------------------------------------
    def toxiproxy_url(self) -> str:
        return self._toxiproxy or self.running_lab().toxiproxy_api

    def declared_proxies(self) -> list[dict[str, str]]:
        return list(self._declared)

    def entry_url(self) -> str:
        return self.running_lab().entry_url

    def database_url(self) -> str:
        """Direct to PostgreSQL, not through Toxiproxy: probes must see the truth."""
        return self.lab().postgres_url

    def metrics_targets(self, exclude_node: str | None = None) -> dict[str, str]:
        """Instance -> /metrics URL of every stack process (the bank included), optionally
        leaving out one node's (to read what the survivors of a node loss say)."""
        return {p.id: f"http://{p.listen}/metrics" for p in self.lab().processes
                if p.service in STACK and (exclude_node is None or p.node != exclude_node)}

    def own_hosts(self) -> list[str]:
        """Loopback, and the lab's own subnet (its nodes' addresses)."""
        hosts = ["127.0.0.0/8", "localhost"]
        subnet = self.lab().subnet if state.exists(self.dir) else None
        return hosts + ([subnet] if subnet else [])

    def nodes(self) -> list[NodeInfo]:
        lab = self.lab()
        return [NodeInfo(n.name, n.address, tuple(n.roles),
                         {"mode": lab.mode, "runtime": lab.runtime})
                for n in lab.nodes]

    # -- node operations (blocking; drivers call them in a thread) ---------------------------
    def node_loss_modes(self) -> dict[str, str | None]:
        """What the lab's runtime offers; netns nodes need root besides."""
        lab = self.lab()
        need_root = ("the lab's nodes are network namespaces: run chaoskit as root"
                     if lab.mode == nodes.NETNS and os.geteuid() != 0 else None)
        return {mode: need_root or why
                for mode, why in runtime_of(lab).node_loss_modes(lab).items()}

    def lose_node(self, node: str, mode: str) -> dict[str, Any]:
        if mode not in NODE_LOSS_MODES:
            raise PlatformError(f"the local platform cannot {mode} a node",
                                hint=f"use one of {', '.join(NODE_LOSS_MODES)}")
        return self._node_op(node, lambda runtime, lab: runtime.lose(lab, node, mode))

    def restore_node(self, node: str, mode: str) -> dict[str, Any]:
        """Idempotent: a node that is already itself is left alone."""
        return self._node_op(node, lambda runtime, lab: runtime.restore(lab, node, mode))

    def kill_node(self, name: str) -> list[int]:
        """SIGKILL every process of the node; returns the pids killed (none for a container:
        the engine kills it whole)."""
        return list(self.lose_node(name, "kill").get("killed_pids", []))

    def restart_node(self, name: str) -> list[str]:
        """Start the node's processes that are not running, as after a reboot."""
        return self._node_op(name, lambda runtime, lab: runtime.restart(lab, name))

    def freeze_node(self, name: str) -> None:
        self.lose_node(name, "freeze")

    def thaw_node(self, name: str) -> None:
        self.restore_node(name, "freeze")

    def isolate_node(self, name: str) -> None:
        self.lose_node(name, "isolate")

    def reconnect_node(self, name: str) -> None:
        self.restore_node(name, "isolate")

    def _node_op(self, name: str, operation: Callable[[NodeRuntime, LabState], T]) -> T:
        with state.locked(self.dir):
            lab = self._for_node_ops(name)
            return operation(runtime_of(lab), lab)

    def _for_node_ops(self, name: str) -> LabState:
        """The lab, after checking the node exists and we may touch it (netns nodes, their
        cgroups and root-owned processes need root)."""
        lab = self.lab()
        lab.node(name)
        if lab.mode == nodes.NETNS and os.geteuid() != 0:
            raise PermissionMissing(f"node operations on the lab '{lab.name}' need root: its "
                                    "nodes are network namespaces with root-owned processes",
                                    hint="run chaoskit as root (e.g. with sudo)")
        return lab

    def node_residue(self, name: str) -> list[str]:
        lab = self.lab()
        return runtime_of(lab).residue(lab, name)

    def node_health_urls(self, name: str) -> dict[str, str]:
        return {p.id: p.health for p in self.lab().processes_on(name) if p.health}

    # -- capacity and co-location (the scale and colocate drivers) ---------------------------
    def start_service(self, node: str, service: str, env: dict[str, str] | None = None) -> str:
        """Start one more stack process (e.g. `offline`) on a node; returns its process id.
        Host-process nodes only: a container node runs the services it was made with."""
        with state.locked(self.dir):
            lab = self.lab()
            if lab.runtime != PROCESSES:
                raise PlatformError(f"the lab '{lab.name}' runs its nodes as containers, which "
                                    "run the services they were made with",
                                    hint="offline work: the colocate fault (a batch container)")
            return capacity.start_service(lab, node, service, env).id

    def stop_service(self, process_id: str) -> None:
        with state.locked(self.dir):
            capacity.stop_service(self.lab(), process_id)

    def add_node(self, name: str | None = None) -> str:
        """A new node with a gateway in HAProxy's rotation and a worker; returns its name."""
        with state.locked(self.dir):
            lab = self.lab()
            return runtime_of(lab).add_node(lab, name or capacity.free_node_name(lab)).name

    def next_node_names(self, count: int) -> list[str]:
        return capacity.next_node_names(self.lab(), count)

    def drain_gateway(self, name: str, timeout: float) -> float:
        """Out of HAProxy's rotation once requests in flight are done (bounded); seconds."""
        return capacity.drain_gateway(self.lab().haproxy_socket, name, timeout)

    def retire_node(self, name: str, drain: float) -> list[str]:
        return self._node_op(name, lambda runtime, lab: runtime.retire_node(lab, name, drain))

    def return_node(self, name: str) -> list[str]:
        """A retired node back: its processes started, its gateway back in rotation."""
        started = self.restart_node(name)
        capacity.return_to_rotation(self.lab(), name)
        return started

    def entry_states(self) -> dict[str, str]:
        """HAProxy's view of each gateway server ('UP', 'DOWN', 'MAINT', ...)."""
        return capacity.entry_states(self.lab())

    def departed_residue(self, name: str) -> list[str]:
        lab = self.lab()
        return runtime_of(lab).departed_residue(lab, name)

    def remove_node(self, name: str) -> None:
        with state.locked(self.dir):
            lab = self.lab()
            runtime_of(lab).remove_node(lab, name)

    def start_offline(self, node: str, tag: str, work: OfflineWork) -> str:
        """Offline work on a node, tagged so it is found again by the fault that started it."""
        return self._node_op(node, lambda runtime, lab: runtime.start_offline(lab, node, tag,
                                                                              work))

    def offline_processes(self, tag: str) -> list[OfflineProcess]:
        lab = self.lab()
        return runtime_of(lab).offline_processes(lab, tag)

    def stop_offline(self, tag: str) -> list[str]:
        with state.locked(self.dir):
            lab = self.lab()
            return runtime_of(lab).stop_offline(lab, tag)

    def offline_residue(self, tag: str) -> list[str]:
        lab = self.lab()
        return runtime_of(lab).offline_residue(lab, tag)

    def offline_isolation(self) -> str:
        """How isolation is done here: 'cgroup cpu.shares 2' (netns nodes), 'nice 19', or the
        batch container's cpu.shares (container nodes)."""
        lab = self.lab()
        return runtime_of(lab).offline_isolation(lab)

    def process_cpu_seconds(self, process_id: str) -> float:
        """CPU seconds used so far by a lab process and its children (live ones)."""
        lab = self.lab()
        return runtime_of(lab).process_cpu_seconds(lab, process_id)

    def node_cgroup(self, node: str, controller: str) -> str | None:
        """The node's cgroup directory for a v1 controller (cpu, cpuset, memory, freezer);
        None for loopback and container nodes, which have none of the lab's."""
        lab = self.lab()
        lab.node(node)
        if lab.mode != nodes.NETNS:
            return None
        return str(cgroups.ROOT / controller / cgroups.TOP / lab.lab_id / node)

    def process_health_url(self, process_id: str) -> str:
        record = self.lab().process(process_id)
        if record is None:
            raise PlatformError(f"no lab process '{process_id}'", hint="see `chaoskit lab status`")
        return record.health

    # -- preflight --------------------------------------------------------------------------
    async def preflight(self) -> list[str]:
        if not state.exists(self.dir):
            return [f"no lab at {self.dir}: start one with `chaoskit lab up`"]
        lab = self.lab()
        try:
            problems = [f"lab process {p} is not running" for p in runtime_of(lab).dead(lab)]
        except ChaoskitError as exc:
            problems = [f"{exc.message} ({exc.hint})" if exc.hint else exc.message]
        if lab.mode == nodes.NETNS and os.geteuid() != 0:
            problems.append("the lab's nodes are network namespaces: run chaoskit as root")
        async with health.client(2.0) as http:
            if not await health.healthy(http, f"{lab.entry_url}/healthz"):
                problems.append(f"the lab's entry {lab.entry_url} is not healthy")
        try:
            await asyncio.to_thread(toxiproxy.ToxiproxyServer(self.toxiproxy_url()).version)
        except PlatformError as exc:
            problems.append(exc.message)
        return problems

