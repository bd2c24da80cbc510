"""Node-loss marks: what chaoskit did to a container, kept in the engine as a labelled volume.

A container's labels cannot change after it is created, and a killed, paused or disconnected
container shows nothing of who did it. So before a node-loss acts, it writes a mark: an empty
volume `chaoskit-lost-<container id>` labelled with the run, the mode, the container and the
networks it was on (address, MAC, aliases). Restoring follows the mark and removes it; the
residue audit and `recover_containers` find what is left by asking the engine for marks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import docker
from docker.errors import APIError, NotFound

from chaoskit.errors import PlatformError
from chaoskit.platforms.containers.views import CHANGE, NODE, RUN, Endpoint

PREFIX = "chaoskit-lost-"
MODE = "io.chaoskit.mode"
CONTAINER = "io.chaoskit.container"
CONTAINER_NAME = "io.chaoskit.container-name"
NETWORKS = "io.chaoskit.networks"


@dataclass(frozen=True)
class Mark:
    """One node loss in place (or half done): enough to undo it from any process."""

    run: str
    mode: str
    container: str  # full id
    container_name: str
    node: str
    endpoints: tuple[Endpoint, ...] = ()

    @property
    def name(self) -> str:
        return f"{PREFIX}{self.container[:12]}"

    def labels(self) -> dict[str, str]:
        return {RUN: self.run, CHANGE: "node-loss", MODE: self.mode, CONTAINER: self.container,
                CONTAINER_NAME: self.container_name, NODE: self.node,
                NETWORKS: json.dumps([e.as_dict() for e in self.endpoints])}

    @classmethod
    def of(cls, labels: dict[str, str]) -> Mark:
        endpoints = tuple(Endpoint.of(e) for e in json.loads(labels.get(NETWORKS) or "[]"))
        return cls(labels.get(RUN, ""), labels.get(MODE, ""), labels.get(CONTAINER, ""),
                   labels.get(CONTAINER_NAME, ""), labels.get(NODE, ""), endpoints)

    def describe(self) -> str:
        return (f"chaoskit's {self.mode} mark on container {self.container_name} "
                f"(volume {self.name}, run {self.run})")


def write(client: docker.DockerClient, mark: Mark) -> None:
    """Record the loss before acting; refuses a container that already carries one."""
    if find(client, container=mark.container):
        raise PlatformError(f"container {mark.container_name} is already lost ({mark.mode} "
                            "mark present)",
                            hint="revert the fault holding it, or run `chaoskit recover`")
    try:
        client.volumes.create(name=mark.name, labels=mark.labels())
    except APIError as exc:
        raise PlatformError(f"could not record the {mark.mode} of {mark.container_name} in "
                            f"the engine: {exc.explanation or exc}",
                            hint="check the engine can create volumes") from exc


def find(client: docker.DockerClient, *, container: str | None = None,
         run: str | None = None) -> list[Mark]:
    """Marks in the engine, of one container or one run when given."""
    wanted = [f"{CHANGE}=node-loss"]
    wanted += [f"{CONTAINER}={container}"] if container else []
    wanted += [f"{RUN}={run}"] if run else []
    found = [Mark.of(_labels(v.attrs)) for v in client.volumes.list(filters={"label": wanted})]
    return [m for m in found if (container is None or m.container == container)
            and (run is None or m.run == run)]


def _labels(attrs: dict[str, Any]) -> dict[str, str]:
    return dict(attrs.get("Labels") or {})


def remove(client: docker.DockerClient, mark: Mark) -> None:
    try:
        client.volumes.get(mark.name).remove(force=True)
    except NotFound:
        return
