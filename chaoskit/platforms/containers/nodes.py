"""Losing a container and getting it back: kill, freeze, isolate, stop, and the one undo.

    kill     SIGKILL (a crash); restored by starting it again, as after a reboot
    freeze   pause (the cgroup freezer: sockets stay open, nothing answers); unpause
    isolate  disconnect from every network; reconnect at the same address, MAC and aliases
    stop     a graceful stop (SIGTERM, then SIGKILL after the container's own grace, or
             target.stop_timeout); start again

The mark (see `marks`) is written before acting and removed after undoing, so `restore` is
idempotent and works from any process. A container that comes back (kill, stop) is reconnected
at the address and MAC it had before it starts: an engine gives a restarted container a new
dynamic address otherwise, and peers holding the old one would lose it.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import docker
from docker.errors import APIError, NotFound
from docker.models.containers import Container

from chaoskit.errors import PlatformError
from chaoskit.platforms.containers import marks
from chaoskit.platforms.containers.marks import Mark
from chaoskit.platforms.containers.views import ContainerView, Endpoint

MODES = ("kill", "freeze", "isolate", "stop")
DEFAULT_GRACE = 10.0  # seconds after SIGTERM, as `docker stop` gives


def lose(client: docker.DockerClient, view: ContainerView, node: str, mode: str, run: str,
         stop_timeout: float | None = None) -> dict[str, Any]:
    """Mark, then act; the facts say what was done and how long the engine took (ms)."""
    if mode not in MODES:
        raise PlatformError(f"the containers platform cannot {mode} a node",
                            hint=f"use one of {', '.join(MODES)}")
    if not view.running:
        raise PlatformError(f"node {node} (container {view.name}) is {view.status}, not running",
                            hint="start it first; a node is lost from a running state")
    marks.write(client, Mark(run, mode, view.id, view.name, node, view.endpoints))
    container = client.containers.get(view.id)
    started = time.monotonic()
    if mode == "kill":
        container.kill()
    elif mode == "freeze":
        container.pause()
    elif mode == "isolate":
        for endpoint in view.endpoints:
            client.api.disconnect_container_from_network(view.id, endpoint.network)
    else:
        grace = stop_timeout or view.stop_timeout or DEFAULT_GRACE
        container.stop(timeout=max(1, round(grace)))
    return {"container": view.name, "engine_ms": round((time.monotonic() - started) * 1e3, 1),
            "networks": [e.as_dict() for e in view.endpoints]}


def restore(client: docker.DockerClient, container_id: str) -> list[str]:
    """Undo every mark of the container; what was undone (empty: nothing was lost)."""
    return [step for mark in marks.find(client, container=container_id)
            for step in undo(client, mark)]


def undo(client: docker.DockerClient, mark: Mark) -> list[str]:
    """Back to running and connected, as the mark recorded it; then the mark goes."""
    try:
        container = client.containers.get(mark.container)
    except NotFound:
        marks.remove(client, mark)
        return [f"container {mark.container_name} is gone; its mark was removed"]
    view = ContainerView.of(container.attrs)
    done: list[str] = []
    if view.status == "paused":
        container.unpause()
        done.append("unpaused")
    if view.status not in ("running", "paused", "restarting"):
        done += _pin(client, container, view, mark.endpoints)
        _start(client, container, mark.endpoints)
        done.append("started")
    else:
        done += _reconnect(client, container, view, mark.endpoints)
    marks.remove(client, mark)
    return [f"{mark.container_name}: {step}" for step in done]


def _reconnect(client: docker.DockerClient, container: Container, view: ContainerView,
               endpoints: tuple[Endpoint, ...]) -> list[str]:
    joined = {e.network for e in view.endpoints}
    done = []
    for endpoint in endpoints:
        if endpoint.network not in joined:
            _connect(client, container.id or "", endpoint)
            done.append(f"reconnected to {endpoint.network} at {endpoint.ip or 'a new address'}")
    return done


def _pin(client: docker.DockerClient, container: Container, view: ContainerView,
         endpoints: tuple[Endpoint, ...]) -> list[str]:
    """A stopped container re-joins its networks at its recorded address before it starts."""
    joined = {e.network for e in view.endpoints}
    for endpoint in endpoints:
        if endpoint.network in joined:
            with contextlib.suppress(NotFound):
                client.api.disconnect_container_from_network(container.id, endpoint.network)
        _connect(client, container.id or "", endpoint)
    return [f"kept {e.ip} on {e.network}" for e in endpoints if e.ip]


def _connect(client: docker.DockerClient, container: str, endpoint: Endpoint) -> None:
    """At the recorded address and MAC; at a new address if another container took it."""
    aliases = list(endpoint.aliases) or None
    try:
        client.api.connect_container_to_network(
            container, endpoint.network, ipv4_address=endpoint.ip or None, aliases=aliases,
            mac_address=endpoint.mac or None)
    except NotFound as exc:
        raise PlatformError(f"network {endpoint.network} is gone: cannot reconnect {container}",
                            hint="recreate the network (e.g. `docker compose up`)") from exc
    except APIError:
        if not endpoint.ip:
            raise
        client.api.connect_container_to_network(container, endpoint.network, aliases=aliases)


def _start(client: docker.DockerClient, container: Container,
           endpoints: tuple[Endpoint, ...]) -> None:
    try:
        container.start()
    except APIError:  # its address was taken meanwhile: join at a new one rather than stay down
        for endpoint in endpoints:
            with contextlib.suppress(APIError):
                client.api.disconnect_container_from_network(container.id, endpoint.network)
            _connect(client, container.id or "", Endpoint(endpoint.network, "", "",
                                                          endpoint.aliases))
        container.start()


def residue(client: docker.DockerClient, view: ContainerView | None, node: str) -> list[str]:
    """What is still lost about a node: its marks, a paused, stopped or cut-off container."""
    if view is None:
        return [f"node {node} has no container any more"]
    held = marks.find(client, container=view.id)
    found = [m.describe() for m in held]
    if view.status == "paused":
        found.append(f"container {view.name} is paused")
    elif view.status not in ("running", "restarting"):
        found.append(f"container {view.name} is {view.status}")
    joined = {e.network for e in view.endpoints}
    found += [f"container {view.name} is disconnected from {e.network}"
              for m in held for e in m.endpoints if e.network not in joined]
    return found
