"""The one seam to the container engine: find a Docker Engine API, start Podman's, connect."""

from __future__ import annotations

import fcntl
import ipaddress
import os
import resource
import shutil
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import docker
import requests
from docker.errors import DockerException
from docker.types import Ulimit

from chaoskit import toolchain
from chaoskit.errors import PlatformError

DOCKER_SOCKET = Path("/var/run/docker.sock")
PODMAN_ROOTFUL_SOCKET = Path("/run/podman/podman.sock")
SERVICE_START_TIMEOUT = 15.0
# Wanted per container, then clamped to our hard limits: a container cannot raise them here.
# NPROC counts every process of a uid on the host, and the stack runs as uid 10001 in every
# container; Podman lowers its own NPROC hard limit (to 32768 here), so ask for far less.
NOFILE = 65536
NPROC = 4096
_HELPER_DIRS = ("/usr/libexec/podman", "/usr/lib/podman", "/usr/local/libexec/podman",
                "/usr/local/lib/podman")
_CONNECT_ERRORS = (DockerException, requests.RequestException, OSError)
_START_HINT = ("start `podman system service --time=0 unix://SOCKET` (chaoskit starts one at "
               "{managed} when nothing answers; `make setup` installs podman) or set DOCKER_HOST "
               "to a Docker or Podman socket")


def podman_home() -> Path:
    """Where chaoskit keeps its Podman service: config, socket, log, network definitions."""
    return toolchain.CACHE / "podman"


def managed_url() -> str:
    return f"unix://{podman_home() / 'podman.sock'}"


def engine_url(explicit: str | None = None) -> str:
    """The engine to use: `explicit`, $DOCKER_HOST, Docker's socket or Podman's rootful socket
    if one answers, else the socket of the Podman service chaoskit manages."""
    if explicit:
        return explicit
    if os.environ.get("DOCKER_HOST"):
        return os.environ["DOCKER_HOST"]
    for candidate in (DOCKER_SOCKET, PODMAN_ROOTFUL_SOCKET):
        if answers(f"unix://{candidate}"):
            return f"unix://{candidate}"
    return managed_url()


def answers(url: str, timeout: float = 1.0) -> bool:
    """Whether `GET /_ping` at a unix:// or tcp:// engine URL gets a 200 (other schemes, such
    as ssh://, cannot be probed cheaply and are left to `connect`)."""
    parts = urlsplit(url)
    address: str | tuple[str, int]
    if parts.scheme == "unix":
        family, address = socket.AF_UNIX, parts.path
    elif parts.scheme in ("tcp", "http") and parts.hostname and parts.port:
        family, address = socket.AF_INET, (parts.hostname, parts.port)
    else:
        return True
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(address)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: engine\r\n\r\n")
            status = sock.recv(64).split(b"\r\n", 1)[0].split()
    except OSError:
        return False
    return len(status) >= 2 and status[0].startswith(b"HTTP/") and status[1] == b"200"


def api_version(url: str, timeout: float = 1.0) -> str | None:
    """The API version a unix:// engine names in its `GET /_ping` answer (`API-Version`), so a
    client need not ask `GET /version`, which Podman answers slowly (~0.4 s: it gathers host
    facts); None when it names none or cannot be asked that way."""
    parts = urlsplit(url)
    if parts.scheme != "unix":
        return None
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(parts.path)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: engine\r\n\r\n")
            head = sock.recv(4096).split(b"\r\n\r\n", 1)[0].decode(errors="replace")
    except OSError:
        return None
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "api-version" and value.strip():
            return value.strip()
    return None


def connect(url: str | None = None, timeout: float = 10,
            version: str | None = None) -> docker.DockerClient:
    """A client of the engine at `url` (or the discovered one) that has answered a ping;
    `version` pins the API version (None: the client asks the engine)."""
    target = engine_url(url)
    try:
        client = docker.DockerClient(base_url=target, timeout=timeout, version=version)
    except _CONNECT_ERRORS as exc:
        raise _unreachable(target, str(exc)) from None
    try:
        client.ping()
    except _CONNECT_ERRORS as exc:
        client.close()
        raise _unreachable(target, str(exc)) from None
    return client


def ensure_podman_service() -> str:
    """The URL of an engine that answers, starting chaoskit's Podman service when discovery
    finds none (idempotent: a live service is reused, a stale socket file replaced)."""
    url = engine_url()
    if answers(url):
        return url
    if url != managed_url():
        raise _unreachable(url, "it does not answer")
    podman = toolchain.find_binary("podman")
    if podman is None:
        raise PlatformError("no container engine answers and podman is not installed",
                            hint="run `make setup` (it installs podman and runc) or set "
                                 "DOCKER_HOST to a Docker or Podman socket")
    podman_home().mkdir(parents=True, exist_ok=True)
    with (podman_home() / "service.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test sessions must not start two services
        if not answers(url):
            _start_service(podman, url)
    return url


def containers_conf() -> Path:
    """chaoskit's containers.conf for Podman (CONTAINERS_CONF), written when it changes: runc
    (crun refuses hybrid cgroups), cgroupfs and file events (no systemd needed), ulimits a
    container may have here, network definitions kept under chaoskit's cache, not /etc."""
    path = podman_home() / "containers.conf"
    networks = podman_home() / "networks"
    networks.mkdir(parents=True, exist_ok=True)
    ulimits = ", ".join(f'"{u.name}={u.soft}:{u.hard}"' for u in safe_ulimits())
    text = (f"# Written by chaoskit: the Podman service it starts. Rewritten when it changes.\n"
            f"[containers]\ndefault_ulimits = [{ulimits}]\n\n"
            f'[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n\n'
            f'[network]\nnetwork_backend = "{_network_backend()}"\n'
            f'network_config_dir = "{networks}"\n')
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)
    return path


def safe_ulimits(nofile: int = NOFILE, nproc: int = NPROC) -> list[Ulimit]:
    """nofile and nproc for a container, never above our hard limits. Pass both, always: an
    engine fills in a missing one with its own default, which runc then fails to set here."""
    return [_clamped("nofile", resource.RLIMIT_NOFILE, nofile),
            _clamped("nproc", resource.RLIMIT_NPROC, nproc)]


def stable_mac(ip: str) -> str:
    """A MAC address derived from an IPv4 address (02:42 + its four bytes, as Docker's bridge
    once did). A container that keeps its IP across disconnect/connect or kill/start must keep
    its MAC too: the host's ARP cache still holds the old one and it stays unreachable for
    seconds to minutes otherwise."""
    octets = ipaddress.IPv4Address(ip).packed
    return "02:42:" + ":".join(f"{byte:02x}" for byte in octets)


def _clamped(name: str, which: int, wanted: int) -> Ulimit:
    _soft, hard = resource.getrlimit(which)
    value = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    return Ulimit(name=name, soft=value, hard=value)


def _network_backend() -> str:
    """netavark (with aardvark-dns: containers find each other by name) when installed."""
    found = any(Path(folder, "netavark").is_file() for folder in _HELPER_DIRS)
    return "netavark" if found else "cni"


def _start_service(podman: str, url: str) -> None:
    sock = Path(urlsplit(url).path)
    sock.unlink(missing_ok=True)  # stale: nothing answered on it
    log_path = podman_home() / "service.log"
    env = {**os.environ, "CONTAINERS_CONF": str(containers_conf())}
    setsid = shutil.which("setsid")
    if setsid is None:
        raise PlatformError("setsid is not installed", hint="install util-linux")
    with log_path.open("ab") as log:
        # setsid --fork: its own session, and not our child, so it outlives us, never our zombie.
        subprocess.run([setsid, "--fork", podman, "system", "service", "--time=0", url],
                       stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                       check=True, timeout=10)
    deadline = time.monotonic() + SERVICE_START_TIMEOUT
    while not answers(url):
        if time.monotonic() > deadline:
            raise PlatformError(f"podman system service did not answer on {sock} within "
                                f"{SERVICE_START_TIMEOUT:g}s: {_tail(log_path)}",
                                hint=f"read {log_path}; try `CONTAINERS_CONF="
                                     f"{env['CONTAINERS_CONF']} podman info`")
        time.sleep(0.05)


def _tail(path: Path, lines: int = 3) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _unreachable(url: str, detail: str) -> PlatformError:
    path = Path(urlsplit(url).path) if url.startswith("unix://") else None
    if path is not None and not path.exists():
        detail = f"{path} does not exist"
    return PlatformError(f"no container engine answers at {url}: {detail}",
                         hint=_START_HINT.format(managed=managed_url()))
