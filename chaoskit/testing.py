"""Fakes at chaoskit's own seams, for users' tests and ours: a fake platform, fault and probe.

The fake platform keeps its state in a directory (not in memory of one process), so a fault
injected by a runner can be seen and reverted by the watchdog or `chaoskit recover`.

    target: {platform: fake, lab: /tmp/fake-state}
    faults: [{name: f1, type: fake, duration: 2s, signal: error_rate, value: 0.2}]
    guardrails: [{name: errors, probe: {type: fake, signal: error_rate}, abort_when: "> 0.1"}]
"""

from __future__ import annotations

import asyncio
import os
import random
import tempfile
from pathlib import Path
from typing import Any, ClassVar, Literal

from chaoskit.errors import FaultError, ProbeError
from chaoskit.faults.base import FaultConfig, Intent
from chaoskit.platforms.base import NodeInfo
from chaoskit.probes.base import ProbeConfig, ProbeContext
from chaoskit.spec.units import Duration


class FakePlatform:
    """A platform whose 'infrastructure' is files: faults are marker files, signals are numbers."""

    name = "fake"

    def __init__(self, state_dir: str | Path | None = None, nodes: int = 3) -> None:
        self.state_dir = Path(state_dir or tempfile.mkdtemp(prefix="chaoskit-fake-"))
        for sub in ("faults", "signals", "counters", "roles"):
            (self.state_dir / sub).mkdir(parents=True, exist_ok=True)
        self._nodes = [NodeInfo(f"node-{i}", f"127.0.0.{i}") for i in range(1, nodes + 1)]

    @classmethod
    def from_target(cls, target: Any) -> FakePlatform:
        return cls(target.lab or os.environ.get("CHAOSKIT_FAKE_STATE"))

    @classmethod
    def from_description(cls, description: dict[str, Any]) -> FakePlatform:
        return cls(description["state_dir"])

    def describe(self) -> dict[str, Any]:
        return {"platform": "fake", "state_dir": str(self.state_dir)}

    def toxiproxy_url(self) -> str:
        return "http://127.0.0.1:0"

    def nodes(self) -> list[NodeInfo]:
        return list(self._nodes)

    def node_for_role(self, role: str) -> str:
        """The node a role is on: `move_role` sets it (a leader elected elsewhere, say)."""
        path = self.state_dir / "roles" / role
        return path.read_text() if path.exists() else self._nodes[0].name

    def move_role(self, role: str, node: str) -> None:
        (self.state_dir / "roles" / role).write_text(node)

    async def preflight(self) -> list[str]:
        problem = self.state_dir / "preflight-problem"
        return [problem.read_text()] if problem.exists() else []

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


class FakeFaultConfig(FaultConfig):
    signal: str | None = None
    value: float = 1.0
    fail: Literal["inject", "revert", "revert-once", "audit"] | None = None
    inject_delay: Duration = 0.0
    revert_delay: Duration = 0.0


class FakeFault:
    """`type: fake`: marks itself applied; optionally sets a signal, fails or dawdles on demand."""

    type_name: ClassVar[str] = "fake"
    Config: ClassVar[type[FaultConfig]] = FakeFaultConfig

    def __init__(self, platform: FakePlatform) -> None:
        self.platform = platform

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
        if intent["fail"] == "revert" or (intent["fail"] == "revert-once" and attempts == 1):
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


class FakeProbe:
    """`type: fake`: reads a signal of the fake platform (the default when it is not set)."""

    type_name: ClassVar[str] = "fake"
    Config: ClassVar[type[ProbeConfig]] = FakeProbeConfig

    def __init__(self, config: ProbeConfig, context: ProbeContext) -> None:
        assert isinstance(config, FakeProbeConfig)
        self.config = config
        self.platform: FakePlatform = context.platform

    async def sample(self) -> float:
        if self.config.fail:
            raise ProbeError(f"fake probe on '{self.config.signal}' failed (as asked)")
        value = self.platform.signal(self.config.signal)
        return self.config.default if value is None else value

    async def close(self) -> None:
        return None
