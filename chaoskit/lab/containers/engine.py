"""The container engine and the stack image a containers lab uses; the labels it puts on both.

`prepare` runs before `lab up` makes anything, so a missing engine or image leaves nothing
behind. Clients are kept per engine URL for the life of the process: node operations run
often (faults, the residue audit, status) and each would otherwise connect and ping again.
"""

from __future__ import annotations

import threading

import docker

from chaoskit.errors import PlatformError
from chaoskit.lab.state import LabState
from chaoskit.platforms.containers.engine import api_version, connect, ensure_podman_service
from chaoskit.platforms.containers.image import has_image, stack_image_ref

LAB = "io.chaoskit.lab"  # the lab's id: on its network and node containers
LAB_DIR = "io.chaoskit.lab-dir"  # the lab's state directory
IMAGE_HINT = ("build it with `make image` (k8s/image/build.sh: about 2 min the first time, "
              "seconds after a code change), or name a built one with --image")

_clients: dict[str, docker.DockerClient] = {}
_lock = threading.Lock()


def lab_run(lab: LabState) -> str:
    """The run label of what faults add on a containers lab (loss marks, batch containers)."""
    return f"chaoskit-lab-{lab.lab_id}"


def client(lab: LabState) -> docker.DockerClient:
    """A connected client of the lab's engine (one per engine URL and process)."""
    if not lab.engine:
        raise PlatformError(f"the lab at {lab.dir} records no container engine",
                            hint="recreate it with `chaoskit lab up --runtime containers`")
    return _connected(lab.engine)


def _connected(url: str) -> docker.DockerClient:
    with _lock:
        found = _clients.get(url)
        if found is None:
            found = _clients[url] = connect(url, version=api_version(url))
        return found


def prepare(engine: str | None, image: str | None) -> tuple[str, str]:
    """(engine URL, image reference) for a new containers lab, or a PlatformError saying what
    to do. `engine` None: $DOCKER_HOST, Docker's or Podman's socket, else chaoskit's Podman
    service (started when nothing answers). `image` None: the current sources' stack image."""
    url = engine or ensure_podman_service()
    ref = image or stack_image_ref()
    if not has_image(_connected(url), ref):
        raise PlatformError(f"the payment stack's image {ref} is not in the engine at {url}",
                            hint=IMAGE_HINT)
    return url, ref
