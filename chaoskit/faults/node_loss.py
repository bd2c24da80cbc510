"""Node loss (`type: node-loss`): kill, freeze or isolate a node, and time the stack's recovery.

    faults:
      - name: lose-leader
        type: node-loss
        mode: kill                    # kill | freeze | isolate (drain | node-down: clusters)
        target: {role: scheduler-leader}   # or {node: node-2} or {node: any}
        start: 10s
        duration: 20s

`kill` SIGKILLs every process of the node and restarts them at revert (a reboot); `freeze` hangs
them with open sockets (cgroup freezer; SIGSTOP without root); `isolate` cuts the node's link so
packets vanish. The driver asks the platform for all of it, so it runs wherever the platform
offers these node operations. Recovery is read from the stack's own metrics on the surviving
nodes: a scheduler there holding leadership, lease takeovers counted, and the entry healthy.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import httpx
from pydantic import Field

from chaoskit.errors import ChaoskitError, FaultError, PlatformError
from chaoskit.exposition import scrape_totals
from chaoskit.faults.base import FaultConfig, Intent, Touch
from chaoskit.platforms.abilities import (
    AccessReview,
    ClusterRecovery,
    Entry,
    MetricsTargets,
    Need,
    NodeHealth,
    NodeOperations,
    Platform,
    Roles,
    WorkLeases,
    require,
)
from chaoskit.platforms.calls import blocking
from chaoskit.spec.units import Seconds

Mode = Literal["kill", "freeze", "isolate", "stop", "drain", "node-down"]


class NodeLossConfig(FaultConfig):
    mode: Mode = Field(default="kill", description=(
        "kill | freeze | isolate (the lab, containers, processes), stop (containers, "
        "processes), drain | node-down (clusters): the platform says which it offers"))
    recovery_timeout: Seconds = Field(default=30.0, description=(
        "how long to watch for the system's recovery (and the node's health after revert)"))


class NodeLoss:
    """One node lost for the fault's duration."""

    type_name: ClassVar[str] = "node-loss"
    Config: ClassVar[type[FaultConfig]] = NodeLossConfig
    destructive: ClassVar[bool] = True

    def __init__(self, platform: Platform, run: str = "adhoc") -> None:
        self.platform = platform
        self.run = run
        self._watches: dict[str, RecoveryWatch] = {}

    def needs(self, config: FaultConfig) -> list[Need]:
        assert isinstance(config, NodeLossConfig)
        return [Need(NodeOperations, f"{config.mode} a node", mode=config.mode)]

    @property
    def _ops(self) -> NodeOperations:
        return require(self.platform, NodeOperations, "lose nodes")

    def plan(self, name: str, target: dict[str, Any], config: FaultConfig,
             rng: random.Random) -> Intent:
        assert isinstance(config, NodeLossConfig)
        node = resolve_node(self.platform, target, rng)
        return {"fault": name, "type": self.type_name, "mode": config.mode, "node": node,
                "target": dict(target), "recovery_timeout": config.recovery_timeout}

    def touches(self, intent: Intent) -> list[Touch]:
        return [Touch("node", intent["node"], self.platform.identity())]

    async def inject(self, intent: Intent) -> dict[str, Any]:
        node, mode = intent["node"], intent["mode"]
        held = await _leases_held(self.platform, node)
        before = await counters(self.platform, exclude=node)
        started = time.monotonic()
        try:
            result = await blocking(self._ops.lose_node, node, mode, what=f"{mode} {node}")
        except ChaoskitError:
            raise
        except Exception as exc:
            raise FaultError(f"could not {mode} node {node}: {exc}",
                             hint="check `chaoskit lab status`; revert runs regardless") from exc
        self._watches[intent["fault"]] = RecoveryWatch(started, before, held)
        apply_ms = round((time.monotonic() - started) * 1e3, 1)
        return {"node": node, "mode": mode, "apply_ms": apply_ms, "leases_held": held,
                "counters_before": before, **result}

    async def measure_effect(self, intent: Intent) -> dict[str, Any]:
        """Seconds until the stack recovered without the node (waits up to recovery_timeout)."""
        if isinstance(self.platform, ClusterRecovery):  # a cluster heals itself: its view
            return dict(await self.platform.watch_recovery(
                intent["node"], intent["mode"], float(intent["recovery_timeout"])))
        watch = self._watches.get(intent["fault"])
        if watch is None:
            before = await counters(self.platform, exclude=intent["node"])
            watch = RecoveryWatch(time.monotonic(), before, None)
        return await watch.run(self.platform, intent["node"], float(intent["recovery_timeout"]))

    async def revert(self, intent: Intent) -> dict[str, Any]:
        node, mode = intent["node"], intent["mode"]
        started = time.monotonic()
        result = await blocking(self._ops.restore_node, node, mode, what=f"restore {node}")
        healthy = await wait_node_healthy(self.platform, node, float(intent["recovery_timeout"]))
        facts: dict[str, Any] = {"node": node, "mode": mode, "node_healthy": healthy is not None,
                                 "node_healthy_s": healthy, **result}
        facts["revert_s"] = round(time.monotonic() - started, 3)
        return facts

    async def preflight(self, intent: Intent) -> list[str]:
        """Problems that would make inject fail: missing permissions on a cluster, or a node
        that is already not itself."""
        mode, node = intent["mode"], intent["node"]
        problems: list[str] = []
        if isinstance(self.platform, AccessReview):  # a cluster: the verbs this mode needs
            problems += await blocking(self.platform.missing_access, self.type_name, mode)
        found = await blocking(self._ops.node_residue, node)
        return problems + [f"before injecting: {r}" for r in found]

    async def verify_reverted(self, intent: Intent) -> list[str]:
        return list(await blocking(self._ops.node_residue, intent["node"]))


def resolve_node(platform: Platform, target: dict[str, Any], rng: random.Random) -> str:
    """{node: NAME} | {node: any} (seeded) | {role: ROLE} -> a node name."""
    names = sorted(n.name for n in platform.nodes())
    if set(target) - {"node", "role"} or len(target) != 1:
        raise FaultError(f"node target {target!r} is not understood",
                         hint="use {node: NAME}, {node: any} or {role: ROLE}")
    if "role" in target:
        roles = require(platform, Roles, "find the node of a role")
        if target["role"] not in roles.roles():
            raise FaultError(f"unknown role '{target['role']}'",
                             hint=f"use one of {', '.join(roles.roles())}")
        return str(roles.node_for_role(target["role"]))
    if target["node"] == "any":
        if not names:
            raise FaultError("there is no node to pick", hint="check the platform's nodes")
        return rng.choice(names)
    if target["node"] not in names:
        raise FaultError(f"no node '{target['node']}'", hint=f"use one of: {', '.join(names)}")
    return str(target["node"])


async def _leases_held(platform: Platform, node: str) -> int | None:
    """Work leases the node's workers hold: the platform's count, or their own metric."""
    try:
        if isinstance(platform, WorkLeases):
            return int(await blocking(platform.leases_held, node, timeout=5.0))
        everything = await _targets(platform, "")
        survivors = await _targets(platform, node)
        own = [u for name, u in everything.items() if name not in survivors]
        async with httpx.AsyncClient(timeout=0.5, trust_env=False) as http:
            pages = await asyncio.gather(*(scrape_totals(http, u) for u in own))
    except Exception:  # noqa: BLE001 - an unreachable node loses only this fact
        return None
    held = [p[LEASES_HELD] for p in pages if p is not None and LEASES_HELD in p]
    return int(sum(held)) if held else None


def _grew(now: dict[str, float | None], before: dict[str, float | None], name: str) -> bool:
    return now.get(name) is not None and (now[name] or 0) > (before.get(name) or 0)


# -- recovery, as the stack's own metrics tell it ---------------------------------------------
TAKEOVERS = "payments_lease_takeovers_total"
LEADER_CHANGES = "payments_leader_changes_total"
IS_LEADER = "payments_is_leader"
LEASES_HELD = "payments_leases_held"
POLL = 0.1


async def _targets(platform: Platform, exclude: str) -> dict[str, str]:
    if not isinstance(platform, MetricsTargets):
        return {}
    return dict(await blocking(platform.metrics_targets, exclude, timeout=5.0))


async def counters(platform: Platform, exclude: str) -> dict[str, float | None]:
    """Takeovers, leader changes and leaders summed over the processes not on `exclude`;
    None for a signal no process exports (a system without leaders or leases)."""
    urls = await _targets(platform, exclude)
    async with httpx.AsyncClient(timeout=0.5, trust_env=False) as http:
        pages = await asyncio.gather(*(scrape_totals(http, u) for u in urls.values()))
    live = [p for p in pages if p is not None]
    return {name: (sum(p.get(name, 0.0) for p in live) if any(name in p for p in live)
                   else None)
            for name in (TAKEOVERS, LEADER_CHANGES, IS_LEADER)}


async def _entry_healthy(platform: Platform) -> bool:
    if not isinstance(platform, Entry):
        return True  # nothing to ask: the entry's health is not this platform's to tell
    try:
        url = await blocking(platform.entry_url, timeout=5.0)
        async with httpx.AsyncClient(timeout=0.5, trust_env=False) as http:
            return (await http.get(f"{url}/healthz")).status_code == 200
    except (httpx.HTTPError, PlatformError):
        return False


@dataclass
class RecoveryWatch:
    """From the moment a node was lost: when did a survivor lead, take over leases, serve?"""

    started: float
    before: dict[str, float | None]
    leases_held: int | None

    async def run(self, platform: Platform, node: str, timeout: float) -> dict[str, Any]:
        seen: dict[str, float] = {}
        while time.monotonic() - self.started < timeout:
            now = await counters(platform, exclude=node)
            self._note(seen, now, await _entry_healthy(platform))
            if self._recovered(seen):
                break
            await asyncio.sleep(POLL)
        return self._facts(seen)

    def _note(self, seen: dict[str, float], now: dict[str, float | None],
              entry_ok: bool) -> None:
        elapsed = round(time.monotonic() - self.started, 3)
        checks = {"leader_s": (now[IS_LEADER] or 0) >= 1,
                  "first_takeover_s": _grew(now, self.before, TAKEOVERS),
                  "leader_change_s": _grew(now, self.before, LEADER_CHANGES),
                  "entry_healthy_s": entry_ok}
        for key, ok in checks.items():
            if ok:
                seen.setdefault(key, elapsed)

    def _needed(self) -> list[str]:
        """What recovery means here: the entry serves again; and if the system elects a
        leader, one leads; and if the lost node held work leases, another took them over."""
        leader = ["leader_s"] if self.before.get(IS_LEADER) is not None else []
        return ["entry_healthy_s", *leader] + (["first_takeover_s"] if self.leases_held
                                               else [])

    def _recovered(self, seen: dict[str, float]) -> bool:
        return all(k in seen for k in self._needed())

    def _facts(self, seen: dict[str, float]) -> dict[str, Any]:
        recovered = self._recovered(seen)
        needed = self._needed()
        return {"recovered": recovered, "leases_held": self.leases_held,
                "recovery_s": max(seen[k] for k in needed) if recovered else None,
                "leader_s": seen.get("leader_s"), "leader_changed": "leader_change_s" in seen,
                "leader_change_s": seen.get("leader_change_s"),
                "first_takeover_s": seen.get("first_takeover_s"),
                "entry_healthy_s": seen.get("entry_healthy_s")}


async def wait_node_healthy(platform: Platform, node: str, timeout: float) -> float | None:
    """Seconds until every /healthz of the node answers 200 again (None: not in time)."""
    urls = (await blocking(platform.node_health_urls, node, timeout=5.0)
            if isinstance(platform, NodeHealth) else {})
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=0.5, trust_env=False) as http:
        while time.monotonic() - started < timeout:
            results = await asyncio.gather(*(http.get(u) for u in urls.values()),
                                           return_exceptions=True)
            if all(not isinstance(r, BaseException) and r.status_code == 200 for r in results):
                return round(time.monotonic() - started, 3)
            await asyncio.sleep(POLL)
    return None
