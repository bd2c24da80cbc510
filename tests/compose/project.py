"""otherpay as a compose project on chaoskit's Podman: its image, bringing it up and down.

The image (tests/compose/otherpay/Containerfile) is built FROM the payment stack's image and
tagged by a hash of everything it copies, so it is rebuilt only when otherpay or the stack image
changes. The project runs under `docker-compose` v1 against the engine's socket (DOCKER_HOST),
on an internal network in a free /24 of 198.18.0.0/15 taken from the top; the worker reaches
the bank through a Toxiproxy proxy listening on the host at the network's gateway.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import httpx
import psycopg
from docker.errors import ImageNotFound, NotFound
from docker.models.containers import Container

from chaoskit.lab.addresses import LAB_RANGE, networks_in_use
from chaoskit.platforms.containers.engine import safe_ulimits

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent / "otherpay"
COMPOSE_FILE = HERE / "compose.yaml"
IMAGE = "localhost/chaoskit/otherpay"
PROJECT_LABEL = "io.chaoskit.compose-test"
OWNER_LABEL = "io.chaoskit.compose-owner"
PORTS = {"api": 8300, "worker": 8301, "bank": 8302}
HEALTH = {"api": "/api/v2/health", "worker": "/health", "bank": "/health"}
SKIP_TOP = 16  # /24s left to test_container_engine, which takes the very top


def context_files() -> dict[str, Path]:
    """Path in the build context -> source file: what the image copies."""
    files = {"Containerfile": HERE / "Containerfile", "postgres.sh": HERE / "postgres.sh",
             "tests/__init__.py": ROOT / "tests" / "__init__.py"}
    for path in sorted((ROOT / "tests" / "otherpay").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            files[f"tests/otherpay/{path.relative_to(ROOT / 'tests' / 'otherpay')}"] = path
    return files


def image_ref(stack_image: str) -> str:
    digest = hashlib.sha256(stack_image.encode())
    for name, path in context_files().items():
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return f"{IMAGE}:{digest.hexdigest()[:12]}"


def ensure_image(client: docker.DockerClient, stack_image: str) -> str:
    """The otherpay image for the current sources, built (offline, ~2 s) when missing."""
    ref = image_ref(stack_image)
    try:
        client.images.get(ref)
        return ref
    except ImageNotFound:
        pass
    with tempfile.TemporaryDirectory(prefix="otherpay-image-") as context:
        for name, path in context_files().items():
            (Path(context) / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, Path(context) / name)
        client.images.build(path=context, dockerfile="Containerfile", tag=ref, rm=True,
                            buildargs={"STACK_IMAGE": stack_image}, network_mode="none")
    for image in client.images.list(name=IMAGE):  # older builds: a stack rebuild leaves them
        if ref not in image.tags:
            try:
                client.images.remove(image.id, force=True)
            except docker.errors.APIError:
                continue
    return ref


def free_subnet(client: docker.DockerClient) -> ipaddress.IPv4Network:
    """A /24 of 198.18.0.0/15 that no interface, route or engine network uses, from the top."""
    used: list[Any] = [*networks_in_use()]
    for network in client.networks.list():
        for pool in (network.attrs.get("IPAM") or {}).get("Config") or []:
            if pool.get("Subnet"):
                used.append(ipaddress.ip_network(pool["Subnet"], strict=False))
    for candidate in reversed(list(LAB_RANGE.subnets(new_prefix=24))[1:-SKIP_TOP]):
        if not any(candidate.overlaps(net) for net in used if net.version == 4):
            return candidate
    raise AssertionError("no free /24 in 198.18.0.0/15")


def free_port(host: str) -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class ComposeProject:
    """One otherpay project, up. Addresses are container addresses on its internal network."""

    name: str
    engine: str
    client: docker.DockerClient
    image: str
    subnet: ipaddress.IPv4Network
    toxiproxy_url: str
    bank_proxy_port: int
    env: dict[str, str] = field(default_factory=dict)

    @property
    def prefix(self) -> str:
        return str(self.subnet.network_address).rsplit(".", 1)[0]

    @property
    def gateway(self) -> str:
        return f"{self.prefix}.1"

    @property
    def network(self) -> str:
        return f"{self.name}_pay"

    @property
    def api_url(self) -> str:
        return f"http://{self.prefix}.240:{PORTS['api']}"

    @property
    def database_url(self) -> str:
        return f"postgresql://postgres@{self.prefix}.250:5432/postgres"

    @property
    def bank_proxy(self) -> str:
        return f"otherpay-bank-{self.name}"

    @property
    def bank_proxy_listen(self) -> str:
        return f"{self.gateway}:{self.bank_proxy_port}"

    def compose(self, *args: str, timeout: float = 120) -> str:
        from tests.fixtures.real import require_real  # a plug-in of its own: not at import

        command = [require_real("docker-compose"), "-p", self.name, "-f", str(COMPOSE_FILE)]
        done = subprocess.run([*command, *args], env={**os.environ, **self.env},
                              capture_output=True, text=True, timeout=timeout, check=False)
        assert done.returncode == 0, f"docker-compose {' '.join(args)}: {done.stderr[-2000:]}"
        return done.stdout

    def container(self, service: str) -> Container:
        """The service's own container (not a replica chaoskit added)."""
        found = [c for c in self.client.containers.list(all=True, filters={"label": [
            f"com.docker.compose.project={self.name}", f"com.docker.compose.service={service}"]})
            if "io.chaoskit.change" not in c.labels]
        assert len(found) == 1, f"{service}: {[c.name for c in found]}"
        return found[0]

    def ip(self, service: str) -> str:
        container = self.container(service)
        return str(container.attrs["NetworkSettings"]["Networks"].get(self.network, {})
                   .get("IPAddress") or "")

    def url(self, service: str) -> str:
        return f"http://{self.ip(service)}:{PORTS[service]}"

    def health_url(self, service: str) -> str:
        return self.url(service) + HEALTH[service]

    def healthy(self, service: str) -> bool:
        if service == "postgres":
            try:
                with psycopg.connect(self.database_url, connect_timeout=1):
                    return True
            except psycopg.Error:
                return False
        ip = self.ip(service)
        try:
            return bool(ip) and httpx.get(f"http://{ip}:{PORTS[service]}{HEALTH[service]}",
                                          timeout=1, trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_healthy(self, services: tuple[str, ...] = ("postgres", "bank", "api", "worker"),
                     timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        waiting = list(services)
        while waiting:
            waiting = [s for s in waiting if not self.healthy(s)]
            if waiting and time.monotonic() > deadline:
                logs = {s: self.container(s).logs(tail=10).decode(errors="replace")
                        for s in waiting}
                raise AssertionError(f"{waiting} not healthy within {timeout:g}s: {logs}")
            time.sleep(0.1)

    def target(self, **fields: Any) -> dict[str, Any]:
        """A containers platform target for this project (`fields` add or override)."""
        return {"platform": "containers", "engine": self.engine, "project": self.name,
                "entry": self.api_url, "database": self.database_url,
                "toxiproxy": self.toxiproxy_url,
                "health": {s: f"http://{{address}}:{p}{HEALTH[s]}" for s, p in PORTS.items()},
                **fields}


def compose_env(name: str, engine: str, image: str, subnet: ipaddress.IPv4Network,
                bank_url: str) -> dict[str, str]:
    nofile, nproc = safe_ulimits()
    return {"DOCKER_HOST": engine, "OTHERPAY_IMAGE": image, "OTHERPAY_PROJECT": name,
            "OTHERPAY_OWNER": str(os.getpid()),
            "OTHERPAY_NET": str(subnet.network_address).rsplit(".", 1)[0],
            "OTHERPAY_NOFILE": str(nofile.soft), "OTHERPAY_NPROC": str(nproc.soft),
            "OTHERPAY_BANK_URL": bank_url, "COMPOSE_HTTP_TIMEOUT": "120"}


def leftovers(client: docker.DockerClient, name: str) -> list[str]:
    """Anything of project `name` on the engine: its containers and networks."""
    found = {f"container {c.name}" for label in ("com.docker.compose.project", PROJECT_LABEL)
             for c in client.containers.list(all=True, filters={"label": f"{label}={name}"})}
    found |= {f"network {n.name}"
              for n in client.networks.list(filters={"label": f"{PROJECT_LABEL}={name}"})}
    return sorted(found)


def strangers(client: docker.DockerClient, name: str) -> list[Container]:
    """Containers on the project's networks that are not the project's (a batch, say)."""
    found = []
    for network in client.networks.list(filters={"label": f"{PROJECT_LABEL}={name}"}):
        found += [c for c in client.containers.list(all=True,
                                                    filters={"network": network.name})
                  if c.labels.get("com.docker.compose.project") != name]
    return found


def force_remove(client: docker.DockerClient, label: str) -> None:
    """Containers on the labelled networks or carrying the label, then the networks."""
    networks = client.networks.list(filters={"label": label})
    doomed = client.containers.list(all=True, filters={"label": label})
    for network in networks:
        doomed += client.containers.list(all=True, filters={"network": network.name})
    for container in doomed:
        try:
            container.remove(force=True)
        except NotFound:
            continue
    for network in networks:
        try:
            network.remove()
        except NotFound:
            continue


def sweep_dead_owners(client: docker.DockerClient) -> None:
    """Projects a killed test session left (their owner pid is gone)."""
    owners = {c.labels.get(OWNER_LABEL, "") for c in client.containers.list(
        all=True, filters={"label": OWNER_LABEL})}
    owners |= {n.attrs.get("Labels", {}).get(OWNER_LABEL, "")
               for n in client.networks.list(filters={"label": OWNER_LABEL})}
    for owner in owners:
        if owner.isdigit() and not Path(f"/proc/{owner}").exists():
            force_remove(client, f"{OWNER_LABEL}={owner}")
