"""Pytest plug-in: `otherpay_compose`, otherpay running as a compose project on real Podman.

Module scope: builds the otherpay image when its sources changed (FROM the stack image), brings
the project up with `docker-compose` v1 against chaoskit's Podman service, puts a Toxiproxy
proxy (on the host, at the network's gateway) between the worker and the bank, waits until
every service answers, and yields a `ComposeProject`. After the module it brings the project
down and asserts, through the engine API, that nothing of it is left (containers, networks,
and strangers on its network such as a batch container a test leaked). Projects a killed
session left are swept first.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import docker
import pytest

from chaoskit.platforms.containers.engine import ensure_podman_service
from chaoskit.toxiproxy import ToxiproxyServer
from tests.compose.project import (
    PROJECT_LABEL,
    ComposeProject,
    compose_env,
    ensure_image,
    force_remove,
    free_port,
    free_subnet,
    leftovers,
    strangers,
    sweep_dead_owners,
)

__all__ = ["ComposeProject", "otherpay_compose"]


@pytest.fixture(scope="module")
def otherpay_compose(container_engine: docker.DockerClient, stack_image: str,
                     toxiproxy_url: str) -> Iterator[ComposeProject]:
    client = container_engine
    sweep_dead_owners(client)
    engine = ensure_podman_service()
    image = ensure_image(client, stack_image)
    subnet = free_subnet(client)
    name = f"ckop{uuid.uuid4().hex[:8]}"
    project = ComposeProject(name, engine, client, image, subnet, toxiproxy_url,
                             free_port("127.0.0.1"))
    project.env = compose_env(name, engine, image, subnet,
                              f"http://{project.bank_proxy_listen}")
    toxiproxy = ToxiproxyServer(toxiproxy_url)
    try:
        project.compose("up", "-d", "--no-build")
        toxiproxy.ensure_proxy(project.bank_proxy, project.bank_proxy_listen,
                               f"{project.ip('bank')}:8302")
        project.wait_healthy()
        yield project
    finally:
        with contextlib.suppress(Exception):
            toxiproxy.delete_proxy(project.bank_proxy)
        stray = [c.name for c in strangers(client, name)]
        for container in strangers(client, name):
            container.remove(force=True)
        project.compose("down", "-t", "5", "--remove-orphans")
        left = leftovers(client, name)
        force_remove(client, f"{PROJECT_LABEL}={name}")
        assert not stray, f"containers left on the project's network: {stray}"
        assert not left, f"docker-compose down left: {left}"
