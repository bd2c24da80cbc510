"""Network faults through Toxiproxy: latency, bandwidth, timeout, reset-peer, slow-close, ... down.

Each kind is one Toxiproxy toxic per proxy and stream, except `down`, which disables the proxy.
The shared path (targets, created proxies, rollback, revert, audit) is in `proxy_fault`.
"""

from __future__ import annotations

import asyncio
import time
from functools import partial
from typing import Any, ClassVar, cast

from chaoskit.faults.base import FaultConfig, Intent
from chaoskit.faults.network_config import (
    BandwidthConfig,
    DownConfig,
    LatencyConfig,
    LimitDataConfig,
    NetworkConfig,
    ResetPeerConfig,
    SlowCloseConfig,
    TimeoutConfig,
)
from chaoskit.faults.network_probe import (
    PROBE_ERRORS,
    ActivationWatch,
    added_delay,
    refuses_connections,
)
from chaoskit.faults.network_targets import disabled_mark, family, streams_of, toxic_name
from chaoskit.faults.proxy_fault import (
    ProxyFault,
    State,
    Undo,
    as_ms,
    label_of,
    wait_listed,
)
from chaoskit.toxiproxy import ProxyState, ToxiproxyServer

__all__ = ["BandwidthFault", "DownFault", "LatencyFault", "LimitDataFault", "ProxyFault",
           "ResetPeerFault", "SlowCloseFault", "TimeoutFault", "ToxicFault"]


async def _nothing() -> dict[str, Any]:
    return {}


class ToxicFault(ProxyFault):
    """A fault that is one Toxiproxy toxic per proxy and stream."""

    toxic_kind: ClassVar[str]

    def _plan_effect(self, name: str, proxies: list[str], config: FaultConfig) -> dict[str, Any]:
        conf = cast(NetworkConfig, config)
        toxics = [{"proxy": p, "name": toxic_name(name, s), "stream": s}
                  for p in proxies for s in streams_of(conf.stream)]
        return {"toxic": {"type": self.toxic_kind, "toxicity": conf.toxicity,
                          "attributes": conf.toxic_attributes()}, "toxics": toxics}

    async def _apply(self, server: ToxiproxyServer, intent: Intent, state: State,
                     undo: Undo) -> dict[str, Any]:
        watch, note = await self._watch(intent, state)
        try:
            started = time.perf_counter()
            await self._add_toxics(server, intent, undo)
            api_ms = as_ms(time.perf_counter() - started)
            # Probe alongside the listing check, so neither figure includes the other's wait.
            listed_ms, seen = await asyncio.gather(
                self._listed(server, intent, started),
                watch.first_affected(started) if watch else _nothing())
        finally:
            if watch:
                await watch.close()
        return {"toxics": [t["name"] for t in intent["toxics"]], "api_ms": api_ms,
                "listed_ms": listed_ms, **note, **seen}

    @staticmethod
    async def _listed(server: ToxiproxyServer, intent: Intent, since: float) -> float:
        names = {(t["proxy"], t["name"]) for t in intent["toxics"]}
        return await wait_listed(lambda s: all(p in s and s[p].toxic(n) for p, n in names),
                                 server, since)

    async def _add_toxics(self, server: ToxiproxyServer, intent: Intent, undo: Undo) -> None:
        toxic = intent["toxic"]
        for entry in intent["toxics"]:
            await asyncio.to_thread(server.add_toxic, entry["proxy"], entry["name"],
                                    toxic["type"], entry["stream"], toxic["toxicity"],
                                    toxic["attributes"])
            undo.append(partial(server.remove_toxic, entry["proxy"], entry["name"]))

    async def _watch(self, intent: Intent,
                     state: State) -> tuple[ActivationWatch | None, dict[str, str]]:
        """A probe that times the first request seeing the toxic; only latency has one."""
        del intent, state
        return None, {}

    def _revert_effect(self, server: ToxiproxyServer, intent: Intent) -> dict[str, Any]:
        owned = family(label_of(intent))
        state = server.proxies()
        removed = []
        for name in intent["proxies"]:
            for toxic in state[name].toxics if name in state else []:
                if toxic.name in owned:
                    server.remove_toxic(name, toxic.name)
                    removed.append(f"{name}/{toxic.name}")
        # what it applied but no longer found (a restarted Toxiproxy forgets its toxics): the
        # system was not under this fault for its whole window
        vanished = [f"{t['proxy']}/{t['name']}" for t in intent.get("toxics") or []
                    if f"{t['proxy']}/{t['name']}" not in removed]
        return {"removed_toxics": removed, "vanished": vanished}


class LatencyFault(ToxicFault):
    """Added delay (with jitter) on every chunk, per direction; can measure what it adds."""

    type_name = "latency"
    Config = LatencyConfig
    toxic_kind = "latency"

    def _plan_effect(self, name: str, proxies: list[str], config: FaultConfig) -> dict[str, Any]:
        conf = cast(LatencyConfig, config)
        planned = super()._plan_effect(name, proxies, config)
        # An echo or request/response round trip crosses each delayed direction once.
        asked = as_ms(conf.latency) * len(streams_of(conf.stream))
        probe = None if conf.probe == "none" else {"kind": conf.probe}
        return {**planned, "asked_added_ms": asked, "probe": probe}

    async def _watch(self, intent: Intent,
                     state: State) -> tuple[ActivationWatch | None, dict[str, str]]:
        if not intent.get("probe") or intent["toxic"]["toxicity"] < 1.0:
            return None, {}  # with toxicity below 100% the probe's own connection may be spared
        address = state[intent["proxies"][0]].listen
        intent["probe"]["address"] = address
        return await ActivationWatch.open(intent["probe"]["kind"], address,
                                          intent["asked_added_ms"] / 1000)

    async def measure_effect(self, intent: Intent) -> dict[str, Any]:
        """Added round-trip delay observed through the proxy versus straight to its upstream."""
        if not intent.get("probe"):
            return {"measured": False, "reason": "the fault has probe: none"}
        state = await asyncio.to_thread(ToxiproxyServer(intent["toxiproxy"]).proxies)
        proxy = state.get(intent["proxies"][0])
        if proxy is None or not proxy.toxic(intent["toxics"][0]["name"]):
            return {"measured": False, "reason": "the latency toxic is not in place"}
        try:
            return await self._measure(intent, proxy)
        except PROBE_ERRORS as exc:
            return {"measured": False, "reason": f"{intent['probe']['kind']} probe failed: {exc!r}"}

    @staticmethod
    async def _measure(intent: Intent, proxy: ProxyState) -> dict[str, Any]:
        kind, asked = intent["probe"]["kind"], intent["asked_added_ms"]
        added, through, direct = await added_delay(kind, proxy.listen, proxy.upstream, 21, 3.0,
                                                   timeout=2.0 + 2 * asked / 1000)
        observed = as_ms(added)
        return {"measured": True, "proxy": proxy.name, "probe": kind, "asked_added_ms": asked,
                "observed_added_ms": observed, "error_ms": round(observed - asked, 3),
                "through_p50_ms": as_ms(through), "direct_p50_ms": as_ms(direct)}


class BandwidthFault(ToxicFault):
    type_name = "bandwidth"
    Config = BandwidthConfig
    toxic_kind = "bandwidth"


class TimeoutFault(ToxicFault):
    type_name = "timeout"
    Config = TimeoutConfig
    toxic_kind = "timeout"


class ResetPeerFault(ToxicFault):
    type_name = "reset-peer"
    Config = ResetPeerConfig
    toxic_kind = "reset_peer"


class SlowCloseFault(ToxicFault):
    type_name = "slow-close"
    Config = SlowCloseConfig
    toxic_kind = "slow_close"


class LimitDataFault(ToxicFault):
    type_name = "limit-data"
    Config = LimitDataConfig
    toxic_kind = "limit_data"


class DownFault(ProxyFault):
    """A partition: the proxy is disabled (connects refused, open connections dropped)."""

    type_name = "down"
    Config = DownConfig

    def _plan_effect(self, name: str, proxies: list[str], config: FaultConfig) -> dict[str, Any]:
        return {"mark": disabled_mark(name)}

    async def _apply(self, server: ToxiproxyServer, intent: Intent, state: State,
                     undo: Undo) -> dict[str, Any]:
        # Already disabled by someone else: leave it, and unmarked, so revert will not enable it.
        already = [p for p in intent["proxies"]
                   if not state[p].enabled and not state[p].toxic(intent["mark"])]
        targets = [p for p in intent["proxies"] if p not in already]
        started = time.perf_counter()
        await asyncio.to_thread(self._disable, server, intent["mark"], targets, undo)
        api_ms = as_ms(time.perf_counter() - started)
        listed_ms = await wait_listed(lambda s: all(not s[p].enabled for p in targets if p in s),
                                      server, started)
        refused = [await self._refused_after(state[p].listen, started) for p in targets[:1]]
        return {"disabled": targets, "already_disabled": already, "api_ms": api_ms,
                "listed_ms": listed_ms, "activation_ms": refused[0] if refused else None}

    @staticmethod
    def _disable(server: ToxiproxyServer, mark: str, targets: list[str], undo: Undo) -> None:
        for name in targets:
            server.add_toxic(name, mark, "noop", "downstream", 1.0, {})  # mark first: see revert
            undo.append(partial(server.remove_toxic, name, mark))
            server.set_enabled(name, False)
            undo.append(partial(server.set_enabled, name, True))

    @staticmethod
    async def _refused_after(address: str, since: float) -> float | None:
        for _ in range(50):
            if await refuses_connections(address):
                return as_ms(time.perf_counter() - since)
            await asyncio.sleep(0.002)
        return None

    def _revert_effect(self, server: ToxiproxyServer, intent: Intent) -> dict[str, Any]:
        state = server.proxies()
        enabled = []
        for name in intent["proxies"]:
            proxy = state.get(name)
            if proxy is None or not proxy.toxic(intent["mark"]):
                continue  # not disabled by this fault (or already reverted)
            if not proxy.enabled:
                server.set_enabled(name, True)
                enabled.append(name)
            server.remove_toxic(name, intent["mark"])  # only after enabling: the mark is the record
        return {"enabled": enabled}
