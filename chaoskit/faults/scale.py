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
then its processes stop. The driver asks the platform for `Capacity` (+N) or `CapacityRetire`
(-N), and `Entry` to see who serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from typing import Any, ClassVar

import httpx
from pydantic import Field, field_validator

from chaoskit.errors import ChaoskitError, FaultError
from chaoskit.faults.base import FaultConfig, Intent, Touch
from chaoskit.faults.node_loss import resolve_node
from chaoskit.platforms.abilities import (
    Capacity,
    CapacityRetire,
    Entry,
    Need,
    Platform,
    require,
)
from chaoskit.platforms.calls import blocking
from chaoskit.spec.units import PositiveDuration

POLL = 0.1
SERVED_SAMPLE = 20  # /healthz requests through the entry that show who serves


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
    destructive: ClassVar[bool] = True

    def __init__(self, platform: Platform, run: str = "adhoc") -> None:
        self.platform = platform
        self.run = run

    def needs(self, config: FaultConfig) -> list[Need]:
        assert isinstance(config, ScaleConfig)
        if config.nodes > 0:
            return [Need(Capacity, "add capacity (scale +N)")]
        return [Need(CapacityRetire, "take capacity out (scale -N)")]

    @property
    def _grow_ops(self) -> Capacity:
        return require(self.platform, Capacity, "add capacity (scale +N)")

    @property
    def _shrink_ops(self) -> CapacityRetire:
        return require(self.platform, CapacityRetire, "take capacity out (scale -N)")

    def plan(self, name: str, target: dict[str, Any], config: FaultConfig,
             rng: random.Random) -> Intent:
        assert isinstance(config, ScaleConfig)
        out = config.nodes > 0
        names = (self._grow_ops.next_node_names(config.nodes) if out
                 else leaving_nodes(self.platform, target, -config.nodes, rng))
        return {"fault": name, "type": self.type_name, "direction": "out" if out else "in",
                "nodes": names, "target": dict(target), "drain": config.drain,
                "join_timeout": config.join_timeout}

    def touches(self, intent: Intent) -> list[Touch]:
        return [Touch("node", n, self.platform.identity()) for n in intent["nodes"]]

    async def inject(self, intent: Intent) -> dict[str, Any]:
        started = time.monotonic()
        try:
            facts = await (self._grow(intent) if intent["direction"] == "out"
                           else self._shrink(intent))
        except Exception as exc:
            with contextlib.suppress(Exception):  # leave nothing; the engine reverts again
                await self.revert(intent)
            if isinstance(exc, ChaoskitError):
                raise
            raise FaultError(f"could not scale by {intent['nodes']}: {exc}",
                             hint="check `chaoskit lab status`; revert ran") from exc
        facts["inject_s"] = round(time.monotonic() - started, 3)
        return facts

    async def _grow(self, intent: Intent) -> dict[str, Any]:
        ops = self._grow_ops
        for name in intent["nodes"]:
            await blocking(ops.add_node, name)
        joined = await wait_states(ops, intent["nodes"], "UP", float(intent["join_timeout"]))
        return {"added": intent["nodes"], "in_rotation_s": joined}

    async def _shrink(self, intent: Intent) -> dict[str, Any]:
        ops = self._shrink_ops
        stopped = [await blocking(ops.retire_node, name, float(intent["drain"]))
                   for name in intent["nodes"]]
        return {"retired": intent["nodes"], "stopped": sum(stopped, [])}

    async def measure_effect(self, intent: Intent) -> dict[str, Any]:
        """Which nodes answer through the entry now (an added node should be among them)."""
        served = await served_by(self.platform, SERVED_SAMPLE)
        ops: Capacity | CapacityRetire = (self._grow_ops if intent["direction"] == "out"
                                          else self._shrink_ops)
        return {"served_by": served, "entry_states": await blocking(ops.entry_states)}

    async def revert(self, intent: Intent) -> dict[str, Any]:
        started = time.monotonic()
        if intent["direction"] == "out":
            facts = await self._remove_added(intent)
        else:
            facts = await self._restore_retired(intent)
        facts["revert_s"] = round(time.monotonic() - started, 3)
        return facts

    async def _remove_added(self, intent: Intent) -> dict[str, Any]:
        ops = self._grow_ops
        present = {n.name for n in await blocking(self.platform.nodes)}
        removed = [n for n in intent["nodes"] if n in present]
        drained: dict[str, float] = {}
        for name in removed:
            with contextlib.suppress(OSError):  # no entry left to drain from: just remove
                drained[name] = await blocking(ops.drain_gateway, name, float(intent["drain"]))
            await blocking(ops.remove_node, name)
        return {"removed": removed, "drain_s": drained}

    async def _restore_retired(self, intent: Intent) -> dict[str, Any]:
        ops = self._shrink_ops
        started = [await blocking(ops.return_node, name) for name in intent["nodes"]]
        back = await wait_states(ops, intent["nodes"], "UP", float(intent["join_timeout"]))
        return {"restored": intent["nodes"], "started": sum(started, []), "in_rotation_s": back}

    async def preflight(self, intent: Intent) -> list[str]:
        if intent["direction"] == "out":
            present = {n.name for n in await blocking(self.platform.nodes)}
            return [f"node {n} exists already" for n in intent["nodes"] if n in present]
        return []

    async def verify_reverted(self, intent: Intent) -> list[str]:
        if intent["direction"] == "out":
            grow = self._grow_ops
            return [r for n in intent["nodes"]
                    for r in await blocking(grow.departed_residue, n)]
        shrink = self._shrink_ops
        found = [r for n in intent["nodes"] for r in await blocking(shrink.node_residue, n)]
        states = await blocking(shrink.entry_states)
        found += [f"node {n} is not back in rotation ({states.get(n, 'absent')})"
                  for n in intent["nodes"] if states.get(n) != "UP"]
        return found


def leaving_nodes(platform: Platform, target: dict[str, Any], count: int,
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


async def wait_states(ops: Capacity | CapacityRetire, names: list[str], want: str,
                      timeout: float) -> float:
    """Seconds until the entry reports every named server in state `want`."""
    started = time.monotonic()
    while True:
        states = await blocking(ops.entry_states)
        if all(states.get(n) == want for n in names):
            return round(time.monotonic() - started, 3)
        if time.monotonic() - started > timeout:
            raise FaultError(f"nodes {names} not {want} in the entry after {timeout:g}s: "
                             f"{ {n: states.get(n, 'absent') for n in names} }",
                             hint="raise `join_timeout:`, or see the nodes' logs")
        await asyncio.sleep(POLL)


async def served_by(platform: Platform, count: int) -> dict[str, int]:
    """Node -> how many of `count` /healthz requests through the entry it answered."""
    if not isinstance(platform, Entry):
        return {}
    url = await blocking(platform.entry_url)
    seen: Counter[str] = Counter()
    async with httpx.AsyncClient(timeout=1.0, trust_env=False) as http:
        for _ in range(count):
            with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                seen[str((await http.get(f"{url}/healthz")).json()["node"])] += 1
    return dict(seen)
