"""Elastic capacity (`type: scale`): nodes join (or leave) under the peak, then go back.

    faults:
      - name: scale-out
        type: scale
        nodes: +1                # +N: new nodes (gateway + worker) join the entry and lease pool
        drain: 5s                # requests in flight get this long before a node leaves rotation
        start: 20m
        duration: 20m
      - name: lose-capacity
        type: scale
        nodes: -1                # -N: nodes drained and stopped, given back at revert
        target: {node: node-3}   # optional for -1; default: the highest-numbered nodes

New nodes are named at plan time (the next free index), so the journaled intent says which node
to remove even if the runner dies mid-inject. A node leaves by draining: its HAProxy server goes
to `drain` (no new requests), the ones in flight finish (bounded by `drain`), then maintenance,
then its processes stop. The driver asks the platform for the abilities in `ScalePlatform`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from typing import Any, ClassVar, Protocol

import httpx
from pydantic import Field, field_validator

from chaoskit.errors import FaultError, PlatformError
from chaoskit.faults.base import FaultConfig, Intent
from chaoskit.faults.node_loss import resolve_node
from chaoskit.platforms.base import Platform, unsupported
from chaoskit.spec.units import PositiveDuration

POLL = 0.1
SERVED_SAMPLE = 20  # /healthz requests through the entry that show who serves


class ScalePlatform(Protocol):
    """Abilities a platform offers for adding and removing capacity."""

    def next_node_names(self, count: int) -> list[str]: ...
    def add_node(self, name: str | None = None) -> str: ...
    def drain_gateway(self, name: str, timeout: float) -> float: ...
    def remove_node(self, name: str) -> None: ...
    def retire_node(self, name: str, drain: float) -> list[str]: ...
    def restore_node(self, name: str) -> list[str]: ...
    def entry_states(self) -> dict[str, str]: ...
    def departed_residue(self, name: str) -> list[str]: ...
    def node_residue(self, name: str) -> list[str]: ...


class ScaleConfig(FaultConfig):
    nodes: int = Field(description="+N nodes added, -N nodes taken out, for the fault's time")
    drain: PositiveDuration = Field(default=5.0, description="bound on a leaving node's drain")
    join_timeout: PositiveDuration = Field(default=30.0, description="bound on joining rotation")

    @field_validator("nodes")
    @classmethod
    def _a_change(cls, value: int) -> int:
        if value == 0 or abs(value) > 8:
            raise ValueError("nodes: +N or -N with 1 <= N <= 8 (e.g. +1)")
        return value


class Scale:
    """Capacity added (or removed) for the fault's duration."""

    type_name: ClassVar[str] = "scale"
    Config: ClassVar[type[FaultConfig]] = ScaleConfig

    def __init__(self, platform: Platform) -> None:
        self.platform: Any = platform

    def plan(self, name: str, target: dict[str, Any], config: FaultConfig,
             rng: random.Random) -> Intent:
        assert isinstance(config, ScaleConfig)
        out = config.nodes > 0
        names = (self._ability("next_node_names")(config.nodes) if out
                 else leaving_nodes(self.platform, target, -config.nodes, rng))
        return {"fault": name, "type": self.type_name, "direction": "out" if out else "in",
                "nodes": names, "target": dict(target), "drain": config.drain,
                "join_timeout": config.join_timeout}

    async def inject(self, intent: Intent) -> dict[str, Any]:
        started = time.monotonic()
        try:
            facts = await (self._grow(intent) if intent["direction"] == "out"
                           else self._shrink(intent))
        except Exception as exc:
            with contextlib.suppress(Exception):  # leave nothing; the engine reverts again
                await self.revert(intent)
            if isinstance(exc, (FaultError, PlatformError)):
                raise
            raise FaultError(f"could not scale by {intent['nodes']}: {exc}",
                             hint="check `chaoskit lab status`; revert ran") from exc
        facts["inject_s"] = round(time.monotonic() - started, 3)
        return facts

    async def _grow(self, intent: Intent) -> dict[str, Any]:
        add = self._ability("add_node")
        for name in intent["nodes"]:
            await asyncio.to_thread(add, name)
        joined = await wait_states(self.platform, intent["nodes"], "UP",
                                   float(intent["join_timeout"]))
        return {"added": intent["nodes"], "in_rotation_s": joined}

    async def _shrink(self, intent: Intent) -> dict[str, Any]:
        retire = self._ability("retire_node")
        stopped = [await asyncio.to_thread(retire, name, float(intent["drain"]))
                   for name in intent["nodes"]]
        return {"retired": intent["nodes"], "stopped": sum(stopped, [])}

    async def measure_effect(self, intent: Intent) -> dict[str, Any]:
        """Which nodes answer through the entry now (an added node should be among them)."""
        served = await served_by(self.platform, SERVED_SAMPLE)
        states = await asyncio.to_thread(self.platform.entry_states)
        return {"served_by": served, "entry_states": states}

    async def revert(self, intent: Intent) -> dict[str, Any]:
        started = time.monotonic()
        if intent["direction"] == "out":
            facts = await self._remove_added(intent)
        else:
            facts = await self._restore_retired(intent)
        facts["revert_s"] = round(time.monotonic() - started, 3)
        return facts

    async def _remove_added(self, intent: Intent) -> dict[str, Any]:
        present = {n.name for n in await asyncio.to_thread(self.platform.nodes)}
        removed = [n for n in intent["nodes"] if n in present]
        drained: dict[str, float] = {}
        for name in removed:
            with contextlib.suppress(OSError):  # no entry left to drain from: just remove
                drained[name] = await asyncio.to_thread(self.platform.drain_gateway, name,
                                                        float(intent["drain"]))
            await asyncio.to_thread(self._ability("remove_node"), name)
        return {"removed": removed, "drain_s": drained}

    async def _restore_retired(self, intent: Intent) -> dict[str, Any]:
        restore = self._ability("restore_node")
        started = [await asyncio.to_thread(restore, name) for name in intent["nodes"]]
        back = await wait_states(self.platform, intent["nodes"], "UP",
                                 float(intent["join_timeout"]))
        return {"restored": intent["nodes"], "started": sum(started, []), "in_rotation_s": back}

    async def preflight(self, intent: Intent) -> list[str]:
        needed = ("add_node", "remove_node") if intent["direction"] == "out" else (
            "retire_node", "restore_node")
        missing = [n for n in needed if getattr(self.platform, n, None) is None]
        if missing:
            return [f"the {self.platform.name} platform cannot scale: no {', '.join(missing)}"]
        if intent["direction"] == "out":
            present = {n.name for n in await asyncio.to_thread(self.platform.nodes)}
            return [f"node {n} exists already" for n in intent["nodes"] if n in present]
        return []

    async def verify_reverted(self, intent: Intent) -> list[str]:
        if intent["direction"] == "out":
            check = self._ability("departed_residue")
            return [r for n in intent["nodes"] for r in await asyncio.to_thread(check, n)]
        found = [r for n in intent["nodes"]
                 for r in await asyncio.to_thread(self.platform.node_residue, n)]
        states = await asyncio.to_thread(self.platform.entry_states)
        found += [f"node {n} is not back in rotation ({states.get(n, 'absent')})"
                  for n in intent["nodes"] if states.get(n) != "UP"]
        return found

    def _ability(self, name: str) -> Any:
        operation = getattr(self.platform, name, None)
        if operation is None:
            raise unsupported(self.platform.name, "scale", hint=f"it offers no {name}")
        return operation


def leaving_nodes(platform: Any, target: dict[str, Any], count: int,
                  rng: random.Random) -> list[str]:
    """The nodes -N takes out: the target's (for one), else the highest-numbered ones; at
    least one node must stay to serve."""
    names = sorted((n.name for n in platform.nodes()), key=_index)
    if count >= len(names):
        raise FaultError(f"nodes: -{count} would leave no node of {len(names)} to serve",
                         hint=f"take out at most {len(names) - 1}")
    if target:
        if count != 1:
            raise FaultError("a target names one node; it cannot take out several",
                             hint="use nodes: -1 with a target, or no target for -N")
        return [resolve_node(platform, target, rng)]
    return names[-count:]


def _index(name: str) -> tuple[int, str]:
    tail = name.rsplit("-", 1)[-1]
    return (int(tail) if tail.isdigit() else 0, name)


async def wait_states(platform: Any, names: list[str], want: str,
                      timeout: float) -> float:
    """Seconds until the entry reports every named server in state `want`."""
    started = time.monotonic()
    while True:
        states = await asyncio.to_thread(platform.entry_states)
        if all(states.get(n) == want for n in names):
            return round(time.monotonic() - started, 3)
        if time.monotonic() - started > timeout:
            raise FaultError(f"nodes {names} not {want} in the entry after {timeout:g}s: "
                             f"{ {n: states.get(n, 'absent') for n in names} }",
                             hint="raise `join_timeout:`, or see the nodes' logs")
        await asyncio.sleep(POLL)


async def served_by(platform: Any, count: int) -> dict[str, int]:
    """Node -> how many of `count` /healthz requests through the entry it answered."""
    url = await asyncio.to_thread(platform.entry_url)
    seen: Counter[str] = Counter()
    async with httpx.AsyncClient(timeout=1.0, trust_env=False) as http:
        for _ in range(count):
            with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                seen[str((await http.get(f"{url}/healthz")).json()["node"])] += 1
    return dict(seen)
