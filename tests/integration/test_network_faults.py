"""Network faults against a real toxiproxy-server: effect and revert per kind, Toxiproxy's ways."""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from chaoskit.errors import FaultError
from chaoskit.faults import network
from chaoskit.faults.base import PreflightChecks, owner_tag
from chaoskit.faults.network_probe import split_address
from chaoskit.faults.network_targets import toxic_name
from chaoskit.testing import FakePlatform
from chaoskit.toxiproxy import ProxyState, ToxiproxyServer, wait_ready
from tests.fixtures.real import require_real
from tests.fixtures.toxiproxy import free_port, stop_process

pytestmark = pytest.mark.integration
# Until tests/conftest.py lists it, load the fixture plug-in here (harmless once it does).
Effect = Callable[[str], Awaitable[bool]]


class LabPlatform(FakePlatform):
    """The fake platform pointed at a real Toxiproxy, with the proxies a test declares."""

    name = "test-lab"

    def __init__(self, url: str, declared: list[dict[str, str]] | None = None) -> None:
        super().__init__()
        self.set_address("toxiproxy", url)
        self.declared = declared or []

    def declared_proxies(self) -> list[dict[str, str]]:
        return self.declared


def planned(cls: type[network.ProxyFault], url: str, name: str, target: dict[str, Any],
            declared: list[dict[str, str]] | None = None,
            **fields: Any) -> tuple[network.ProxyFault, dict[str, Any]]:
    fault = cls(LabPlatform(url, declared), RUN)
    return fault, fault.plan(name, target, cls.Config(**fields), random.Random(0))


RUN = "network-tests"


def toxic(fault: str, stream: str) -> str:
    """The name this module's run gives a fault's toxic on a stream."""
    return toxic_name(f"{owner_tag(RUN)}-{fault}", stream)


async def connect(address: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection(*split_address(address)), 2)


async def round_trip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     payload: bytes = b"ping\n") -> float:
    started = time.perf_counter()
    writer.write(payload)
    await writer.drain()
    await asyncio.wait_for(reader.readexactly(len(payload)), 3)
    return time.perf_counter() - started


async def fresh_rtt(address: str) -> float:
    """Median of 3 round trips on a new connection: one scheduling stall cannot decide it."""
    reader, writer = await connect(address)
    try:
        await round_trip(reader, writer)  # first trip also pays for the proxy's upstream dial
        return statistics.median([await round_trip(reader, writer) for _ in range(3)])
    finally:
        writer.close()


# ---- observable effects, one per kind: True when the fault is acting on a new connection ----

async def delayed(address: str) -> bool:
    return await fresh_rtt(address) >= 0.070  # latency asked: 80ms


async def throttled(address: str) -> bool:
    reader, writer = await connect(address)
    try:  # 20 kB back at 50 KB/s takes 0.4 s; unthrottled loopback takes well under 0.1 s
        return await round_trip(reader, writer, b"x" * 20_000) >= 0.3
    finally:
        writer.close()


async def stalled(address: str) -> bool:
    reader, writer = await connect(address)
    try:
        await round_trip(reader, writer)
        return False
    except TimeoutError:
        return True
    finally:
        writer.close()


async def reset_on_use(address: str) -> bool:
    reader, writer = await connect(address)
    writer.write(b"ping\n")
    try:
        return await asyncio.wait_for(reader.read(5), 2) == b""
    except ConnectionResetError:
        return True
    finally:
        writer.close()


async def slow_to_close(address: str) -> bool:
    reader, writer = await connect(address)
    try:
        await round_trip(reader, writer)
        started = time.perf_counter()
        writer.write_eof()  # the echo upstream closes when we do; the proxy holds that close
        assert await asyncio.wait_for(reader.read(), 3) == b""
        return time.perf_counter() - started >= 0.25  # delay asked: 300ms
    finally:
        writer.close()


async def cut_short(address: str) -> bool:
    reader, writer = await connect(address)
    received = b""
    try:  # no half-close here: Toxiproxy ends both directions when the client's side ends
        writer.write(b"y" * 300)
        while len(received) < 300 and (chunk := await asyncio.wait_for(reader.read(300), 3)):
            received += chunk
        return len(received) < 300  # limit asked: 100 bytes
    finally:
        writer.close()


async def refused(address: str) -> bool:
    try:
        _, writer = await connect(address)
    except ConnectionRefusedError:
        return True
    writer.close()
    return False


KINDS = [
    pytest.param(network.LatencyFault, {"latency": "80ms", "probe": "echo"}, delayed, id="latency"),
    pytest.param(network.BandwidthFault, {"rate": "50KB/s"}, throttled, id="bandwidth"),
    pytest.param(network.TimeoutFault, {"timeout": "0ms"}, stalled, id="timeout"),
    pytest.param(network.ResetPeerFault, {}, reset_on_use, id="reset-peer"),
    pytest.param(network.SlowCloseFault, {"delay": "300ms"}, slow_to_close, id="slow-close"),
    pytest.param(network.LimitDataFault, {"max_bytes": 100}, cut_short, id="limit-data"),
    pytest.param(network.DownFault, {}, refused, id="down"),
]


@pytest.mark.parametrize(("cls", "fields", "acting"), KINDS)
def test_inject_acts_and_revert_removes_it(toxiproxy_url: str, echo_upstream: Any,
                                           make_proxy: Any, cls: type[network.ProxyFault],
                                           fields: dict[str, Any], acting: Effect) -> None:
    proxy = make_proxy("bank", echo_upstream.address)
    fault, intent = planned(cls, toxiproxy_url, "f1", {"proxy": proxy.name}, **fields)

    async def scenario() -> dict[str, Any]:
        seen = {"before": await acting(proxy.listen)}
        seen["injected"] = await fault.inject(intent)
        seen["during"] = await acting(proxy.listen)
        seen["audit_during"] = await fault.verify_reverted(intent)
        seen["reverted"] = await fault.revert(intent)
        seen["after"] = await acting(proxy.listen)
        seen["reverted_again"] = await fault.revert(intent)
        seen["audit"] = await fault.verify_reverted(intent)
        return seen

    seen = asyncio.run(scenario())
    assert (seen["before"], seen["during"], seen["after"]) == (False, True, False)
    assert seen["injected"]["listed_ms"] >= seen["injected"]["api_ms"] > 0
    assert seen["audit_during"], "the audit must see the fault while it is in place"
    assert seen["audit"] == []
    assert seen["reverted_again"].get("removed_toxics", []) == []
    assert seen["reverted_again"].get("enabled", []) == []
    remaining = ToxiproxyServer(toxiproxy_url).proxies()[proxy.name]
    assert remaining.toxics == [] and remaining.enabled


def test_new_toxic_reaches_open_connections_before_api_returns(
        toxiproxy_url: str, echo_upstream: Any, make_proxy: Any) -> None:
    proxy = make_proxy("bank", echo_upstream.address)
    fault, intent = planned(network.LatencyFault, toxiproxy_url, "f2", {"proxy": proxy.name},
                            latency="100ms", probe="none")

    async def scenario() -> tuple[float, float]:
        reader, writer = await connect(proxy.listen)
        try:
            before = min([await round_trip(reader, writer) for _ in range(3)])
            await fault.inject(intent)
            return before, await round_trip(reader, writer)  # very next chunk, same connection
        finally:
            writer.close()
            await fault.revert(intent)

    before, after = asyncio.run(scenario())
    assert before < 0.03
    assert after >= 0.1


def test_inject_probe_sees_the_toxic_on_its_first_request(
        toxiproxy_url: str, echo_upstream: Any, make_proxy: Any) -> None:
    proxy = make_proxy("bank", echo_upstream.address)
    fault, intent = planned(network.LatencyFault, toxiproxy_url, "f3", {"proxy": proxy.name},
                            latency="50ms", probe="echo")

    async def scenario() -> dict[str, Any]:
        try:
            return await fault.inject(intent)
        finally:
            await fault.revert(intent)

    facts = asyncio.run(scenario())
    assert facts["unaffected_requests"] == 0  # not one request got through undelayed
    assert facts["api_ms"] <= facts["activation_ms"]
    assert facts["first_affected_rtt_ms"] >= 50


async def _direction_timing(address: str, upstream: Any) -> tuple[float, float]:
    """(seconds until the upstream got a chunk, seconds until the client got it back): medians
    of 3, so one scheduling stall on a busy machine cannot decide the outcome."""
    reader, writer = await connect(address)
    reached, back = [], []
    try:
        await round_trip(reader, writer)
        for _ in range(3):
            payload = f"{uuid.uuid4().hex}\n".encode()
            sent = time.perf_counter()
            back.append(await round_trip(reader, writer, payload))
            reached.append(next(t for t, data in upstream.arrivals if payload in data) - sent)
        return statistics.median(reached), statistics.median(back)
    finally:
        writer.close()


@pytest.mark.parametrize(("stream", "reaches_upstream", "round_trip_s"), [
    ("downstream", (0.0, 0.05), (0.1, 0.2)),
    ("upstream", (0.1, 0.2), (0.1, 0.2)),
    ("both", (0.1, 0.2), (0.2, 0.3)),
])
def test_latency_applies_per_direction(toxiproxy_url: str, echo_upstream: Any, make_proxy: Any,
                                       stream: str, reaches_upstream: tuple[float, float],
                                       round_trip_s: tuple[float, float]) -> None:
    proxy = make_proxy("bank", echo_upstream.address)
    fault, intent = planned(network.LatencyFault, toxiproxy_url, "f4", {"proxy": proxy.name},
                            latency="100ms", stream=stream, probe="none")

    async def scenario() -> tuple[float, float]:
        await fault.inject(intent)
        try:
            return await _direction_timing(proxy.listen, echo_upstream)
        finally:
            await fault.revert(intent)

    to_upstream, rtt = asyncio.run(scenario())
    # Downstream (Toxiproxy's default) delays only the answer: the upstream gets requests at once.
    assert reaches_upstream[0] <= to_upstream < reaches_upstream[1]
    assert round_trip_s[0] <= rtt < round_trip_s[1]


def test_reset_peer_spares_an_idle_connection_until_it_is_used(
        toxiproxy_url: str, echo_upstream: Any, make_proxy: Any) -> None:
    proxy = make_proxy("bank", echo_upstream.address)
    fault, intent = planned(network.ResetPeerFault, toxiproxy_url, "f5", {"proxy": proxy.name})

    async def scenario() -> tuple[str, str]:
        reader, writer = await connect(proxy.listen)
        try:
            await round_trip(reader, writer)  # an established keep-alive connection
            await fault.inject(intent)
            try:
                idle = "closed" if await asyncio.wait_for(reader.read(1), 0.4) == b"" else "data"
            except TimeoutError:
                idle = "open"
            writer.write(b"ping\n")
            try:
                used = "closed" if await asyncio.wait_for(reader.read(5), 2) == b"" else "data"
            except ConnectionResetError:
                used = "reset"
            return idle, used
        finally:
            writer.close()
            await fault.revert(intent)

    idle, used = asyncio.run(scenario())
    assert idle == "open"
    assert used in {"reset", "closed"}


@pytest.mark.parametrize(("stream", "asked"), [("downstream", 20.0), ("both", 40.0)])
@pytest.mark.parametrize("probe", ["echo", "http"])
def test_observed_added_latency_is_within_2ms_of_asked(
        toxiproxy_url: str, echo_upstream: Any, http_upstream: Any, make_proxy: Any,
        stream: str, asked: float, probe: str) -> None:
    upstream = echo_upstream if probe == "echo" else http_upstream
    proxy = make_proxy("bank", upstream.address)
    fault, intent = planned(network.LatencyFault, toxiproxy_url, "f6", {"proxy": proxy.name},
                            latency="20ms", stream=stream, probe=probe)

    async def scenario() -> dict[str, Any]:
        await fault.inject(intent)
        try:
            return await fault.measure_effect(intent)  # type: ignore[attr-defined]
        finally:
            await fault.revert(intent)

    measured = asyncio.run(scenario())
    assert measured["measured"] and measured["asked_added_ms"] == asked
    assert abs(measured["error_ms"]) <= 2.0, measured  # stated tolerance: 2 ms


def test_jitter_spreads_round_trips_around_the_latency(
        toxiproxy_url: str, echo_upstream: Any, make_proxy: Any) -> None:
    proxy = make_proxy("bank", echo_upstream.address)
    fault, intent = planned(network.LatencyFault, toxiproxy_url, "f7", {"proxy": proxy.name},
                            latency="40ms", jitter="20ms", probe="none")

    async def scenario() -> list[float]:
        await fault.inject(intent)
        try:
            reader, writer = await connect(proxy.listen)
            samples = [await round_trip(reader, writer) for _ in range(30)]
            writer.close()
            return samples
        finally:
            await fault.revert(intent)

    samples = asyncio.run(scenario())
    # Toxiproxy draws each delay uniformly from [latency - jitter, latency + jitter), so none is
    # under 20 ms, and with 30 draws some fall under 30 ms (a stall only ever adds time, and
    # without jitter every trip would take 40 ms): each check fails by chance < 1 in 5000.
    assert min(samples) >= 0.020
    assert sum(s < 0.030 for s in samples) >= 1
    assert sum(s > 0.050 for s in samples) >= 1


def test_zero_toxicity_spares_every_connection(toxiproxy_url: str, echo_upstream: Any,
                                               make_proxy: Any) -> None:
    proxy = make_proxy("bank", echo_upstream.address)
    fault, intent = planned(network.LatencyFault, toxiproxy_url, "f8", {"proxy": proxy.name},
                            latency="200ms", toxicity="0%", probe="none")

    async def scenario() -> list[bool]:
        await fault.inject(intent)
        try:
            return [await delayed(proxy.listen) for _ in range(3)]
        finally:
            await fault.revert(intent)

    assert asyncio.run(scenario()) == [False, False, False]
    assert ToxiproxyServer(toxiproxy_url).proxies()[proxy.name].toxics == []


def _listing(url: str, names: list[str]) -> dict[str, ProxyState]:
    state = ToxiproxyServer(url).proxies()
    return {n: state[n] for n in names if n in state}


def test_failure_on_second_stream_leaves_nothing_behind(
        toxiproxy_url: str, echo_upstream: Any, make_proxy: Any) -> None:
    server = ToxiproxyServer(toxiproxy_url)
    family = f"fam{uuid.uuid4().hex[:6]}"
    existing = make_proxy(family, echo_upstream.address)
    declared = {"name": f"{family}-new", "listen": f"127.0.0.1:{free_port()}",
                "upstream": echo_upstream.address}
    # A stale toxic under the upstream name makes the last add of the inject fail (409).
    server.add_toxic(existing.name, toxic("f9", "upstream"), "latency", "upstream", 1.0,
                     {"latency": 1})
    before = _listing(toxiproxy_url, [existing.name, declared["name"]])
    fault, intent = planned(network.LatencyFault, toxiproxy_url, "f9", {"dependency": family},
                            declared=[declared], latency="50ms", stream="both", probe="none")
    assert intent["proxies"] == sorted([existing.name, declared["name"]])

    with pytest.raises(FaultError, match="already exists") as caught:
        asyncio.run(fault.inject(intent))

    assert "undone" in caught.value.message
    assert intent["created"] == [declared["name"]]  # it was created, then deleted by rollback
    assert _listing(toxiproxy_url, [existing.name, declared["name"]]) == before


def test_failure_on_missing_undeclared_proxy_leaves_nothing_behind(
        toxiproxy_url: str, echo_upstream: Any, make_proxy: Any) -> None:
    family = f"fam{uuid.uuid4().hex[:6]}"
    present = make_proxy(family, echo_upstream.address)
    fault, intent = planned(network.DownFault, toxiproxy_url, "f10", {"dependency": family})
    intent["proxies"].append(f"{family}-gone")  # the lab lost a proxy between plan and inject

    with pytest.raises(FaultError, match="has no proxy"):
        asyncio.run(fault.inject(intent))
    after = ToxiproxyServer(toxiproxy_url).proxies()[present.name]
    assert after.enabled and after.toxics == []


def test_down_leaves_a_proxy_someone_else_disabled_disabled(
        toxiproxy_url: str, echo_upstream: Any, make_proxy: Any) -> None:
    server = ToxiproxyServer(toxiproxy_url)
    proxy = make_proxy("bank", echo_upstream.address)
    server.set_enabled(proxy.name, False)
    fault, intent = planned(network.DownFault, toxiproxy_url, "f11", {"proxy": proxy.name})

    async def scenario() -> tuple[dict[str, Any], dict[str, Any], list[str]]:
        injected = await fault.inject(intent)
        return injected, await fault.revert(intent), await fault.verify_reverted(intent)

    injected, reverted, audit = asyncio.run(scenario())
    assert injected["already_disabled"] == [proxy.name] and injected["disabled"] == []
    assert reverted["enabled"] == [] and audit == []
    assert not server.proxies()[proxy.name].enabled


@pytest.fixture
def foreign_toxiproxy(tmp_path: Path, echo_upstream: Any) -> Any:
    """A toxiproxy-server someone else runs, their proxies (one with a toxic) already set up."""
    binary = require_real("toxiproxy-server")
    port = free_port()
    config = tmp_path / "theirs.json"
    theirs = [{"name": "bank-alpha", "listen": f"127.0.0.1:{free_port()}",
               "upstream": echo_upstream.address},
              {"name": "ledger", "listen": f"127.0.0.1:{free_port()}", "upstream": "127.0.0.1:9"}]
    config.write_text(json.dumps(theirs))
    with open(tmp_path / "theirs.log", "wb") as log:
        process = subprocess.Popen([binary, "-host", "127.0.0.1", "-port", str(port),
                                    "-config", str(config)], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, 10)
        httpx.post(f"{url}/proxies/bank-alpha/toxics", json={
            "name": "their-jitter", "type": "latency", "stream": "upstream",
            "attributes": {"latency": 1, "jitter": 1}}).raise_for_status()
        yield url
    finally:
        stop_process(process)


def test_shared_server_keeps_others_proxies_and_toxics(
        foreign_toxiproxy: str, echo_upstream: Any) -> None:
    url = foreign_toxiproxy
    declared = [{"name": "bank-beta", "listen": f"127.0.0.1:{free_port()}",
                 "upstream": echo_upstream.address}]
    before = ToxiproxyServer(url).proxies()
    fault, intent = planned(network.LatencyFault, url, "peak-bank", {"dependency": "bank"},
                            declared=declared, latency="80ms", stream="both", probe="none")
    assert intent["proxies"] == ["bank-alpha", "bank-beta"]  # theirs listed, ours declared

    async def scenario() -> tuple[dict[str, Any], dict[str, ProxyState], dict[str, Any]]:
        injected = await fault.inject(intent)
        during = ToxiproxyServer(url).proxies()
        return injected, during, await fault.revert(intent)

    injected, during, reverted = asyncio.run(scenario())
    assert injected["created_proxies"] == ["bank-beta"]
    assert {t.name for t in during["bank-alpha"].toxics} == {
        "their-jitter", toxic("peak-bank", "downstream"), toxic("peak-bank", "upstream")}
    assert reverted["deleted_proxies"] == ["bank-beta"]
    assert ToxiproxyServer(url).proxies() == before
    assert asyncio.run(fault.verify_reverted(intent)) == []


def test_down_drops_connections_that_were_open(toxiproxy_url: str, echo_upstream: Any,
                                               make_proxy: Any) -> None:
    proxy = make_proxy("bank", echo_upstream.address)
    fault, intent = planned(network.DownFault, toxiproxy_url, "f12", {"proxy": proxy.name})

    async def scenario() -> str:
        reader, writer = await connect(proxy.listen)
        try:
            await round_trip(reader, writer)
            await fault.inject(intent)
            writer.write(b"ping\n")
            try:
                got = await asyncio.wait_for(reader.read(5), 2)
            except ConnectionResetError:
                return "reset"
            return "closed" if got == b"" else "answered"
        finally:
            writer.close()
            await fault.revert(intent)

    assert asyncio.run(scenario()) in {"reset", "closed"}


def test_another_process_reverts_from_the_journaled_intent_alone(
        toxiproxy_url: str, echo_upstream: Any) -> None:
    """The journal holds the intent as planned (nothing created yet); that must be enough."""
    family = f"fam{uuid.uuid4().hex[:6]}"
    declared = [{"name": f"{family}-a", "listen": f"127.0.0.1:{free_port()}",
                 "upstream": echo_upstream.address}]
    fault, intent = planned(network.DownFault, toxiproxy_url, "f13", {"dependency": family},
                            declared=declared)
    journaled = json.loads(json.dumps(intent))

    injected = asyncio.run(fault.inject(intent))
    assert injected["created_proxies"] == [f"{family}-a"] and journaled["created"] == []
    recovering = network.DownFault(LabPlatform("http://unused.invalid:1"))  # type: ignore[arg-type]
    reverted = asyncio.run(recovering.revert(journaled))

    assert reverted["enabled"] == [f"{family}-a"]
    assert reverted["deleted_proxies"] == [f"{family}-a"]
    assert f"{family}-a" not in ToxiproxyServer(toxiproxy_url).proxies()
    assert asyncio.run(recovering.verify_reverted(journaled)) == []


def test_audit_reports_an_unreachable_server_instead_of_passing(toxiproxy_url: str) -> None:
    fault, intent = planned(network.TimeoutFault, toxiproxy_url, "f14", {"proxy": "whatever"})
    intent["toxiproxy"] = f"http://127.0.0.1:{free_port()}"
    residue = asyncio.run(fault.verify_reverted(intent))
    assert len(residue) == 1 and "cannot audit" in residue[0]


def test_a_probe_that_cannot_speak_to_the_upstream_does_not_stop_the_fault(
        toxiproxy_url: str, echo_upstream: Any, make_proxy: Any) -> None:
    proxy = make_proxy("bank", echo_upstream.address)
    fault, intent = planned(network.LatencyFault, toxiproxy_url, "f15", {"proxy": proxy.name},
                            latency="80ms", probe="http")  # an echo server does not speak HTTP

    async def scenario() -> tuple[dict[str, Any], bool]:
        try:
            injected = await fault.inject(intent)
            return injected, await delayed(proxy.listen)
        finally:
            await fault.revert(intent)

    injected, acting = asyncio.run(scenario())
    assert "http probe" in injected["probe_error"] and "activation_ms" not in injected
    assert acting


def test_preflight_finds_leftovers_and_missing_proxies(toxiproxy_url: str, echo_upstream: Any,
                                                        make_proxy: Any) -> None:
    server = ToxiproxyServer(toxiproxy_url)
    proxy = make_proxy("bank", echo_upstream.address)
    fault, intent = planned(network.SlowCloseFault, toxiproxy_url, "f16", {"proxy": proxy.name},
                            delay="100ms")
    assert isinstance(fault, PreflightChecks)
    assert asyncio.run(fault.preflight(intent)) == []

    server.add_toxic(proxy.name, "chaoskit-0badc0de-f16-downstream", "slow_close",
                     "downstream", 1.0, {"delay": 100})  # as a crashed earlier run left it
    intent["proxies"].append("bank-nowhere")
    problems = asyncio.run(fault.preflight(intent))
    assert len(problems) == 2
    assert "no proxy 'bank-nowhere'" in problems[0] and "chaoskit recover" in problems[1]
    assert "chaoskit-0badc0de-f16-downstream" in problems[1]


def test_two_servers_used_from_many_threads_never_cross(toxiproxy_url: str,
                                                         foreign_toxiproxy: str) -> None:
    """toxiproxy-python keeps one host/port for the whole process (its `update_api_consumer`
    sets it globally); each call must carry its own server's address, whichever thread runs it."""
    servers = {"ours": ToxiproxyServer(toxiproxy_url), "theirs": ToxiproxyServer(foreign_toxiproxy)}
    tag = uuid.uuid4().hex[:6]

    def churn(job: tuple[str, int]) -> None:
        side, worker = job
        for index in range(worker, 16, 2):  # two workers per server, disjoint names
            name = f"x{tag}-{side}-{index}"
            servers[side].ensure_proxy(name, "127.0.0.1:0", "127.0.0.1:9")
            servers[side].add_toxic(name, "t", "latency", "downstream", 1.0, {"latency": 1})

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(churn, [("ours", 0), ("theirs", 0), ("ours", 1), ("theirs", 1)]))
    for side, server in servers.items():
        mine = {n: p for n, p in server.proxies().items() if n.startswith(f"x{tag}-")}
        assert set(mine) == {f"x{tag}-{side}-{i}" for i in range(16)}
        assert all([t.name for t in p.toxics] == ["t"] for p in mine.values())
        for name in mine:
            server.delete_proxy(name)
