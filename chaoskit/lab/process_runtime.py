"""The processes runtime: every node a set of host processes, in a network namespace with its own
cgroups (netns mode, root) or a process group on loopback (process mode).

The node code itself lives in `nodes`, `capacity`, `offline` and `cgroups`/`netns`; this class is
how the rest of the lab reaches it through the `NodeRuntime` seam.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chaoskit.errors import PlatformError
from chaoskit.lab import addresses, capacity, cgroups, netns, nodes, offline, processes, state
from chaoskit.lab.runtime import NODE_LOSS_MODES, PROCESSES
from chaoskit.lab.state import LabState, NodeRecord, ProcessRecord
from chaoskit.platforms.abilities import OfflineProcess, OfflineWork


class ProcessRuntime:
    name = PROCESSES

    # -- building and taking apart -------------------------------------------------------------
    def make_nodes(self, lab: LabState, count: int) -> None:
        if lab.mode != nodes.NETNS:
            lab.nodes = [NodeRecord(f"node-{i + 1}", "127.0.0.1") for i in range(count)]
            return
        with addresses.network_lock():
            _refuse_taken_names(lab.lab_id)
            subnet = addresses.pick_subnet(addresses.networks_in_use())
            lab.subnet, lab.bridge = str(subnet), f"ck{lab.lab_id}"
            lab.host_ip = addresses.host_address(subnet)
            state.save(lab)
            netns.create_bridge(lab.bridge, f"{lab.host_ip}/{subnet.prefixlen}")
        for i in range(count):
            name = f"node-{i + 1}"
            node = NodeRecord(name, addresses.node_address(subnet, i),
                              netns=f"ck{lab.lab_id}-{name}", veth=f"ck{lab.lab_id}v{i + 1}")
            lab.nodes.append(node)
            state.save(lab)
            nodes.create(lab, node)
        state.save(lab)

    def place(self, lab: LabState, record: ProcessRecord) -> None:
        return None  # host processes listen where topology planned them

    async def start_stack(self, lab: LabState, records: list[ProcessRecord]) -> None:
        for record in records:  # no await: launched and noted before anything else runs
            nodes.launch(lab, record)
            state.save(lab)

    def host_ready(self, lab: LabState, timeout: float) -> None:
        return None  # the bridge got its address when it was made

    def dead(self, lab: LabState) -> list[str]:
        return [p.id for p in lab.processes if p.pid and not processes.alive(p.pid, p.started)]

    def remove_nodes(self, lab: LabState) -> None:
        for node in lab.nodes:
            nodes.destroy(lab, node)
        if lab.bridge:
            netns.delete_link(lab.bridge)
        if lab.mode == nodes.NETNS and lab.nodes:  # no node recorded: no cgroup of ours exists
            cgroups.remove(cgroups.lab_groups(lab.lab_id))
            cgroups.remove_top_if_empty()

    def audit(self, lab: LabState) -> list[str]:
        if lab.mode != nodes.NETNS:
            return []
        found = [f"cgroup {g} exists" for g in cgroups.lab_groups(lab.lab_id) if g.exists()]
        found += [f"netns {n.netns} exists" for n in lab.nodes if n.netns in netns.netns_list()]
        links = [lab.bridge] + [n.veth or "" for n in lab.nodes]
        return found + [f"link {name} exists" for name in links
                        if name and netns.link_exists(name)]

    def describe(self, lab: LabState) -> dict[str, Any]:
        return {}

    # -- node loss -----------------------------------------------------------------------------
    def node_loss_modes(self, lab: LabState) -> dict[str, str | None]:
        """kill and freeze everywhere; isolate only for netns nodes (root)."""
        no_link = ("isolate needs netns nodes (`chaoskit lab up` as root)"
                   if lab.mode != nodes.NETNS else None)
        return {"kill": None, "freeze": None, "isolate": no_link}

    def lose(self, lab: LabState, node: str, mode: str) -> dict[str, Any]:
        if mode == "kill":
            return {"killed_pids": nodes.kill(lab, node)}
        if mode == "freeze":
            nodes.set_frozen(lab, node, True)
        elif mode == "isolate":
            nodes.set_isolated(lab, node, True)
        else:
            raise _unknown_mode(mode)
        return {}

    def restore(self, lab: LabState, node: str, mode: str) -> dict[str, Any]:
        if mode == "kill":
            return {"restarted": self.restart(lab, node)}
        if mode == "freeze":
            nodes.set_frozen(lab, node, False)
        elif mode == "isolate" and lab.mode == nodes.NETNS and nodes.residue_link(lab, node):
            nodes.set_isolated(lab, node, False)
        return {}

    def restart(self, lab: LabState, node: str) -> list[str]:
        if nodes.frozen(lab, node):  # a rebooted machine is not hung any more
            nodes.set_frozen(lab, node, False)
        started = []
        for record in lab.processes_on(node):
            if not processes.alive(record.pid, record.started):
                nodes.launch(lab, record)
                started.append(record.id)
                state.save(lab)
        return started

    def frozen(self, lab: LabState, node: str) -> bool:
        return nodes.frozen(lab, node)

    def link_up(self, lab: LabState, node: str) -> bool | None:
        veth = lab.node(node).veth
        return netns.link_state(veth).get("up") == "yes" if veth else None

    def residue(self, lab: LabState, node: str) -> list[str]:
        return nodes.residue(lab, node)

    # -- capacity ------------------------------------------------------------------------------
    def add_node(self, lab: LabState, name: str) -> NodeRecord:
        return capacity.add_node(lab, name)

    def remove_node(self, lab: LabState, name: str) -> None:
        capacity.remove_node(lab, name)

    def retire_node(self, lab: LabState, name: str, drain: float) -> list[str]:
        return capacity.retire_node(lab, name, drain)

    def departed_residue(self, lab: LabState, name: str) -> list[str]:
        return capacity.departed_residue(lab, name)

    # -- co-location ---------------------------------------------------------------------------
    def start_offline(self, lab: LabState, node: str, tag: str, work: OfflineWork) -> str:
        return offline.start(lab, node, tag, work).id

    def offline_processes(self, lab: LabState, tag: str) -> list[OfflineProcess]:
        return offline.describe(lab, tag)

    def stop_offline(self, lab: LabState, tag: str) -> list[str]:
        return offline.stop(lab, tag)

    def offline_residue(self, lab: LabState, tag: str) -> list[str]:
        return offline.residue(lab, tag)

    def offline_isolation(self, lab: LabState) -> str:
        return offline.isolation_mechanism(lab)

    def process_cpu_seconds(self, lab: LabState, process_id: str) -> float:
        record = lab.process(process_id)
        return offline.cpu_seconds(record.pid if record else None)


def _unknown_mode(mode: str) -> PlatformError:
    return PlatformError(f"the local platform cannot {mode} a node",
                         hint=f"use one of {', '.join(NODE_LOSS_MODES)}")


def _refuse_taken_names(lab_id: str) -> None:
    """Kernel objects named after this lab must not exist yet: tearing down a failed start
    would otherwise remove another lab's (or a stale run's) bridge, namespaces or cgroups."""
    taken = [f"link ck{lab_id}"] if netns.link_exists(f"ck{lab_id}") else []
    taken += [f"netns {n}" for n in netns.netns_list() if n.startswith(f"ck{lab_id}-")]
    taken += [f"cgroup {g}" for g in cgroups.lab_groups(lab_id) if Path(g).exists()]
    if taken:
        raise PlatformError(f"kernel objects of lab id {lab_id} already exist: {', '.join(taken)}",
                            hint="a stale lab uses them: run `chaoskit lab down` for it, or pick "
                                 "another --name")
