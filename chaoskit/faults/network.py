"""Network faults through Toxiproxy: latency, bandwidth, timeout, reset-peer, slow-close, ... down.

Every fault follows the same path. `plan` resolves the target to proxy names and names what it
will put there. `inject` creates missing declared proxies (marked `chaoskit.created`), applies the
toxics (or disables the proxies), waits until the server lists them, and probes when it can. Any
failure on the way undoes what this call did, in reverse. `revert` and `verify_reverted` work from
the intent and the server's own listing only, so another process can revert after a crash; they
touch only chaoskit-named toxics, proxies chaoskit disabled, and proxies chaoskit created.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from functools import partial
from typing import Any, ClassVar, cast

from chaoskit.errors import ChaoskitError, FaultError
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
from chaoskit.faults.network_targets import (
    CREATED_MARK,
    check_safe_name,
    declared_proxies,
    disabled_mark,
    family,
    resolve_proxies,
    streams_of,
    toxic_name,
)
from chaoskit.platforms.base import Platform
from chaoskit.toxiproxy import ProxyState, ToxiproxyServer

Undo = list[Callable[[], None]]
State = dict[str, ProxyState]
LISTED_TIMEOUT = 2.0  # the server lists a toxic before its API call returns; this is a backstop


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


async def _nothing() -> dict[str, Any]:
    return {}


def _run_undo(undo: Undo) -> list[str]:
    """Undo in reverse; keep going past failures (the residue audit reports what stays)."""
    failures = []
    for step in reversed(undo):
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - each step is independent; report, continue
            failures.append(f"{exc}")
    undo.clear()
    return failures


def _create_missing(server: ToxiproxyServer, intent: Intent, state: State, undo: Undo) -> State:
    declared = {d["name"]: d for d in intent["declared"]}
    missing = [name for name in intent["proxies"] if name not in state]
    for name in missing:
        if name not in declared:
            raise FaultError(f"Toxiproxy at {server.url} has no proxy '{name}'",
                             hint="declare it in the platform (name, listen, upstream) so chaoskit "
                                  "creates it, or create it before the run")
        entry = declared[name]
        if server.ensure_proxy(name, entry["listen"], entry["upstream"]):
            undo.append(partial(server.delete_proxy, name))
            # The mark lets any later revert, even from another process, know chaoskit made it.
            server.add_toxic(name, CREATED_MARK, "noop", "downstream", 1.0, {})
            intent["created"].append(name)
    return server.proxies() if missing else state


def _delete_created(server: ToxiproxyServer, intent: Intent) -> list[str]:
    """Delete proxies chaoskit created once nothing but the creation mark is left on them."""
    state = server.proxies()
    deleted = []
    for name in intent["proxies"]:
        proxy = state.get(name)
        if proxy and proxy.toxic(CREATED_MARK) and len(proxy.toxics) == 1:
            server.delete_proxy(name)
            deleted.append(name)
    return deleted


async def _until(check: Callable[[State], bool], server: ToxiproxyServer, since: float) -> float:
    """Milliseconds from `since` until the server's listing satisfies `check`."""
    deadline = time.perf_counter() + LISTED_TIMEOUT
    while not check(await asyncio.to_thread(server.proxies)):
        if time.perf_counter() > deadline:
            raise FaultError(f"Toxiproxy at {server.url} did not list the change within "
                             f"{LISTED_TIMEOUT:g}s", hint="check the server's log")
        await asyncio.sleep(0.001)
    return _ms(time.perf_counter() - since)


class ProxyFault:
    """What every network fault shares: targets, created proxies, rollback, revert, audit."""

    type_name: ClassVar[str]
    Config: ClassVar[type[FaultConfig]]

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def plan(self, name: str, target: dict[str, Any], config: FaultConfig,
             rng: random.Random) -> Intent:
        del rng  # no seeded choices: a selector names its proxies
        check_safe_name("fault", name)
        url = self.platform.toxiproxy_url()
        declared = declared_proxies(self.platform)
        names = resolve_proxies(target, [d["name"] for d in declared],
                                lambda: ToxiproxyServer(url).proxies())
        intent: Intent = {"type": self.type_name, "fault": name, "toxiproxy": url,
                          "proxies": names, "created": [],
                          "declared": [d for d in declared if d["name"] in names]}
        intent.update(self._plan_effect(name, names, config))
        return intent

    def _plan_effect(self, name: str, proxies: list[str], config: FaultConfig) -> dict[str, Any]:
        raise NotImplementedError

    async def inject(self, intent: Intent) -> dict[str, Any]:
        server = ToxiproxyServer(intent["toxiproxy"])
        undo: Undo = []
        try:
            state = await asyncio.to_thread(server.proxies)
            state = await asyncio.to_thread(_create_missing, server, intent, state, undo)
            facts = await self._apply(server, intent, state, undo)
        except BaseException as exc:
            failures = await asyncio.shield(asyncio.to_thread(_run_undo, undo))
            if not isinstance(exc, Exception):
                raise  # cancellation and exits pass through, after the rollback
            raise self._inject_error(intent, exc, failures) from exc
        return {"proxies": intent["proxies"], "created_proxies": list(intent["created"]), **facts}

    @staticmethod
    def _inject_error(intent: Intent, exc: Exception, failures: list[str]) -> FaultError:
        left = f"; rollback failed: {'; '.join(failures)}" if failures else ""
        hint = exc.hint if isinstance(exc, ChaoskitError) else "see the cause below"
        message = exc.message if isinstance(exc, ChaoskitError) else str(exc)
        return FaultError(f"{intent['type']} fault '{intent['fault']}' was not injected, and what "
                          f"it had applied was undone{left}: {message}", hint=hint)

    async def _apply(self, server: ToxiproxyServer, intent: Intent, state: State,
                     undo: Undo) -> dict[str, Any]:
        raise NotImplementedError

    async def revert(self, intent: Intent) -> dict[str, Any]:
        server = ToxiproxyServer(intent["toxiproxy"])
        started = time.perf_counter()
        facts = await asyncio.to_thread(self._revert_effect, server, intent)
        done = time.perf_counter()
        # Only declared proxies can have been created by chaoskit: skip the extra listing if none.
        deleted = (await asyncio.to_thread(_delete_created, server, intent)
                   if intent["declared"] else [])
        return {**facts, "revert_ms": _ms(done - started), "deleted_proxies": deleted}

    def _revert_effect(self, server: ToxiproxyServer, intent: Intent) -> dict[str, Any]:
        raise NotImplementedError

    async def verify_reverted(self, intent: Intent) -> list[str]:
        server = ToxiproxyServer(intent["toxiproxy"])
        try:
            state = await asyncio.to_thread(server.proxies)
        except ChaoskitError as exc:
            return [f"cannot audit Toxiproxy at {server.url}: {exc.message}"]
        return self._residue(intent, state)

    def _residue(self, intent: Intent, state: State) -> list[str]:
        owned, fault = family(intent["fault"]), intent["fault"]
        found = []
        for name in intent["proxies"]:
            proxy = state.get(name)
            if proxy is None:
                continue
            found += [f"toxic {t.name} ({t.kind}, {t.stream}) is still on proxy {name}"
                      for t in proxy.toxics if t.name in owned]
            if not proxy.enabled and proxy.toxic(disabled_mark(fault)):
                found.append(f"proxy {name} is still disabled by fault {fault}")
            if proxy.toxic(CREATED_MARK) and len(proxy.toxics) == 1:
                found.append(f"proxy {name}, created by chaoskit, is still there")
        return found


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
            api_ms = _ms(time.perf_counter() - started)
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
        return await _until(lambda s: all(p in s and s[p].toxic(n) for p, n in names),
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
        owned = family(intent["fault"])
        state = server.proxies()
        removed = []
        for name in intent["proxies"]:
            for toxic in state[name].toxics if name in state else []:
                if toxic.name in owned:
                    server.remove_toxic(name, toxic.name)
                    removed.append(f"{name}/{toxic.name}")
        return {"removed_toxics": removed}


class LatencyFault(ToxicFault):
    """Added delay (with jitter) on every chunk, per direction; can measure what it adds."""

    type_name = "latency"
    Config = LatencyConfig
    toxic_kind = "latency"

    def _plan_effect(self, name: str, proxies: list[str], config: FaultConfig) -> dict[str, Any]:
        conf = cast(LatencyConfig, config)
        planned = super()._plan_effect(name, proxies, config)
        # An echo or request/response round trip crosses each delayed direction once.
        asked = _ms(conf.latency) * len(streams_of(conf.stream))
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
        observed = _ms(added)
        return {"measured": True, "proxy": proxy.name, "probe": kind, "asked_added_ms": asked,
                "observed_added_ms": observed, "error_ms": round(observed - asked, 3),
                "through_p50_ms": _ms(through), "direct_p50_ms": _ms(direct)}


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
        api_ms = _ms(time.perf_counter() - started)
        listed_ms = await _until(lambda s: all(not s[p].enabled for p in targets if p in s),
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
                return _ms(time.perf_counter() - since)
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
