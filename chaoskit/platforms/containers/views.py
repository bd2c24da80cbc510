"""Containers as the containers platform sees them, which of them are nodes, and their names.

Pure: built from the engine's inspect documents, so the rules are tested without an engine.

Node names are what users write in `target.scope.nodes` and fault targets:
- with `project:` a compose service's name (`worker`), or `worker-2` for each container of a
  service that runs several (its com.docker.compose.container-number);
- otherwise (`containers:` or `labels:` alone) the container's name;
- a replica chaoskit added (scale +N) the name the scale fault gave it (`api-replica-1`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# compose's labels (docker compose v2, podman compose and docker-compose v1 alike)
PROJECT = "com.docker.compose.project"
SERVICE = "com.docker.compose.service"
NUMBER = "com.docker.compose.container-number"
ONEOFF = "com.docker.compose.oneoff"
# chaoskit's labels, on everything it creates (containers, mark volumes)
RUN = "io.chaoskit.run"  # the run id that made it
CHANGE = "io.chaoskit.change"  # what was done: node-loss | replica | offline
NODE = "io.chaoskit.node"  # the node it is about (or the node name it is)
REPLICA_OF = "io.chaoskit.replica-of"  # a replica: the service (or node) it copies
COLOCATE = "io.chaoskit.colocate"  # an offline container: the colocate fault's tag
WORK = "io.chaoskit.work"  # an offline container: reconciliation | burner
CHANGES = ("node-loss", "replica", "offline")


@dataclass(frozen=True)
class Endpoint:
    """A container's place on one network: the address, MAC and aliases to reconnect it with."""

    network: str
    ip: str
    mac: str
    aliases: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"network": self.network, "ip": self.ip, "mac": self.mac,
                "aliases": list(self.aliases)}

    @classmethod
    def of(cls, data: dict[str, Any]) -> Endpoint:
        return cls(str(data["network"]), str(data.get("ip") or ""), str(data.get("mac") or ""),
                   tuple(data.get("aliases") or ()))


@dataclass(frozen=True)
class ContainerView:
    """What the platform needs of one container's inspect document."""

    id: str
    name: str
    status: str  # created | running | paused | restarting | exited | dead
    labels: dict[str, str] = field(default_factory=dict)
    endpoints: tuple[Endpoint, ...] = ()
    cpuset: str = ""
    cpu_shares: int = 0
    started_at: float | None = None
    stop_timeout: float | None = None  # its own grace after SIGTERM (compose stop_grace_period)

    @classmethod
    def of(cls, attrs: dict[str, Any]) -> ContainerView:
        config, host = attrs.get("Config") or {}, attrs.get("HostConfig") or {}
        state = attrs.get("State") or {}
        ident = str(attrs.get("Id", ""))
        networks = (attrs.get("NetworkSettings") or {}).get("Networks") or {}
        endpoints = tuple(
            Endpoint(name, str(net.get("IPAddress") or ""), str(net.get("MacAddress") or ""),
                     tuple(a for a in net.get("Aliases") or () if a != ident[:12]))
            for name, net in sorted(networks.items()))
        return cls(ident, str(attrs.get("Name", "")).lstrip("/"), _status(state),
                   dict(config.get("Labels") or {}), endpoints, str(host.get("CpusetCpus") or ""),
                   int(host.get("CpuShares") or 0), _epoch(state.get("StartedAt")),
                   float(config["StopTimeout"]) if config.get("StopTimeout") else None)

    @property
    def project(self) -> str | None:
        return self.labels.get(PROJECT)

    @property
    def service(self) -> str | None:
        return self.labels.get(SERVICE)

    @property
    def change(self) -> str | None:
        return self.labels.get(CHANGE)

    @property
    def is_replica(self) -> bool:
        return self.change == "replica" and NODE in self.labels

    @property
    def address(self) -> str:
        return next((e.ip for e in self.endpoints if e.ip), "")

    @property
    def running(self) -> bool:
        return self.status == "running"


def _status(state: dict[str, Any]) -> str:
    if state.get("Paused"):
        return "paused"
    return str(state.get("Status") or ("running" if state.get("Running") else "exited"))


def _epoch(stamp: Any) -> float | None:
    """Epoch seconds of an engine timestamp (RFC 3339 with nanoseconds); None if never."""
    if not stamp or str(stamp).startswith("0001-"):
        return None
    text = str(stamp).replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:  # Python takes at most microseconds: trim the fraction, keep the offset
        digits = "".join(c for c in rest if c.isdigit())
        rest = digits[:6] + rest[len(digits):]
        text = f"{head}.{rest}"
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


@dataclass(frozen=True)
class Selection:
    """Which containers are the experiment's nodes (the target's own fields)."""

    project: str | None = None
    services: tuple[str, ...] = ()
    containers: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    capacity: str | None = None  # the service (or node) scale +N copies

    @property
    def empty(self) -> bool:
        return not (self.project or self.containers or self.labels)

    def label_filters(self) -> list[str]:
        """Engine label filters of the project/labels part (empty: no such part)."""
        if not (self.project or self.labels):
            return []
        found = [f"{PROJECT}={self.project}"] if self.project else []
        return found + [f"{k}={v}" for k, v in sorted(self.labels.items())]

    def selects(self, view: ContainerView) -> bool:
        if view.change == "offline" or view.labels.get(ONEOFF, "False") == "True":
            return False
        if view.is_replica:  # ours: a node while it lives, if it copies our capacity
            return (self.capacity is not None and view.project == self.project
                    and view.labels.get(REPLICA_OF) == self.capacity)
        if view.name in self.containers:
            return True
        if not self.label_filters():
            return False
        if self.project and view.project != self.project:
            return False
        if any(view.labels.get(k) != v for k, v in self.labels.items()):
            return False
        return not self.services or (view.service or "") in self.services


def node_names(views: list[ContainerView], selection: Selection) -> dict[str, ContainerView]:
    """Node name -> its container, for the selected containers (sorted by name)."""
    chosen = [v for v in views if selection.selects(v)]
    per_service = Counter(str(v.service) for v in chosen
                          if selection.project and v.service and not v.is_replica)
    named: dict[str, ContainerView] = {}
    for view in sorted(chosen, key=lambda v: (v.name, v.id)):
        named.setdefault(node_name(view, selection, per_service), view)
    return dict(sorted(named.items()))


def node_name(view: ContainerView, selection: Selection, per_service: Counter[str]) -> str:
    if view.is_replica:
        return view.labels[NODE]
    if selection.project and view.service and view.name not in selection.containers:
        if per_service[view.service] > 1:
            return f"{view.service}-{view.labels.get(NUMBER, view.id[:12])}"
        return view.service
    return view.name


def services_of(views: list[ContainerView]) -> list[str]:
    """Compose services among the views (chaoskit's replicas left out)."""
    return sorted({v.service for v in views if v.service and not v.is_replica})
