"""What every Toxiproxy fault shares: targets, created proxies, rollback, revert and audit.

Every network fault follows the same path. `plan` resolves the target to proxy names and names
what it will put there. `inject` creates missing declared proxies (marked `chaoskit.created`),
applies the toxics (or disables the proxies), waits until the server lists them, and probes when
it can. Any failure on the way undoes what this call did, in reverse. `revert` and
`verify_reverted` work from the intent and the server's own listing only, so another process can
revert after a crash; they touch only chaoskit-named toxics, proxies chaoskit disabled, and
proxies chaoskit created.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from functools import partial
from typing import Any, ClassVar

from chaoskit.errors import ChaoskitError, FaultError
from chaoskit.faults.base import FaultConfig, Intent, Touch, owner_tag
from chaoskit.faults.network_targets import (
    CREATED_MARK,
    check_safe_name,
    declared_proxies,
    disabled_mark,
    family,
    resolve_proxies,
)
from chaoskit.platforms.abilities import Need, Platform, ToxiproxyAccess, require
from chaoskit.toxiproxy import ProxyState, ToxiproxyServer

Undo = list[Callable[[], None]]
State = dict[str, ProxyState]
LISTED_TIMEOUT = 2.0  # the server lists a toxic before its API call returns; this is a backstop


def label_of(intent: Intent) -> str:
    """The owner-scoped name of a fault's toxics (journals before owners: the fault's name)."""
    return str(intent.get("label") or intent["fault"])


def as_ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


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


async def wait_listed(check: Callable[[State], bool], server: ToxiproxyServer,
                      since: float) -> float:
    """Milliseconds from `since` until the server's listing satisfies `check`."""
    deadline = time.perf_counter() + LISTED_TIMEOUT
    while not check(await asyncio.to_thread(server.proxies)):
        if time.perf_counter() > deadline:
            raise FaultError(f"Toxiproxy at {server.url} did not list the change within "
                             f"{LISTED_TIMEOUT:g}s", hint="check the server's log")
        await asyncio.sleep(0.001)
    return as_ms(time.perf_counter() - since)


class ProxyFault:
    """What every network fault shares: targets, created proxies, rollback, revert, audit."""

    type_name: ClassVar[str]
    Config: ClassVar[type[FaultConfig]]
    destructive: ClassVar[bool] = False  # reversible, and confined to the named proxies

    def __init__(self, platform: Platform, run: str = "adhoc") -> None:
        self.platform = platform
        self.run = run

    def needs(self, config: FaultConfig) -> list[Need]:
        return [Need(ToxiproxyAccess, "reach a Toxiproxy for network faults")]

    def plan(self, name: str, target: dict[str, Any], config: FaultConfig,
             rng: random.Random) -> Intent:
        del rng  # no seeded choices: a selector names its proxies
        check_safe_name("fault", name)
        access = require(self.platform, ToxiproxyAccess, "reach a Toxiproxy for network faults")
        url = access.toxiproxy_url()
        declared = declared_proxies(access)
        names = resolve_proxies(target, [d["name"] for d in declared],
                                lambda: ToxiproxyServer(url).proxies())
        # what this run puts on the server carries its owner, so no other run removes it
        label = f"{owner_tag(self.run)}-{name}"
        intent: Intent = {"type": self.type_name, "fault": name, "owner": self.run,
                          "label": label, "toxiproxy": url, "proxies": names, "created": [],
                          "declared": [d for d in declared if d["name"] in names]}
        intent.update(self._plan_effect(label, names, config))
        return intent

    def touches(self, intent: Intent) -> list[Touch]:
        return [Touch("proxy", p, intent["toxiproxy"]) for p in intent["proxies"]]

    def _plan_effect(self, name: str, proxies: list[str], config: FaultConfig) -> dict[str, Any]:
        raise NotImplementedError

    async def preflight(self, intent: Intent) -> list[str]:
        """Server reachable, every proxy present or declared, nothing of this fault left over."""
        server = ToxiproxyServer(intent["toxiproxy"])
        try:
            state = await asyncio.to_thread(server.proxies)
        except ChaoskitError as exc:
            return [f"{exc.message}; {exc.hint}"]
        declared = {d["name"] for d in intent["declared"]}
        problems = [f"Toxiproxy at {server.url} has no proxy '{name}' and none is declared"
                    for name in intent["proxies"] if name not in state and name not in declared]
        left = self._residue(intent, state) + self._left_by_others(intent, state)
        return problems + [f"{found} (left by an earlier run: run `chaoskit recover`)"
                           for found in left]

    @staticmethod
    def _left_by_others(intent: Intent, state: State) -> list[str]:
        """chaoskit's toxics of other runs on the proxies this fault needs. A live run holding
        the proxy is refused by the claims first, so these are a dead run's leftovers."""
        owned = family(label_of(intent))
        return [f"toxic {t.name} is on proxy {name}" for name in intent["proxies"]
                if name in state for t in state[name].toxics
                if t.name.startswith("chaoskit-") and t.name not in owned]

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
        return {**facts, "revert_ms": as_ms(done - started), "deleted_proxies": deleted}

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
        fault, label = intent["fault"], label_of(intent)
        owned = family(label)
        found = []
        for name in intent["proxies"]:
            proxy = state.get(name)
            if proxy is None:
                continue
            found += [f"toxic {t.name} ({t.kind}, {t.stream}) is still on proxy {name}"
                      for t in proxy.toxics if t.name in owned]
            if not proxy.enabled and proxy.toxic(disabled_mark(label)):
                found.append(f"proxy {name} is still disabled by fault {fault}")
            if proxy.toxic(CREATED_MARK) and len(proxy.toxics) == 1:
                found.append(f"proxy {name}, created by chaoskit, is still there")
        return found
