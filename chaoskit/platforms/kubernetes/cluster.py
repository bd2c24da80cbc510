"""Our seam to a cluster: the few API calls chaoskit makes, as plain views (fakes plug in here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

# Every object chaoskit changes carries RUN (which run) and, where selection needs a label,
# MANAGED; the other keys say what to undo, so recovery works from the cluster alone.
RUN = "chaoskit.io/run"
MANAGED = "chaoskit.io/managed"
CORDONED = "chaoskit.io/cordoned"       # on a Node: chaoskit set unschedulable (undo it)
NODE_DOWN = "chaoskit.io/node-down"     # taint key; also the node annotation naming the fault
ISOLATED = "chaoskit.io/isolated"       # pod label selecting it into a deny-all NetworkPolicy
REPLICAS = "chaoskit.io/original-replicas"  # on a Deployment chaoskit scaled


@dataclass(frozen=True)
class NodeView:
    name: str
    address: str
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    unschedulable: bool = False
    taints: tuple[dict[str, str], ...] = ()
    ready: bool = True


@dataclass(frozen=True)
class PodView:
    name: str
    namespace: str
    node: str
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    phase: str = "Running"
    owner_kind: str = ""
    deleting: bool = False


@dataclass(frozen=True)
class ObjectView:
    """A namespaced object chaoskit creates, marks or reads (policies, Jobs, workloads, reports)."""

    kind: str
    name: str
    namespace: str
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    replicas: int | None = None       # workloads: asked for
    ready: int | None = None          # workloads: ready now
    data: dict[str, str] = field(default_factory=dict)  # ConfigMaps
    uid: str = ""                     # for ownerReferences


@dataclass(frozen=True)
class Access:
    """One verb on one resource, as SelfSubjectAccessReview asks it."""

    verb: str
    resource: str
    group: str = ""
    subresource: str = ""
    namespaced: bool = True

    def describe(self, namespace: str | None) -> str:
        what = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        what = f"{what}.{self.group}" if self.group else what
        where = f" in namespace {namespace}" if self.namespaced and namespace else ""
        return f"{self.verb} on {what}{where}"


@dataclass(frozen=True)
class PodScope:
    """The blast radius on a cluster: these namespaces, pods matching this label selector."""

    namespaces: tuple[str, ...]
    selector: str = ""

    @classmethod
    def of(cls, namespaces: list[str], selectors: dict[str, str]) -> PodScope:
        return cls(tuple(namespaces), ",".join(f"{k}={v}" for k, v in sorted(selectors.items())))

    def as_dict(self) -> dict[str, Any]:
        return {"namespaces": list(self.namespaces), "selector": self.selector}


class EvictionRefused(Exception):
    """The Eviction API said no (429: a PodDisruptionBudget would be violated)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason


class ClusterApi(Protocol):
    """Blocking calls; the platform runs them in a thread. Names follow the Kubernetes verbs."""

    def list_nodes(self) -> list[NodeView]: ...
    def patch_node(self, name: str, body: dict[str, Any]) -> None: ...
    def list_pods(self, namespace: str, selector: str = "", node: str = "") -> list[PodView]: ...
    def delete_pod(self, namespace: str, name: str, grace: int = 0) -> None: ...
    def evict_pod(self, namespace: str, name: str) -> None: ...
    def patch_pod(self, namespace: str, name: str, body: dict[str, Any]) -> None: ...
    def list_objects(self, kind: str, namespace: str, selector: str = "") -> list[ObjectView]: ...
    def create_object(self, kind: str, namespace: str, body: dict[str, Any]) -> None: ...
    def delete_object(self, kind: str, namespace: str, name: str) -> None: ...
    def patch_object(self, kind: str, namespace: str, name: str,
                     body: dict[str, Any]) -> None: ...
    def replace_object(self, kind: str, namespace: str, name: str,
                       body: dict[str, Any]) -> None: ...
    def scale_deployment(self, namespace: str, name: str, replicas: int) -> int: ...
    def can_i(self, access: Access, namespace: str | None) -> bool: ...
    def service_address(self, namespace: str, name: str, port: str) -> str | None: ...
