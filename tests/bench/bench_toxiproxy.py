"""Bench: how fast a Toxiproxy fault takes hold and lets go, and how exact the added latency is.

Run with `make bench` (or `PYTHONPATH=. .venv/bin/pytest tests/bench/bench_toxiproxy.py -s -q
-o python_files='bench_*.py'`). Bounded: at most ROUNDS rounds and BUDGET seconds.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from typing import Any

import pytest

from chaoskit.faults import network
from chaoskit.faults.network_probe import split_address

pytestmark = pytest.mark.integration

ROUNDS = 50
BUDGET = 30.0  # seconds for the activation/revert rounds, whatever ROUNDS says
LATENCY_MS = 20


class LabPlatform:
    name = "bench-lab"

    def __init__(self, url: str) -> None:
        self.url = url

    def toxiproxy_url(self) -> str:
        return self.url

    def declared_proxies(self) -> list[dict[str, str]]:
        return []  # the bench's proxy is made by its fixture


def percentiles(values: list[float]) -> str:
    if len(values) < 2:
        return "n/a"
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return f"p50 {cuts[49]:7.3f} ms   p99 {cuts[98]:7.3f} ms   (n={len(values)})"


async def echo_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> float:
    started = time.perf_counter()
    writer.write(b"ping\n")
    await writer.drain()
    await asyncio.wait_for(reader.readexactly(5), 3)
    return time.perf_counter() - started


async def first_request_without_delay(reader: asyncio.StreamReader,
                                      writer: asyncio.StreamWriter, since: float) -> float | None:
    """Milliseconds from `since` to sending the first request that is no longer delayed."""
    for _ in range(20):
        sent = time.perf_counter()
        if await echo_once(reader, writer) < LATENCY_MS / 2000:
            return (sent - since) * 1000
    return None


async def activation_and_revert(url: str, address: str, proxy: str) -> dict[str, list[float]]:
    fault = network.LatencyFault(LabPlatform(url))  # type: ignore[arg-type]
    config = fault.Config(latency=f"{LATENCY_MS}ms", probe="echo")
    reader, writer = await asyncio.open_connection(*split_address(address))
    figures: dict[str, list[float]] = {"api": [], "listed": [], "activation": [],
                                       "revert_call": [], "revert": []}
    deadline = time.perf_counter() + BUDGET
    try:
        for index in range(ROUNDS):
            if time.perf_counter() > deadline:
                break
            intent = fault.plan(f"bench{index}", {"proxy": proxy}, config, random.Random(index))
            facts = await fault.inject(intent)
            figures["api"].append(facts["api_ms"])
            figures["listed"].append(facts["listed_ms"])
            if facts["activation_ms"] is not None:
                figures["activation"].append(facts["activation_ms"])
            started = time.perf_counter()
            figures["revert_call"].append((await fault.revert(intent))["revert_ms"])
            gone = await first_request_without_delay(reader, writer, started)
            if gone is not None:
                figures["revert"].append(gone)
    finally:
        writer.close()
    return figures


async def accuracy(url: str, proxy: str, asked_ms: int, stream: str,
                   probe: str) -> dict[str, Any]:
    fault = network.LatencyFault(LabPlatform(url))  # type: ignore[arg-type]
    config = fault.Config(latency=f"{asked_ms}ms", stream=stream, probe=probe)
    intent = fault.plan(f"acc{asked_ms}{stream}", {"proxy": proxy}, config, random.Random(0))
    await fault.inject(intent)
    try:
        return await fault.measure_effect(intent)
    finally:
        await fault.revert(intent)


def test_bench_toxiproxy(toxiproxy_url: str, echo_upstream: Any, http_upstream: Any,
                         make_proxy: Any) -> None:
    proxy = make_proxy("bench", echo_upstream.address)
    figures = asyncio.run(activation_and_revert(toxiproxy_url, proxy.listen, proxy.name))
    print(f"\nToxiproxy latency fault ({LATENCY_MS}ms, echo upstream on loopback)")
    rows = [("add-toxic API call", "api"), ("API call -> toxic listed", "listed"),
            ("API call -> first delayed request", "activation"),
            ("revert(): list + remove toxic", "revert_call"),
            ("revert() start -> first undelayed request", "revert")]
    for label, key in rows:
        print(f"  {label:42s} {percentiles(figures[key])}")
    print("  observed vs asked added latency (median of 21 proxied-minus-direct round trips):")
    web = make_proxy("bench-http", http_upstream.address)
    for target, probe, asked, stream in [
            (proxy, "echo", 1, "downstream"), (proxy, "echo", 5, "downstream"),
            (proxy, "echo", 20, "downstream"), (proxy, "echo", 20, "both"),
            (proxy, "echo", 100, "downstream"), (web, "http", 20, "downstream")]:
        measured = asyncio.run(accuracy(toxiproxy_url, target.name, asked, stream, probe))
        print(f"    {probe:4s} asked {measured['asked_added_ms']:6.1f} ms ({stream:10s}) observed "
              f"{measured['observed_added_ms']:8.3f} ms  error {measured['error_ms']:+.3f} ms")
    assert len(figures["activation"]) == len(figures["api"]) > 0
