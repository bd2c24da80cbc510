"""ContainersPlatform: the user's containers (a compose project, named containers, labels).

    target:
      platform: containers
      engine: unix:///run/podman/podman.sock   # default: $DOCKER_HOST, Docker's, Podman's
      project: shop                            # a compose project: its services are the nodes
      services: [api, worker]                  # default: every service of the project
      health: {worker: "http://{address}:8301/health"}
      capacity: api                            # scale +N adds replicas of this service
      entry: http://198.19.7.10:8300
      database: postgresql://postgres@198.19.7.250:5432/postgres
      scope: {nodes: [worker, api, api-replica-*]}

Nodes are named as `views` says (a compose service's name, else a container's name), and
those names are what `target.scope.nodes` admits. Everything chaoskit changes carries
`io.chaoskit.run=<run id>` and `io.chaoskit.change=<node-loss|replica|offline>`: replicas and
batch containers as container labels, node losses as mark volumes (see `marks`).

Abilities: Entry, Database, ToxiproxyAccess, OwnHosts, NodeOperations (kill, freeze, isolate,
stop), NodeHealth, Capacity, Colocation, ProcessCpu, RunBinding.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from typing import Any

import docker
import httpx
from pydantic import Field

from chaoskit.errors import PlatformError
from chaoskit.platforms.abilities import NodeInfo, OfflineProcess, OfflineWork, PlatformConfig
from chaoskit.platforms.containers import capacity, colocation, nodes
from chaoskit.platforms.containers.engine import connect, engine_url
from chaoskit.platforms.containers.inventory import Inventory
from chaoskit.platforms.containers.views import NODE, NUMBER, ContainerView, Selection
from chaoskit.spec.units import PositiveDuration


class ContainersConfig(PlatformConfig):
    engine: str | None = Field(default=None, description=(
        "Docker Engine API URL (unix:// or tcp://); default: $DOCKER_HOST, Docker's socket, "
        "Podman's rootful socket, else the Podman service chaoskit starts"))
    project: str | None = Field(default=None, description=(
        "compose project (com.docker.compose.project): its services are the nodes"))
    services: list[str] = Field(default_factory=list, description=(
        "the project's services that are nodes (default: all)"))
    containers: list[str] = Field(default_factory=list, description=(
        "containers (by name) that are nodes, named by their container name"))
    labels: dict[str, str] = Field(default_factory=dict, description=(
        "containers carrying all these labels are nodes (with project: only the project's)"))
    health: dict[str, str] = Field(default_factory=dict, description=(
        "node or service -> health URL, {address} standing for the container's address, "
        "e.g. http://{address}:8080/healthz (a restored node is back when it answers 200)"))
    capacity: str | None = Field(default=None, description=(
        "the service (or node) scale +N adds replicas of"))
    offline_image: str | None = Field(default=None, description=(
        "image of colocate's batch containers; it must hold chaoskit (default: the payment "
        "stack's image, built from this source tree when missing)"))
    offline_env: dict[str, str] = Field(default_factory=dict, description=(
        "environment of the batch containers (CHAOSKIT_DATABASE_URL defaults to "
        "target.database)"))
    stop_timeout: PositiveDuration | None = Field(default=None, description=(
        "node-loss `stop`: how long a container gets after SIGTERM (default: its own stop "
        "grace period, else 10s)"))
    timeout: PositiveDuration = Field(default=30.0, description="bound on each engine call")


class ContainersPlatform:
    """Containers on one Docker Engine API (Docker or Podman). Blocking docker-py calls, each
    bounded by `timeout:`; drivers call them in threads."""

    name = "containers"
    Config = ContainersConfig

    def __init__(self, config: ContainersConfig | None = None, *, entry: str | None = None,
                 database: str | None = None, toxiproxy: str | None = None,
                 proxies: list[dict[str, str]] | None = None, run: str | None = None) -> None:
        self.config = config or ContainersConfig()
        self.engine = engine_url(self.config.engine)
        self.selection = Selection(self.config.project, tuple(self.config.services),
                                   tuple(self.config.containers), dict(self.config.labels),
                                   self.config.capacity)
        self._entry, self._database, self._toxiproxy = entry, database, toxiproxy
        self._declared = list(proxies or [])
        self.run = run or f"chaoskit-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
        self._client: docker.DockerClient | None = None
        self._lock = threading.Lock()
        self._image: str | None = self.config.offline_image

    @classmethod
    def from_target(cls, target: Any) -> ContainersPlatform:
        config = ContainersConfig.model_validate(target.options())
        return cls(config, entry=target.entry, database=target.database,
                   toxiproxy=target.toxiproxy, proxies=[p.model_dump() for p in target.proxies])

    @classmethod
    def from_description(cls, desc: dict[str, Any]) -> ContainersPlatform:
        own = {k: desc[k] for k in ContainersConfig.model_fields if desc.get(k) is not None}
        return cls(ContainersConfig.model_validate(own), entry=desc.get("entry"),
                   database=desc.get("database"), toxiproxy=desc.get("toxiproxy"),
                   proxies=desc.get("proxies"), run=desc.get("run"))

    def describe(self) -> dict[str, Any]:
        return {"platform": "containers", **self.config.model_dump(mode="json"),
                "engine": self.engine,
                "entry": self._entry, "database": self._database, "toxiproxy": self._toxiproxy,
                "proxies": self._declared, "run": self.run}

    def identity(self) -> str:
        project = self.selection.project
        return f"containers:{self.engine}" + (f":{project}" if project else "")

    def bind_run(self, run_id: str) -> None:
        """Everything changed from now on carries this run id."""
        self.run = run_id

    @property
    def client(self) -> docker.DockerClient:
        with self._lock:
            if self._client is None:
                self._client = connect(self.engine, timeout=self.config.timeout)
            return self._client

    def inventory(self) -> Inventory:
        """The engine's containers as this target selects them, read now."""
        return Inventory.read(self.client, self.selection)

    # -- addresses ---------------------------------------------------------------------------
    def entry_url(self) -> str:
        if not self._entry:
            raise PlatformError("the containers platform has no entry URL",
                                hint="set target.entry (e.g. http://<api address>:8080)")
        return self._entry

    def database_url(self) -> str:
        if not self._database:
            raise PlatformError("the containers platform has no database URL",
                                hint="set target.database (an address the runner reaches)")
        return self._database

    def toxiproxy_url(self) -> str:
        if not self._toxiproxy:
            raise PlatformError("the containers platform has no Toxiproxy",
                                hint="run one (on the host or as a container on the stack's "
                                     "network) and set target.toxiproxy to its API URL")
        return self._toxiproxy

    def toxiproxy_configured(self) -> bool:
        return bool(self._toxiproxy)

    def declared_proxies(self) -> list[dict[str, str]]:
        return list(self._declared)

    def own_hosts(self) -> list[str]:
        """Loopback and the subnets of the selected containers' networks."""
        return ["127.0.0.0/8", "localhost", *self.inventory().subnets(self.client)]

    # -- nodes -------------------------------------------------------------------------------
    def nodes(self) -> list[NodeInfo]:
        return [NodeInfo(name, view.address, (view.service,) if view.service else (),
                         {"container": view.name, "status": view.status})
                for name, view in self.inventory().nodes.items()]

    def node_loss_modes(self) -> dict[str, str | None]:
        return {mode: None for mode in nodes.MODES}

    def lose_node(self, node: str, mode: str) -> dict[str, Any]:
        view = self.inventory().node(node)
        return nodes.lose(self.client, view, node, mode, self.run, self.config.stop_timeout)

    def restore_node(self, node: str, mode: str) -> dict[str, Any]:
        """Undo what the node's marks say (whatever `mode`); idempotent."""
        view = self.inventory().nodes.get(node)
        return {"undone": nodes.restore(self.client, view.id) if view else []}

    def node_residue(self, node: str) -> list[str]:
        return nodes.residue(self.client, self.inventory().nodes.get(node), node)

    def node_health_urls(self, node: str) -> dict[str, str]:
        view = self.inventory().node(node)
        url = self._health_url(node, view)
        return {node: url} if url else {}

    def _health_url(self, node: str, view: ContainerView) -> str | None:
        template = self.config.health.get(node) or self.config.health.get(view.service or "")
        if not template or not view.address:
            return None
        return template.replace("{address}", view.address)

    # -- capacity (the scale driver, +N) ------------------------------------------------------
    def _capacity(self) -> str:
        if not self.selection.capacity:
            raise PlatformError("the containers platform does not know what to scale",
                                hint="set target.capacity to the service (or node) whose "
                                     "replicas scale +N adds")
        return self.selection.capacity

    def next_node_names(self, count: int) -> list[str]:
        base = self._capacity()
        taken = set(self.inventory().nodes) | {
            v.labels.get(NODE, "") for v in capacity.replicas(self.client)}
        return capacity.next_names(taken, base, count)

    def add_node(self, name: str | None = None) -> str:
        name = name or self.next_node_names(1)[0]
        inventory = self.inventory()
        template = inventory.template(self._capacity())
        numbers = {int(v.labels[NUMBER]) for v in inventory.views
                   if v.service and v.service == template.service
                   and v.labels.get(NUMBER, "").isdigit()}
        capacity.add(self.client, template, name, self._capacity(), self.run, numbers)
        return name

    def drain_gateway(self, name: str, timeout: float) -> float:
        return capacity.drain(self.client, self._replica(name), timeout)

    def remove_node(self, name: str) -> None:
        capacity.remove(self.client, self._replica(name))

    def _replica(self, name: str) -> ContainerView:
        view = self.inventory().node(name)
        if not view.is_replica:
            raise PlatformError(f"node {name} is not a replica chaoskit added; it stays",
                                hint="scale -N is not offered on containers")
        return view

    def entry_states(self) -> dict[str, str]:
        """The capacity service's containers and replicas: UP, STARTING, PAUSED or DOWN."""
        serving = self.inventory().serving(self._capacity())
        return {name: capacity.state(view, self._healthy(name, view))
                for name, view in serving.items()}

    def _healthy(self, node: str, view: ContainerView) -> bool | None:
        url = self._health_url(node, view)
        if url is None:
            return None
        try:
            return httpx.get(url, timeout=1.0, trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False

    def departed_residue(self, name: str) -> list[str]:
        return capacity.residue(self.client, name, self.selection.project)

    # -- co-location -------------------------------------------------------------------------
    def start_offline(self, node: str, tag: str, work: OfflineWork) -> str:
        online = self.inventory().node(node)
        name = colocation.container_name(tag, node)
        env = colocation.environment(work, name, node, self._database, self.config.offline_env)
        return colocation.start(self.client, online, node, tag, work, self.run,
                                self._offline_image(), env)

    def _offline_image(self) -> str:
        if self._image is None:
            from chaoskit.platforms.containers.image import ensure_stack_image

            self._image = ensure_stack_image(self.client)
        return self._image

    def offline_processes(self, tag: str) -> list[OfflineProcess]:
        return colocation.processes(self.client, tag)

    def stop_offline(self, tag: str) -> list[str]:
        return colocation.stop(self.client, tag)

    def offline_residue(self, tag: str) -> list[str]:
        return colocation.residue(self.client, tag)

    def offline_isolation(self) -> str:
        return (f"container cpu.shares {colocation.OFFLINE_SHARES} (online: its own, "
                f"{colocation.ONLINE_SHARES} by default) on the online container's cpuset")

    def process_cpu_seconds(self, process_id: str) -> float:
        return colocation.cpu_seconds(self.client, process_id)

    # -- preflight ---------------------------------------------------------------------------
    async def preflight(self) -> list[str]:
        from chaoskit.platforms.containers.checks import preflight

        return await asyncio.to_thread(preflight, self)
