"""What a platform can do: small protocols that drivers, probes and the engine ask for.

Every platform is a `Platform` (a name, a description for the journal, its nodes, a preflight).
Everything else is an *ability*, a small protocol a platform implements or not, in the spirit of
Toxiproxy's optional toxic interfaces and pytest's one hookspec file. A fault driver declares the
abilities it needs (`needs()`); the engine's preflight checks them all at once and names what is
missing ("the local platform cannot drain a node"). Code that wants an ability asks for it with
`require(platform, Ability, "what for")`: that is the one place a platform's attributes are
looked at, so there is no `getattr` anywhere else.

    addresses     Entry, Database, ToxiproxyAccess, MetricsTargets, PrometheusAddress, OwnHosts
    roles         Roles, PodPlacement
    nodes         NodeOperations (by mode), NodeHealth, WorkLeases, ClusterRecovery, AccessReview
    capacity      Capacity (+N), CapacityRetire (-N)
    co-location   Colocation, ProcessCpu
    load          DistributedLoad
    run binding   RunBinding
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ConfigDict

from chaoskit.errors import PlatformError

if TYPE_CHECKING:
    from chaoskit.load.plan import LoadPlan

A = TypeVar("A")


@dataclass(frozen=True)
class NodeInfo:
    """A failure domain: a netns+cgroup node in the lab, a container, a Node on Kubernetes."""

    name: str
    address: str
    roles: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class OfflineWork:
    """Offline (batch) work to run next to the online services, and how it is weighted."""

    work: str  # reconciliation | burner
    isolation: bool
    lifetime: float  # real seconds: the work stops by itself after this
    cpu: int = 2  # burner: busy workers
    memory: int = 0  # burner: resident bytes
    units: int | None = None  # reconciliation: units of work (the job's default if None)
    rounds: int | None = None  # reconciliation: PBKDF2 rounds per unit
    window: float = 60.0  # reconciliation: real seconds from its start to its deadline


@dataclass(frozen=True)
class OfflineProcess:
    """One offline process (running or finished) as a platform reports it."""

    id: str
    node: str
    work: str
    alive: bool
    metrics_url: str  # "" when it exports none (the burner)
    started_at: float | None  # epoch seconds
    cgroups: list[str] = field(default_factory=list)


# -- every platform ---------------------------------------------------------------------------
@runtime_checkable
class Platform(Protocol):
    """The core every platform has. Blocking methods; async callers use a thread."""

    name: str

    def describe(self) -> dict[str, Any]:
        """JSON-able, written to the journal header: enough to rebuild the platform (with
        `from_description`) in `chaoskit recover` and the watchdog."""
        ...

    def identity(self) -> str:
        """Where this platform acts (a lab's directory, a cluster context and namespace): two
        runs with the same identity share nodes, so a live run's claims keep the other off."""
        ...

    def nodes(self) -> list[NodeInfo]: ...

    async def preflight(self) -> list[str]:
        """Problems that stop a run before anything is injected (unreachable, no permission)."""
        ...


class PlatformConfig(BaseModel):
    """A platform's own `target:` fields (besides platform, entry, database, toxiproxy,
    proxies and scope); platforms subclass it. Unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class PlatformClass(Protocol):
    """What the registry holds: a class building a platform from a target or a journal."""

    Config: type[PlatformConfig]

    def from_target(self, target: Any) -> Platform: ...
    def from_description(self, description: dict[str, Any]) -> Platform: ...


# -- addresses --------------------------------------------------------------------------------
@runtime_checkable
class Entry(Protocol):
    """The base URL clients reach the system through (a load balancer, a Service)."""

    def entry_url(self) -> str: ...


@runtime_checkable
class Database(Protocol):
    """The system's database, read directly (never through a faulty proxy) by probes."""

    def database_url(self) -> str: ...


@runtime_checkable
class ToxiproxyAccess(Protocol):
    """The Toxiproxy serving the platform's proxies, and proxies to create if missing."""

    def toxiproxy_url(self) -> str: ...
    def declared_proxies(self) -> list[dict[str, str]]: ...


@runtime_checkable
class MetricsTargets(Protocol):
    """Instance -> /metrics URL of the system's processes (leaving out one node's on request)."""

    def metrics_targets(self, exclude_node: str | None = None) -> dict[str, str]: ...


@runtime_checkable
class PrometheusAddress(Protocol):
    def prometheus_url(self) -> str: ...


@runtime_checkable
class OwnHosts(Protocol):
    """Hosts (names or CIDRs) the platform created itself: load may go there without scope."""

    def own_hosts(self) -> list[str]: ...


# -- roles ------------------------------------------------------------------------------------
@runtime_checkable
class Roles(Protocol):
    """Which node hosts a role of the system ('scheduler-leader', 'worker-most-leases', ...)."""

    def roles(self) -> tuple[str, ...]: ...
    def node_for_role(self, role: str) -> str: ...


# -- nodes ------------------------------------------------------------------------------------
@runtime_checkable
class PodPlacement(Protocol):
    """Where a cluster's pods run: for roles declared as a label selector or a Lease."""

    def nodes_of_pods(self, selector: str) -> list[str]:
        """Nodes of the running pods matching `selector` (in scope), by pod name."""
        ...

    def lease_holder_node(self, namespace: str, name: str) -> str:
        """The node of the pod that holds a coordination.k8s.io Lease."""
        ...

    def node_of_pod(self, pod: str) -> str:
        """The node a pod (in scope) runs on."""
        ...


@runtime_checkable
class NodeOperations(Protocol):
    """Losing a node by mode (kill, freeze, isolate, stop, drain, node-down, ...) and undoing it.

    `node_loss_modes()` maps each mode the platform knows to None when it works here, or to
    why it does not (e.g. isolate needs root). `restore_node` is idempotent.
    """

    def node_loss_modes(self) -> dict[str, str | None]: ...
    def lose_node(self, node: str, mode: str) -> dict[str, Any]: ...
    def restore_node(self, node: str, mode: str) -> dict[str, Any]: ...
    def node_residue(self, node: str) -> list[str]: ...


@runtime_checkable
class NodeHealth(Protocol):
    """Health URLs of a node's processes: a restored node is back when they all answer 200."""

    def node_health_urls(self, node: str) -> dict[str, str]: ...


@runtime_checkable
class WorkLeases(Protocol):
    """Work leases held by a node's workers (a lost node's leases must be taken over)."""

    def leases_held(self, node: str) -> int: ...


@runtime_checkable
class ClusterRecovery(Protocol):
    """A platform that heals itself reports its own recovery after a node loss."""

    async def watch_recovery(self, node: str, mode: str, timeout: float) -> dict[str, Any]: ...


@runtime_checkable
class AccessReview(Protocol):
    """Permissions the platform's identity lacks for a fault (names each missing verb)."""

    def missing_access(self, fault_type: str, mode: str = "") -> list[str]: ...


# -- capacity ---------------------------------------------------------------------------------
@runtime_checkable
class Capacity(Protocol):
    """Adding capacity units (nodes, replicas) that join the entry, and removing them."""

    def next_node_names(self, count: int) -> list[str]: ...
    def add_node(self, name: str | None = None) -> str: ...
    def drain_gateway(self, name: str, timeout: float) -> float: ...
    def remove_node(self, name: str) -> None: ...
    def entry_states(self) -> dict[str, str]: ...
    def departed_residue(self, name: str) -> list[str]: ...


@runtime_checkable
class CapacityRetire(Protocol):
    """Taking existing capacity out (drained, stopped) and giving it back."""

    def retire_node(self, name: str, drain: float) -> list[str]: ...
    def return_node(self, name: str) -> list[str]: ...
    def entry_states(self) -> dict[str, str]: ...
    def node_residue(self, node: str) -> list[str]: ...


# -- co-location ------------------------------------------------------------------------------
@runtime_checkable
class Colocation(Protocol):
    """Offline work on the online nodes; `tag` is the fault's own, to find it again."""

    def start_offline(self, node: str, tag: str, work: OfflineWork) -> str: ...
    def offline_processes(self, tag: str) -> list[OfflineProcess]: ...
    def stop_offline(self, tag: str) -> list[str]: ...
    def offline_residue(self, tag: str) -> list[str]: ...
    def offline_isolation(self) -> str: ...


@runtime_checkable
class ProcessCpu(Protocol):
    """CPU seconds a process used (the offline share actually taken)."""

    def process_cpu_seconds(self, process_id: str) -> float: ...


# -- load -------------------------------------------------------------------------------------
@runtime_checkable
class DistributedLoad(Protocol):
    """The inject phase's load sent from many machines (a Job), merged into one report."""

    def start_load_job(self, plan: LoadPlan, *, pods: int, start_at: float) -> str: ...
    def load_reports_ready(self, job: str) -> int: ...
    def collect_load(self, job: str, pods: int, timeout: float) -> dict[str, Any]: ...
    def stop_load_job(self, job: str) -> None: ...


# -- run binding ------------------------------------------------------------------------------
@runtime_checkable
class RunBinding(Protocol):
    """Marks everything it changes with the run's id (called before anything is injected)."""

    def bind_run(self, run_id: str) -> None: ...


ALL_ABILITIES: tuple[type, ...] = (
    Entry, Database, ToxiproxyAccess, MetricsTargets, PrometheusAddress, OwnHosts, Roles,
    PodPlacement,
    NodeOperations, NodeHealth, WorkLeases, ClusterRecovery, AccessReview, Capacity,
    CapacityRetire, Colocation, ProcessCpu, DistributedLoad, RunBinding)


# -- asking -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Need:
    """An ability a fault needs, and what for ("drain a node"); `mode` for NodeOperations."""

    ability: type
    doing: str
    mode: str | None = None


def platform_name(platform: object) -> str:
    return platform.name if isinstance(platform, Platform) else type(platform).__name__


def offers(platform: object, ability: type) -> bool:
    return isinstance(platform, ability)


def require(platform: object, ability: type[A], doing: str) -> A:
    """The platform as `ability`, or a PlatformError saying what it cannot do."""
    if isinstance(platform, ability):
        return platform
    raise PlatformError(f"the {platform_name(platform)} platform cannot {doing}",
                        hint=f"use a platform offering {ability.__name__} "
                             "(see ARCHITECTURE.md, 'platforms')")


def missing(platform: object, needs: Iterable[Need]) -> list[str]:
    """Every need the platform does not meet, as one sentence each."""
    problems = []
    for need in needs:
        if not isinstance(platform, need.ability):
            problems.append(f"the {platform_name(platform)} platform cannot {need.doing}")
        elif need.mode is not None and isinstance(platform, NodeOperations):
            problems += _mode_problem(platform, need)
    return problems


def _mode_problem(platform: NodeOperations, need: Need) -> list[str]:
    modes = platform.node_loss_modes()
    name = platform_name(platform)
    if need.mode not in modes:
        return [f"the {name} platform cannot {need.doing} (its node-loss modes: "
                f"{', '.join(sorted(modes))})"]
    why = modes[need.mode or ""]
    return [f"the {name} platform cannot {need.doing} here: {why}"] if why else []
