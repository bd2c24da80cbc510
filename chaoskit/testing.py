"""Fakes at chaoskit's own seams, for users' tests and ours: a fake platform, fault and probe.

The fake platform keeps its state in a directory (not in memory of one process), so a fault
injected by a runner can be seen and reverted by the watchdog or `chaoskit recover`.

    target: {platform: fake, lab: /tmp/fake-state}
    faults: [{name: f1, type: fake, duration: 2s, signal: error_rate, value: 0.2}]
    guardrails: [{name: errors, probe: {type: fake, signal: error_rate}, abort_when: "> 0.1"}]
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from chaoskit.errors import FaultError, PlatformError, ProbeError
from chaoskit.faults.base import FaultConfig, Intent, Touch
from chaoskit.platforms.abilities import (
    ALL_ABILITIES,
    Need,
    NodeInfo,
    OfflineProcess,
    OfflineWork,
    PlatformConfig,
)
from chaoskit.probes.base import ProbeConfig, ProbeContext
from chaoskit.spec.units import Duration


class FakeConfig(PlatformConfig):
    lab: str | None = Field(default=None, description="the fake platform's state directory")


class FakePlatform:
    """A platform whose 'infrastructure' is files: faults are marker files, signals numbers.

    It offers every ability of `chaoskit.platforms.abilities`, so a test (ours or a user's)
    fakes at this one seam: node loss marks a node lost, scale adds or retires nodes, offline
    work is a file per process, addresses are whatever the test sets (`set_address`).
    """

    name = "fake"
    Config = FakeConfig

    def __init__(self, state_dir: str | Path | None = None, nodes: int = 3) -> None:
        self.state_dir = Path(state_dir or tempfile.mkdtemp(prefix="chaoskit-fake-"))
        for sub in ("faults", "signals", "counters", "roles", "lost", "offline", "addresses"):
            (self.state_dir / sub).mkdir(parents=True, exist_ok=True)
        if not (self.state_dir / "nodes.json").exists():
            self._save_nodes({f"node-{i}": "UP" for i in range(1, nodes + 1)})

    @classmethod
    def from_target(cls, target: Any) -> FakePlatform:
        config = FakeConfig.model_validate(target.options())
        return cls(config.lab or os.environ.get("CHAOSKIT_FAKE_STATE"))

    @classmethod
    def from_description(cls, description: dict[str, Any]) -> FakePlatform:
        return cls(description["state_dir"])

    def describe(self) -> dict[str, Any]:
        return {"platform": "fake", "state_dir": str(self.state_dir)}

    def identity(self) -> str:
        return str(self.state_dir.resolve())

    async def preflight(self) -> list[str]:
        problem = self.state_dir / "preflight-problem"
        return [problem.read_text()] if problem.exists() else []

    # -- nodes -----------------------------------------------------------------------------
    def _load_nodes(self) -> dict[str, str]:
        loaded: dict[str, str] = json.loads((self.state_dir / "nodes.json").read_text())
        return loaded

    def _save_nodes(self, nodes: dict[str, str]) -> None:
        (self.state_dir / "nodes.json").write_text(json.dumps(nodes))

    def nodes(self) -> list[NodeInfo]:
        return [NodeInfo(name, f"127.0.0.{i}") for i, name in
                enumerate(self._load_nodes(), start=1)]

    # -- addresses -------------------------------------------------------------------------
    def set_address(self, what: str, url: str) -> None:
        """entry | database | toxiproxy | prometheus -> a URL the test serves."""
        (self.state_dir / "addresses" / what).write_text(url)

    def _address(self, what: str) -> str:
        path = self.state_dir / "addresses" / what
        if not path.exists():
            raise PlatformError(f"the fake platform has no {what} address",
                                hint=f"call FakePlatform.set_address({what!r}, URL) first")
        return path.read_text()

    def entry_url(self) -> str:
        return self._address("entry")

    def database_url(self) -> str:
        return self._address("database")

    def toxiproxy_url(self) -> str:
        path = self.state_dir / "addresses" / "toxiproxy"
        return path.read_text() if path.exists() else "http://127.0.0.1:0"

    def declared_proxies(self) -> list[dict[str, str]]:
        return []

    def prometheus_url(self) -> str:
        return self._address("prometheus")

    def metrics_targets(self, exclude_node: str | None = None) -> dict[str, str]:
        path = self.state_dir / "addresses" / "metrics.json"
        targets: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
        return {k: v for k, v in targets.items() if exclude_node is None
                or not k.endswith("@" + exclude_node)}

    def own_hosts(self) -> list[str]:
        return ["127.0.0.0/8", "localhost"]

    # -- roles -----------------------------------------------------------------------------
    def roles(self) -> tuple[str, ...]:
        set_here = sorted(p.name for p in (self.state_dir / "roles").iterdir())
        return tuple(dict.fromkeys(["leader", "worker", "gateway", *set_here]))

    def node_for_role(self, role: str) -> str:
        """The node a role is on: `move_role` sets it (a leader elected elsewhere, say)."""
        path = self.state_dir / "roles" / role.replace("/", "%")
        return path.read_text() if path.exists() else self.nodes()[0].name

    def move_role(self, role: str, node: str) -> None:
        (self.state_dir / "roles" / role.replace("/", "%")).write_text(node)

    def nodes_of_pods(self, selector: str) -> list[str]:
        """The node `move_role(selector, node)` put the selector's pods on."""
        return [self.node_for_role(selector)]

    def lease_holder_node(self, namespace: str, name: str) -> str:
        return self.node_for_role(f"lease:{namespace}/{name}")

    def node_of_pod(self, pod: str) -> str:
        return self.node_for_role(f"pod:{pod}")

    # -- node operations -------------------------------------------------------------------
    def node_loss_modes(self) -> dict[str, str | None]:
        return {mode: None for mode in ("kill", "freeze", "isolate", "stop", "drain",
                                        "node-down")}

    def lose_node(self, node: str, mode: str) -> dict[str, Any]:
        if node not in self._load_nodes():
            raise PlatformError(f"the fake platform has no node {node}")
        (self.state_dir / "lost" / node).write_text(mode)
        return {"lost": node}

    def restore_node(self, node: str, mode: str) -> dict[str, Any]:
        (self.state_dir / "lost" / node).unlink(missing_ok=True)
        return {"restored": node}

    def node_residue(self, node: str) -> list[str]:
        lost = self.state_dir / "lost" / node
        return [f"node {node} is still lost ({lost.read_text()})"] if lost.exists() else []

    def lost_nodes(self) -> list[str]:
        return sorted(p.name for p in (self.state_dir / "lost").iterdir())

    def node_health_urls(self, node: str) -> dict[str, str]:
        return {}

    def leases_held(self, node: str) -> int:
        return 0

    async def watch_recovery(self, node: str, mode: str, timeout: float) -> dict[str, Any]:
        """Recovered at once: a fake system heals the moment it is asked."""
        return {"recovered": True, "recovery_s": 0.0}

    def missing_access(self, fault_type: str, mode: str = "") -> list[str]:
        path = self.state_dir / "access-missing"
        return path.read_text().splitlines() if path.exists() else []

    # -- capacity --------------------------------------------------------------------------
    def next_node_names(self, count: int) -> list[str]:
        taken = set(self._load_nodes())
        free = (f"node-{k}" for k in range(1, 1000) if f"node-{k}" not in taken)
        return [next(free) for _ in range(count)]

    def add_node(self, name: str | None = None) -> str:
        nodes = self._load_nodes()
        name = name or self.next_node_names(1)[0]
        nodes[name] = "UP"
        self._save_nodes(nodes)
        return name

    def drain_gateway(self, name: str, timeout: float) -> float:
        return 0.0

    def remove_node(self, name: str) -> None:
        nodes = self._load_nodes()
        nodes.pop(name, None)
        self._save_nodes(nodes)

    def entry_states(self) -> dict[str, str]:
        return self._load_nodes()

    def departed_residue(self, name: str) -> list[str]:
        return [f"node {name} is still there"] if name in self._load_nodes() else []

    def retire_node(self, name: str, drain: float) -> list[str]:
        nodes = self._load_nodes()
        nodes[name] = "MAINT"
        self._save_nodes(nodes)
        return [name]

    def return_node(self, name: str) -> list[str]:
        nodes = self._load_nodes()
        nodes[name] = "UP"
        self._save_nodes(nodes)
        return [name]

    # -- co-location -----------------------------------------------------------------------
    def start_offline(self, node: str, tag: str, work: OfflineWork) -> str:
        process_id = f"{tag}@{node}"
        (self.state_dir / "offline" / process_id).write_text(json.dumps(
            {"node": node, "work": work.work, "started_at": time.time()}))
        return process_id

    def offline_processes(self, tag: str) -> list[OfflineProcess]:
        found = []
        for path in sorted((self.state_dir / "offline").glob(f"{tag}@*")):
            info = json.loads(path.read_text())
            found.append(OfflineProcess(path.name, info["node"], info["work"], True, "",
                                        info["started_at"]))
        return found

    def stop_offline(self, tag: str) -> list[str]:
        stopped = []
        for path in (self.state_dir / "offline").glob(f"{tag}@*"):
            path.unlink(missing_ok=True)
            stopped.append(path.name)
        return stopped

    def offline_residue(self, tag: str) -> list[str]:
        return [f"offline {p.name} still runs"
                for p in (self.state_dir / "offline").glob(f"{tag}@*")]

    def offline_isolation(self) -> str:
        return "none (fake)"

    def process_cpu_seconds(self, process_id: str) -> float:
        return 0.0

    # -- load from many machines ------------------------------------------------------------
    def start_load_job(self, plan: Any, *, pods: int, start_at: float) -> str:
        (self.state_dir / "load-job").write_text(json.dumps({"pods": pods}))
        return "fake-load-job"

    def load_reports_ready(self, job: str) -> int:
        path = self.state_dir / "load-job"
        return int(json.loads(path.read_text())["pods"]) if path.exists() else 0

    def collect_load(self, job: str, pods: int, timeout: float) -> dict[str, Any]:
        (self.state_dir / "load-job").unlink(missing_ok=True)
        return {"intended": 0, "sent": 0, "ok": 0, "errors": 0, "missing": []}

    def stop_load_job(self, job: str) -> None:
        (self.state_dir / "load-job").unlink(missing_ok=True)

    # -- run binding and test helpers -------------------------------------------------------
    def bind_run(self, run_id: str) -> None:
        (self.state_dir / "run").write_text(run_id)

    def applied(self) -> list[str]:
        """Names of the fake faults currently applied."""
        return sorted(p.name for p in (self.state_dir / "faults").iterdir())

    def set_signal(self, name: str, value: float) -> None:
        (self.state_dir / "signals" / name).write_text(repr(value))

    def signal(self, name: str) -> float | None:
        path = self.state_dir / "signals" / name
        return float(path.read_text()) if path.exists() else None

    def bump(self, counter: str) -> int:
        path = self.state_dir / "counters" / counter
        count = int(path.read_text()) + 1 if path.exists() else 1
        path.write_text(str(count))
        return count


def _members(ability: type) -> set[str]:
    return {m for m, value in vars(ability).items() if callable(value) and not m.startswith("_")}


def platform_without(*abilities: type, name: str = "bare",
                     state_dir: str | Path | None = None) -> FakePlatform:
    """A FakePlatform that lacks `abilities` (their methods are blocked, as typing's protocols
    understand it), to test what a driver says on a platform that cannot do something."""
    blocked: dict[str, Any] = {"name": name}
    others = [a for a in ALL_ABILITIES if a not in abilities]
    shared = {m for a in others for m in _members(a)}
    for ability in abilities:  # members other abilities share stay, so only these go
        blocked |= {member: None for member in _members(ability) - shared}
    cls = type(f"FakeWithout{''.join(a.__name__ for a in abilities)}", (FakePlatform,), blocked)
    platform: FakePlatform = cls(state_dir)
    return platform


class FakeFaultConfig(FaultConfig):
    signal: str | None = None
    value: float = 1.0
    fail: Literal["inject", "revert", "revert-once", "revert-while-blocked", "audit"] | None = (
        None)
    inject_delay: Duration = 0.0
    revert_delay: Duration = 0.0


class FakeFault:
    """`type: fake`: marks itself applied; optionally sets a signal, fails or dawdles on demand."""

    type_name: ClassVar[str] = "fake"
    Config: ClassVar[type[FaultConfig]] = FakeFaultConfig
    destructive: ClassVar[bool] = False  # marker files only, whatever node it names

    def __init__(self, platform: FakePlatform, run: str = "adhoc") -> None:
        self.platform = platform
        self.run = run

    def needs(self, config: FaultConfig) -> list[Need]:
        return []

    def touches(self, intent: Intent) -> list[Touch]:
        node = intent.get("node")
        return [Touch("node", node, self.platform.identity())] if node else []

    def plan(self, name: str, target: dict[str, Any], config: FaultConfig,
             rng: random.Random) -> Intent:
        node = target.get("node")
        if node == "any":
            node = rng.choice(self.platform.nodes()).name
        elif "role" in target:
            node = self.platform.node_for_role(target["role"])
        return {"fault": name, "node": node, **config.model_dump()}

    def _marker(self, intent: Intent) -> Path:
        return self.platform.state_dir / "faults" / intent["fault"]

    async def inject(self, intent: Intent) -> dict[str, Any]:
        await asyncio.sleep(intent["inject_delay"])
        self._marker(intent).write_text("applied")  # applied first: a half-done inject
        if intent["fail"] == "inject":
            raise FaultError(f"fake fault {intent['fault']} failed mid-inject (as asked)")
        if intent["signal"]:
            self.platform.set_signal(intent["signal"], intent["value"])
        return {"node": intent["node"]}

    async def revert(self, intent: Intent) -> dict[str, Any]:
        await asyncio.sleep(intent["revert_delay"])
        attempts = self.platform.bump(f"revert-{intent['fault']}")
        blocked = (self.platform.state_dir / "block-revert").exists()
        if (intent["fail"] == "revert" or (intent["fail"] == "revert-once" and attempts == 1)
                or (intent["fail"] == "revert-while-blocked" and blocked)):
            raise FaultError(f"fake fault {intent['fault']} failed to revert (as asked)")
        self._marker(intent).unlink(missing_ok=True)
        if intent["signal"]:
            (self.platform.state_dir / "signals" / intent["signal"]).unlink(missing_ok=True)
        return {"attempts": attempts}

    async def verify_reverted(self, intent: Intent) -> list[str]:
        if intent["fail"] == "audit":
            return [f"fake fault {intent['fault']} reports residue (as asked)"]
        marker = self._marker(intent)
        return [f"fake fault {intent['fault']} is still applied"] if marker.exists() else []


class FakeProbeConfig(ProbeConfig):
    signal: str
    default: float = 0.0
    fail: bool = False
    no_data: bool = False  # the probe has nothing to measure (no flow fell due, say)
    unit: str = ""


class FakeProbe:
    """`type: fake`: reads a signal of the fake platform (the default when it is not set)."""

    type_name: ClassVar[str] = "fake"
    Config: ClassVar[type[ProbeConfig]] = FakeProbeConfig

    def __init__(self, config: ProbeConfig, context: ProbeContext) -> None:
        assert isinstance(config, FakeProbeConfig)
        self.config = config
        self.platform: FakePlatform = context.platform

    async def sample(self) -> float | None:
        if self.config.fail:
            raise ProbeError(f"fake probe on '{self.config.signal}' failed (as asked)")
        if self.config.no_data:
            return None
        value = self.platform.signal(self.config.signal)
        return self.config.default if value is None else value

    def unit(self) -> str:
        return self.config.unit

    async def close(self) -> None:
        return None
