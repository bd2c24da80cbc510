"""Elastic capacity on containers: replicas of a service that join its networks and aliases.

A replica copies a running container of the capacity service (image, command, entrypoint,
environment, user, working directory, binds, CPU and memory limits, labels) and joins each of
its networks with the same network aliases, at a new address. A load balancer that resolves the
service's name per request or per connection (DNS round robin: nginx with a `resolver` and a
variable upstream, HAProxy `server-template` with a resolvers section, Envoy STRICT_DNS,
Traefik's or Caddy's container discovery by labels) sends it traffic; one that resolved once at
start does not. Published host ports and a fixed address are not copied (they would clash).
A replica carries its compose project and service labels, so `docker compose ps` shows it and
`docker compose down` removes it, and chaoskit's own: run, `io.chaoskit.change=replica`, its
node name and the service it copies.
"""

from __future__ import annotations

import time
from typing import Any

import docker
from docker.errors import NotFound

from chaoskit.errors import PlatformError
from chaoskit.platforms.containers.engine import safe_ulimits
from chaoskit.platforms.containers.views import (
    CHANGE,
    COLOCATE,
    NODE,
    NUMBER,
    PROJECT,
    REPLICA_OF,
    RUN,
    WORK,
    ContainerView,
)

OURS = (RUN, CHANGE, NODE, REPLICA_OF, COLOCATE, WORK)
_DROPPED_ENV = ("HOSTNAME=",)


def next_names(taken: set[str], base: str, count: int) -> list[str]:
    """The next free `<base>-replica-<k>` names."""
    free = (f"{base}-replica-{k}" for k in range(1, 1000) if f"{base}-replica-{k}" not in taken)
    return [next(free) for _ in range(count)]


def replica_labels(template: ContainerView, name: str, base: str, run: str,
                   numbers: set[int]) -> dict[str, str]:
    """The template's labels (chaoskit's own left out), a free compose container number when it
    is a compose container, and chaoskit's marks of a replica."""
    labels = {k: v for k, v in template.labels.items() if k not in OURS}
    if NUMBER in labels:
        labels[NUMBER] = str(max(numbers | {0}) + 1)
    return labels | {RUN: run, CHANGE: "replica", NODE: name, REPLICA_OF: base}


def container_name(template: ContainerView, name: str) -> str:
    project = template.labels.get(PROJECT)
    return f"{project}-{name}" if project else f"chaoskit-{name}"


def add(client: docker.DockerClient, template: ContainerView, name: str, base: str, run: str,
        numbers: set[int]) -> str:
    """Create and start a replica of `template` named `name` (a node name); its container id."""
    if not template.endpoints:
        raise PlatformError(f"container {template.name} is on no network: a replica of it "
                            "could not be reached", hint="scale a service that has a network")
    attrs = client.api.inspect_container(template.id)
    config, host = attrs.get("Config") or {}, attrs.get("HostConfig") or {}
    first, *others = template.endpoints
    created = client.api.create_container(
        config.get("Image") or attrs.get("Image"), command=config.get("Cmd"),
        entrypoint=config.get("Entrypoint"), user=config.get("User") or None,
        working_dir=config.get("WorkingDir") or None, name=container_name(template, name),
        environment=[e for e in config.get("Env") or [] if not e.startswith(_DROPPED_ENV)],
        labels=replica_labels(template, name, base, run, numbers),
        stop_signal=config.get("StopSignal") or None, healthcheck=config.get("Healthcheck"),
        host_config=client.api.create_host_config(**_host_settings(host, first.network)),
        networking_config=client.api.create_networking_config({
            first.network: client.api.create_endpoint_config(aliases=list(first.aliases))}))
    ident = str(created["Id"])
    for endpoint in others:
        client.api.connect_container_to_network(ident, endpoint.network,
                                                aliases=list(endpoint.aliases) or None)
    client.api.start(ident)
    return ident


def _host_settings(host: dict[str, Any], network: str) -> dict[str, Any]:
    settings: dict[str, Any] = {"network_mode": network, "ulimits": safe_ulimits(),
                                "binds": host.get("Binds") or None}
    if host.get("CpusetCpus"):
        settings["cpuset_cpus"] = host["CpusetCpus"]
    if host.get("CpuShares"):
        settings["cpu_shares"] = int(host["CpuShares"])
    if host.get("Memory"):
        settings["mem_limit"] = int(host["Memory"])
    if host.get("NanoCpus"):
        settings["nano_cpus"] = int(host["NanoCpus"])
    return settings


def replicas(client: docker.DockerClient, name: str | None = None,
             run: str | None = None) -> list[ContainerView]:
    """chaoskit's replicas on the engine: of one node name, one run, or all."""
    wanted = [f"{CHANGE}=replica"] + ([f"{NODE}={name}"] if name else [])
    wanted += [f"{RUN}={run}"] if run else []
    found = [ContainerView.of(c.attrs)
             for c in client.containers.list(all=True, filters={"label": wanted})]
    return [v for v in found if (name is None or v.labels.get(NODE) == name)
            and (run is None or v.labels.get(RUN) == run)]


def drain(client: docker.DockerClient, view: ContainerView, timeout: float) -> float:
    """A graceful stop (SIGTERM; SIGKILL after `timeout`): it leaves the network's DNS as it
    stops, and its requests in flight get that long. Seconds it took."""
    started = time.monotonic()
    try:
        client.api.stop(view.id, timeout=max(1, round(timeout)))
    except NotFound:
        return 0.0
    return round(time.monotonic() - started, 3)


def remove(client: docker.DockerClient, view: ContainerView) -> None:
    try:
        client.api.remove_container(view.id, force=True)
    except NotFound:
        return


def state(view: ContainerView, healthy: bool | None) -> str:
    """UP, DOWN, PAUSED or STARTING (running, but its declared health does not answer yet)."""
    if view.status == "paused":
        return "PAUSED"
    if not view.running:
        return "DOWN"
    return "STARTING" if healthy is False else "UP"


def residue(client: docker.DockerClient, name: str, project: str | None) -> list[str]:
    """Replicas named `name` still there (of the compose `project`, or of none)."""
    return [f"replica container {v.name} of {v.labels.get(REPLICA_OF, '?')} ({v.status}, run "
            f"{v.labels.get(RUN, '?')}) remains" for v in replicas(client, name)
            if v.project == project]
