"""Taking a containers lab off the engine, and asking the engine that nothing of it is left.

Found by label, not only by the state file, so a `lab up` that died before noting a container
is swept too: node containers (`io.chaoskit.lab=<id>`), and what faults added under the lab's
run label (batch containers, loss-mark volumes), then the network. Everything is removed with
force (a paused container too); the stack keeps nothing in its containers.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor

import docker
from docker.errors import APIError, NotFound

from chaoskit.lab.containers import network
from chaoskit.lab.containers.engine import LAB, lab_run
from chaoskit.lab.state import LabState
from chaoskit.platforms.containers import colocation, marks

PARALLEL = 4


def _containers(client: docker.DockerClient, lab: LabState) -> dict[str, str]:
    """Id -> name of the lab's node containers and of the batch containers faults left."""
    found = {c.id or "": c.name or "" for c in client.containers.list(
        all=True, filters={"label": f"{LAB}={lab.lab_id}"})}
    found |= {v.id: v.name for v in colocation.views(client, run=lab_run(lab))}
    for node in lab.nodes:  # named in the state file before it was created
        if node.container:
            try:
                found[str(client.api.inspect_container(node.container)["Id"])] = node.container
            except NotFound:
                continue
    found.pop("", None)
    return found


def remove_container(client: docker.DockerClient, ident: str) -> None:
    """Killed first (an engine's forced removal may first wait out a stop's grace), unpaused
    if it is paused (a frozen task cannot die), then removed."""
    with contextlib.suppress(APIError):
        if client.api.inspect_container(ident)["State"].get("Paused"):
            client.api.unpause(ident)
    with contextlib.suppress(APIError):  # not running (any more): nothing to kill
        client.api.kill(ident)
    try:
        client.api.remove_container(ident, force=True)
    except NotFound:
        return


def remove(client: docker.DockerClient, lab: LabState) -> None:
    with ThreadPoolExecutor(PARALLEL) as pool:
        list(pool.map(lambda ident: remove_container(client, ident),
                      _containers(client, lab)))
    for mark in marks.find(client, run=lab_run(lab)):
        marks.remove(client, mark)
    for volume in client.volumes.list(filters={"label": f"{LAB}={lab.lab_id}"}):
        volume.remove(force=True)
    network.remove(client, lab)


def residue(client: docker.DockerClient, lab: LabState) -> list[str]:
    """Everything of the lab the engine still holds: containers, volumes, networks."""
    found = [f"container {name} exists" for name in sorted(_containers(client, lab).values())]
    found += [f"volume {m.name} (a loss mark) exists" for m in marks.find(client, run=lab_run(lab))]
    found += [f"volume {v.name} exists"
              for v in client.volumes.list(filters={"label": f"{LAB}={lab.lab_id}"})]
    return found + network.residue(client, lab)
