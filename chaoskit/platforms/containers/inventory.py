"""The engine's containers as a target selects them: read once, then looked up by node name."""

from __future__ import annotations

from dataclasses import dataclass

import docker
from docker.errors import NotFound

from chaoskit.errors import PlatformError
from chaoskit.platforms.containers import capacity
from chaoskit.platforms.containers.views import (
    REPLICA_OF,
    ContainerView,
    Selection,
    node_names,
)


@dataclass(frozen=True)
class Inventory:
    """`views`: every container the selection's queries returned (the whole project, the named
    containers, chaoskit's replicas); `nodes`: the selected ones, by node name."""

    selection: Selection
    views: list[ContainerView]
    nodes: dict[str, ContainerView]

    @classmethod
    def read(cls, client: docker.DockerClient, selection: Selection) -> Inventory:
        views = read_views(client, selection)
        return cls(selection, views, node_names(views, selection))

    def node(self, name: str) -> ContainerView:
        if name not in self.nodes:
            raise PlatformError(f"no node '{name}' among the target's containers",
                                hint=f"use one of: {', '.join(self.nodes) or '(none selected)'}")
        return self.nodes[name]

    def _of(self, base: str, name: str, view: ContainerView) -> bool:
        if view.is_replica:
            return view.labels.get(REPLICA_OF) == base
        return view.service == base if self.selection.project else name == base

    def serving(self, base: str) -> dict[str, ContainerView]:
        """The nodes of the capacity service (or node) `base`, its replicas included."""
        return {n: v for n, v in self.nodes.items() if self._of(base, n, v)}

    def template(self, base: str) -> ContainerView:
        """A running container of `base` for a replica to copy."""
        found = [v for n, v in self.serving(base).items() if not v.is_replica and v.running]
        if not found:
            raise PlatformError(f"no running container of '{base}' to copy for a replica",
                                hint="target.capacity names a service of the project (or a "
                                     "node), which must be running")
        return found[0]

    def subnets(self, client: docker.DockerClient) -> list[str]:
        """The subnets of the networks the nodes are on."""
        names = sorted({e.network for v in self.nodes.values() for e in v.endpoints})
        found: list[str] = []
        for name in names:
            try:
                ipam = client.networks.get(name).attrs.get("IPAM") or {}
            except NotFound:
                continue
            found += [str(c["Subnet"]) for c in ipam.get("Config") or [] if c.get("Subnet")]
        return found


def read_views(client: docker.DockerClient, selection: Selection) -> list[ContainerView]:
    found: dict[str, ContainerView] = {}
    filters = selection.label_filters()
    if filters:
        for container in client.containers.list(all=True, filters={"label": filters}):
            view = ContainerView.of(container.attrs)
            found[view.id] = view
    for name in selection.containers:
        for container in client.containers.list(all=True, filters={"name": name}):
            view = ContainerView.of(container.attrs)
            if view.name == name:
                found[view.id] = view
    if selection.capacity:
        found |= {v.id: v for v in capacity.replicas(client)}
    return list(found.values())
