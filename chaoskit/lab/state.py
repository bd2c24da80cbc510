"""The lab's state file: what a lab is made of, written before each part is created."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaoskit.errors import PlatformError

STATE_FILE = "state.json"
MARKER_ENV = "CHAOSKIT_LAB_MARK"


def state_root() -> Path:
    """$CHAOSKIT_STATE_DIR/labs, default ~/.local/state/chaoskit/labs."""
    base = os.environ.get("CHAOSKIT_STATE_DIR")
    root = Path(base) if base else Path.home() / ".local" / "state" / "chaoskit"
    return root / "labs"


def lab_dir(name_or_dir: str | None) -> Path:
    """A lab name ('default') maps under the state root; a path (with a '/') is used as is."""
    ref = name_or_dir or "default"
    if "/" in ref or ref.startswith("."):
        return Path(ref).expanduser().resolve()
    return (state_root() / ref).resolve()


def lab_id(directory: Path) -> str:
    """Short id naming the lab's kernel objects (links are limited to 15 characters)."""
    return hashlib.sha1(str(directory).encode()).hexdigest()[:5]


@dataclass
class ProcessRecord:
    """One lab process; `pid`/`started` identify it even after a pid is reused."""

    id: str
    service: str
    node: str | None
    argv: list[str]
    env: dict[str, str]
    log: str
    listen: str = ""
    pid: int | None = None
    started: int | None = None
    user: str | None = None
    health: str = ""


@dataclass
class NodeRecord:
    """A failure domain: a netns + cgroups (root), a process group on loopback, or a
    container on the lab's network (the containers runtime)."""

    name: str
    address: str
    netns: str | None = None
    veth: str | None = None
    cgroups: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)
    container: str | None = None


@dataclass
class LabState:
    name: str
    dir: str
    lab_id: str
    mode: str
    status: str = "creating"
    runtime: str = "processes"  # processes (netns or process nodes) | containers
    owner_pid: int = 0
    time_scale: float = 60.0
    subnet: str = ""
    bridge: str = ""
    host_ip: str = "127.0.0.1"
    toxiproxy_api: str = ""
    proxies: dict[str, dict[str, str]] = field(default_factory=dict)
    postgres_url: str = ""
    postgres_external: bool = False
    pgdata: str = ""
    entry_url: str = ""
    haproxy_socket: str = ""
    nodes: list[NodeRecord] = field(default_factory=list)
    processes: list[ProcessRecord] = field(default_factory=list)
    cgroup_roots: list[str] = field(default_factory=list)
    engine: str = ""  # containers runtime: the Docker Engine API URL
    image: str = ""  # containers runtime: the stack image its nodes run
    network: str = ""  # containers runtime: the engine network of the nodes

    @property
    def path(self) -> Path:
        return Path(self.dir)

    @property
    def marker(self) -> str:
        """Value of MARKER_ENV on every process this lab starts (found again by a scan)."""
        return f"{self.lab_id}:{self.dir}"

    def node(self, name: str) -> NodeRecord:
        for node in self.nodes:
            if node.name == name:
                return node
        known = ", ".join(n.name for n in self.nodes)
        raise PlatformError(f"the lab '{self.name}' has no node '{name}'",
                            hint=f"use one of: {known}")

    def process(self, pid_or_id: str) -> ProcessRecord | None:
        return next((p for p in self.processes if p.id == pid_or_id), None)

    def processes_on(self, node: str) -> list[ProcessRecord]:
        return [p for p in self.processes if p.node == node]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LabState:
        data = dict(data)
        data["nodes"] = [NodeRecord(**n) for n in data.get("nodes", [])]
        data["processes"] = [ProcessRecord(**p) for p in data.get("processes", [])]
        return cls(**data)


def save(state: LabState) -> None:
    """Atomic and durable: a crash right after this call still leaves the record on disk."""
    path = state.path / STATE_FILE
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as out:
        json.dump(state.to_dict(), out, indent=1)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def load(directory: Path) -> LabState:
    path = directory / STATE_FILE
    try:
        return LabState.from_dict(json.loads(path.read_text()))
    except FileNotFoundError:
        raise PlatformError(f"no lab at {directory}",
                            hint="start one with `chaoskit lab up` (or pass --name)") from None
    except (ValueError, TypeError) as exc:
        raise PlatformError(f"the lab state file {path} is unreadable: {exc}",
                            hint="remove the directory after checking nothing of it runs") from exc


def exists(directory: Path) -> bool:
    return (directory / STATE_FILE).exists()


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Serialises read-modify-write of one lab's state between processes (CLI, watchdog)."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def logs_dir(state: LabState) -> Path:
    return state.path / "logs"
