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
from prometheus_client.parser import text_string_to_metric_families
from pydantic import Field

from chaoskit.errors import FaultError, PlatformError
from chaoskit.faults.base import FaultConfig, Intent
from chaoskit.platforms.base import Platform, unsupported

Mode = Literal["kill", "freeze", "isolate", "drain", "node-down"]
ROLES = ("scheduler-leader", "worker-most-leases", "gateway")
# drain and node-down are cluster modes (cordon + evict / + taint): platforms offering them say so
_APPLY = {"kill": "kill_node", "freeze": "freeze_node", "isolate": "isolate_node",
          "drain": "drain_node", "node-down": "down_node"}
_UNDO = {"kill": "restart_node", "freeze": "thaw_node", "isolate": "reconnect_node",
         "drain": "uncordon_node", "node-down": "up_node"}


class NodeLossConfig(FaultConfig):
    mode: Mode = "kill"
    recovery_timeout: float = Field(default=30.0, gt=0,
                                    description="seconds to watch for the stack's recovery")


class NodeLoss:
    """One node lost for the fault's duration."""

    type_name: ClassVar[str] = "node-loss"
    Config: ClassVar[type[FaultConfig]] = NodeLossConfig

    def __init__(self, platform: Platform) -> None:
        self.platform: Any = platform
        self._watches: dict[str, RecoveryWatch] = {}

    def plan(self, name: str, target: dict[str, Any], config: FaultConfig,
             rng: random.Random) -> Intent:
        assert isinstance(config, NodeLossConfig)
        node = resolve_node(self.platform, target, rng)
        return {"fault": name, "type": self.type_name, "mode": config.mode, "node": node,
                "target": dict(target), "recovery_timeout": config.recovery_timeout}

    async def inject(self, intent: Intent) -> dict[str, Any]:
        node, mode = intent["node"], intent["mode"]
        operation = self._operation(_APPLY[mode])
        held = await asyncio.to_thread(_leases_held, self.platform, node)
        before = await counters(self.platform, exclude=node)
        started = time.monotonic()
        try:
            result = await asyncio.to_thread(operation, node)
        except PlatformError:
            raise
        except Exception as exc:
            raise FaultError(f"could not {mode} node {node}: {exc}",
                             hint="check `chaoskit lab status`; revert runs regardless") from exc
        self._watches[intent["fault"]] = RecoveryWatch(started, before, held)
        apply_ms = round((time.monotonic() - started) * 1e3, 1)
        facts = {"node": node, "mode": mode, "apply_ms": apply_ms, "leases_held": held,
                 "counters_before": before}
        if isinstance(result, dict):  # e.g. a cluster's evictions done and refused
            facts.update(result)
        elif mode == "kill":
            facts["killed_pids"] = result
        return facts

    async def measure_effect(self, intent: Intent) -> dict[str, Any]:
        """Seconds until the stack recovered without the node (waits up to recovery_timeout)."""
        watch_recovery = getattr(self.platform, "watch_recovery", None)
        if watch_recovery is not None:  # a cluster heals itself: its controllers' view
            return dict(await watch_recovery(intent["node"], intent["mode"],
                                             float(intent["recovery_timeout"])))
        watch = self._watches.get(intent["fault"])
        if watch is None:
            before = await counters(self.platform, exclude=intent["node"])
            watch = RecoveryWatch(time.monotonic(), before, None)
        return await watch.run(self.platform, intent["node"], float(intent["recovery_timeout"]))

    async def revert(self, intent: Intent) -> dict[str, Any]:
        node, mode = intent["node"], intent["mode"]
        started = time.monotonic()
        result = await asyncio.to_thread(self._operation(_UNDO[mode]), node)
        healthy = await wait_node_healthy(self.platform, node, float(intent["recovery_timeout"]))
        facts: dict[str, Any] = {"node": node, "mode": mode, "node_healthy": healthy is not None,
                                 "node_healthy_s": healthy}
        if mode == "kill":
            facts["restarted"] = result
        facts["revert_s"] = round(time.monotonic() - started, 3)
        return facts

    async def preflight(self, intent: Intent) -> list[str]:
        """Problems that would make inject fail: a missing node operation or ability (isolate
        needs netns nodes and root), or a node that is already not itself."""
        mode, node = intent["mode"], intent["node"]
        if getattr(self.platform, _APPLY[mode], None) is None:
            return [f"the {self.platform.name} platform cannot {mode} nodes"]
        missing_access = getattr(self.platform, "missing_access", None)
        if missing_access is not None:  # a cluster: the verbs this mode needs, checked
            missing = await asyncio.to_thread(missing_access, self.type_name, mode)
            if missing:
                return missing
        supports = getattr(self.platform, "supports", None)
        if supports is not None and not await asyncio.to_thread(supports, mode):
            return [(f"node-loss mode {mode} is not available on this lab (isolate needs netns "
                    "nodes, i.e. `chaoskit lab up` as root, and chaoskit running as root)")]
        residue = getattr(self.platform, "node_residue", None)
        found = await asyncio.to_thread(residue, node) if residue else []
        return [f"before injecting: {r}" for r in found]

    async def verify_reverted(self, intent: Intent) -> list[str]:
        residue = getattr(self.platform, "node_residue", None)
        if residue is None:
            raise unsupported(self.platform.name, "audit nodes")
        return list(await asyncio.to_thread(residue, intent["node"]))

    def _operation(self, name: str) -> Any:
        operation = getattr(self.platform, name, None)
        if operation is None:
            raise unsupported(self.platform.name, name.replace("_", " "),
                              hint="run node-loss on the local lab")
        return operation


def resolve_node(platform: Any, target: dict[str, Any], rng: random.Random) -> str:
    """{node: NAME} | {node: any} (seeded) | {role: ROLE} -> a node name."""
    names = sorted(n.name for n in platform.nodes())
    if set(target) - {"node", "role"} or len(target) != 1:
        raise FaultError(f"node-loss target {target!r} is not understood",
                         hint="use {node: NAME}, {node: any} or {role: " + "|".join(ROLES) + "}")
    if "role" in target:
        if target["role"] not in ROLES:
            raise FaultError(f"unknown role '{target['role']}'", hint=f"use one of {ROLES}")
        return str(platform.node_for_role(target["role"]))
    if target["node"] == "any":
        return rng.choice(names)
    if target["node"] not in names:
        raise FaultError(f"no node '{target['node']}'", hint=f"use one of: {', '.join(names)}")
    return str(target["node"])


def _leases_held(platform: Any, node: str) -> int | None:
    held = getattr(platform, "leases_held", None)
    try:
        return int(held(node)) if held else None
    except Exception:  # noqa: BLE001 - an unreachable ledger loses only this fact
        return None


# -- recovery, as the stack's own metrics tell it ---------------------------------------------
TAKEOVERS = "payments_lease_takeovers_total"
LEADER_CHANGES = "payments_leader_changes_total"
IS_LEADER = "payments_is_leader"
POLL = 0.1


async def _scrape(http: httpx.AsyncClient, url: str) -> dict[str, float] | None:
    """Metric name -> sum over its samples; None when the target does not answer."""
    try:
        response = await http.get(url)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals


def _targets(platform: Any, exclude: str) -> dict[str, str]:
    try:
        return dict(platform.metrics_targets(exclude_node=exclude))
    except TypeError:  # a platform without the filter: use every target
        return dict(platform.metrics_targets())


async def counters(platform: Any, exclude: str) -> dict[str, float]:
    """Takeovers, leader changes and leaders summed over the processes not on `exclude`."""
    urls = await asyncio.to_thread(_targets, platform, exclude)
    async with httpx.AsyncClient(timeout=0.5, trust_env=False) as http:
        pages = await asyncio.gather(*(_scrape(http, u) for u in urls.values()))
    live = [p for p in pages if p is not None]
    return {name: sum(p.get(name, 0.0) for p in live)
            for name in (TAKEOVERS, LEADER_CHANGES, IS_LEADER)}


async def _entry_healthy(platform: Any) -> bool:
    try:
        url = await asyncio.to_thread(platform.entry_url)
        async with httpx.AsyncClient(timeout=0.5, trust_env=False) as http:
            return (await http.get(f"{url}/healthz")).status_code == 200
    except (httpx.HTTPError, PlatformError):
        return False


@dataclass
class RecoveryWatch:
    """From the moment a node was lost: when did a survivor lead, take over leases, serve?"""

    started: float
    before: dict[str, float]
    leases_held: int | None

    async def run(self, platform: Any, node: str, timeout: float) -> dict[str, Any]:
        seen: dict[str, float] = {}
        while time.monotonic() - self.started < timeout:
            now = await counters(platform, exclude=node)
            self._note(seen, now, await _entry_healthy(platform))
            if self._recovered(seen):
                break
            await asyncio.sleep(POLL)
        return self._facts(seen)

    def _note(self, seen: dict[str, float], now: dict[str, float], entry_ok: bool) -> None:
        elapsed = round(time.monotonic() - self.started, 3)
        checks = {"leader_s": now[IS_LEADER] >= 1,
                  "first_takeover_s": now[TAKEOVERS] > self.before[TAKEOVERS],
                  "leader_change_s": now[LEADER_CHANGES] > self.before[LEADER_CHANGES],
                  "entry_healthy_s": entry_ok}
        for key, ok in checks.items():
            if ok:
                seen.setdefault(key, elapsed)

    def _recovered(self, seen: dict[str, float]) -> bool:
        need_takeover = bool(self.leases_held)
        return ("leader_s" in seen and "entry_healthy_s" in seen
                and ("first_takeover_s" in seen or not need_takeover))

    def _facts(self, seen: dict[str, float]) -> dict[str, Any]:
        recovered = self._recovered(seen)
        needed = ["leader_s", "entry_healthy_s"] + (["first_takeover_s"] if self.leases_held
                                                    else [])
        return {"recovered": recovered, "leases_held": self.leases_held,
                "recovery_s": max(seen[k] for k in needed) if recovered else None,
                "leader_s": seen.get("leader_s"), "leader_changed": "leader_change_s" in seen,
                "leader_change_s": seen.get("leader_change_s"),
                "first_takeover_s": seen.get("first_takeover_s"),
                "entry_healthy_s": seen.get("entry_healthy_s")}


async def wait_node_healthy(platform: Any, node: str, timeout: float) -> float | None:
    """Seconds until every /healthz of the node answers 200 again (None: not in time)."""
    urls_of = getattr(platform, "node_health_urls", None)
    urls = await asyncio.to_thread(urls_of, node) if urls_of else {}
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=0.5, trust_env=False) as http:
        while time.monotonic() - started < timeout:
            results = await asyncio.gather(*(http.get(u) for u in urls.values()),
                                           return_exceptions=True)
            if all(not isinstance(r, BaseException) and r.status_code == 200 for r in results):
                return round(time.monotonic() - started, 3)
            await asyncio.sleep(POLL)
    return None
