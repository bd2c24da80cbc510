"""The lab's one seam between what is the same on every lab and what its nodes are made of.

A lab is always the same host parts (PostgreSQL, Toxiproxy, the bank simulator, HAProxy, all
host processes started by `lifecycle`) in front of nodes that run the stack (a gateway and a
worker on every node, the scheduler's leader and standby on the first two). Only the nodes
differ, and a `NodeRuntime` is everything that knows how:

    processes   host processes: a network namespace with cgroups per node as root, a process
                group on loopback otherwise (`process_runtime`; `mode` says which)
    containers  one container per node, from the stack image, on a lab network the engine
                makes (`containers.runtime`)

`lifecycle`, `teardown`, `status` and `platforms.local.LocalPlatform` ask `runtime_of(lab)` and
never look at what a node is: LocalPlatform stays the one adapter drivers and probes use, and
the same experiment runs on either runtime.
"""

from __future__ import annotations

from typing import Any, Protocol

from chaoskit.errors import PlatformError
from chaoskit.lab.state import LabState, NodeRecord, ProcessRecord
from chaoskit.platforms.abilities import OfflineProcess, OfflineWork

PROCESSES = "processes"
CONTAINERS = "containers"
RUNTIMES = (PROCESSES, CONTAINERS)
NODE_LOSS_MODES = ("kill", "freeze", "isolate")


class NodeRuntime(Protocol):
    """How a lab's nodes are made, lost, given back, added, shared and taken apart. Blocking
    calls; the caller holds the lab's state lock where it changes the state file."""

    name: str

    # -- building and taking apart (lifecycle, teardown) -------------------------------------
    def make_nodes(self, lab: LabState, count: int) -> None:
        """Node records (and whatever holds them: namespaces, a network), saved as made."""
        ...

    def place(self, lab: LabState, record: ProcessRecord) -> None:
        """Fit a planned stack record to its node (where it listens, how it is started)."""
        ...

    async def start_stack(self, lab: LabState, records: list[ProcessRecord]) -> None:
        """Start the planned stack records on their nodes (a runtime that waits on something
        slow, as an engine starting containers, lets the lab's other starts go on meanwhile)."""
        ...

    def host_ready(self, lab: LabState, timeout: float) -> None:
        """Wait until the host's address on the lab network exists (Toxiproxy binds there)."""
        ...

    def dead(self, lab: LabState) -> list[str]:
        """Ids of the lab's processes (host and node alike) that were started and are not
        running any more."""
        ...

    def remove_nodes(self, lab: LabState) -> None:
        """Stop and remove every node (and their network); best effort, audited after."""
        ...

    def audit(self, lab: LabState) -> list[str]:
        """What of the nodes is still there after `remove_nodes` (empty: nothing)."""
        ...

    def describe(self, lab: LabState) -> dict[str, Any]:
        """Runtime facts for `lab status` (engine, image, network)."""
        ...

    # -- node loss (LocalPlatform's NodeOperations) ------------------------------------------
    def node_loss_modes(self, lab: LabState) -> dict[str, str | None]: ...
    def lose(self, lab: LabState, node: str, mode: str) -> dict[str, Any]: ...
    def restore(self, lab: LabState, node: str, mode: str) -> dict[str, Any]: ...

    def restart(self, lab: LabState, node: str) -> list[str]:
        """The node's processes that were not running started again, as after a reboot."""
        ...

    def frozen(self, lab: LabState, node: str) -> bool: ...

    def link_up(self, lab: LabState, node: str) -> bool | None:
        """Whether the node is on the lab network (None: the node has no link of its own)."""
        ...

    def residue(self, lab: LabState, node: str) -> list[str]: ...

    # -- capacity ------------------------------------------------------------------------------
    def add_node(self, lab: LabState, name: str) -> NodeRecord: ...
    def remove_node(self, lab: LabState, name: str) -> None: ...
    def retire_node(self, lab: LabState, name: str, drain: float) -> list[str]: ...
    def departed_residue(self, lab: LabState, name: str) -> list[str]: ...

    # -- co-location ---------------------------------------------------------------------------
    def start_offline(self, lab: LabState, node: str, tag: str, work: OfflineWork) -> str: ...
    def offline_processes(self, lab: LabState, tag: str) -> list[OfflineProcess]: ...
    def stop_offline(self, lab: LabState, tag: str) -> list[str]: ...
    def offline_residue(self, lab: LabState, tag: str) -> list[str]: ...
    def offline_isolation(self, lab: LabState) -> str: ...
    def process_cpu_seconds(self, lab: LabState, process_id: str) -> float: ...


def runtime_of(lab: LabState) -> NodeRuntime:
    """The runtime a lab was made with (its state file says)."""
    if lab.runtime == CONTAINERS:
        from chaoskit.lab.containers.runtime import ContainerRuntime

        return ContainerRuntime()
    if lab.runtime == PROCESSES:
        from chaoskit.lab.process_runtime import ProcessRuntime

        return ProcessRuntime()
    raise PlatformError(f"the lab at {lab.dir} has an unknown runtime '{lab.runtime}'",
                        hint=f"known: {', '.join(RUNTIMES)}; recreate it with `chaoskit lab up`")
