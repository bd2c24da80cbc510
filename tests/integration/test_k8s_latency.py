"""Latency on Kubernetes is the same `latency` driver: the platform only says where Toxiproxy is.

The in-cluster Toxiproxy is reached through a port forward, i.e. an explicit `target.toxiproxy`
URL on loopback; here that is a real toxiproxy-server (tests.fixtures.toxiproxy) standing in for
the forwarded one, so the test needs no cluster.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import pytest

from chaoskit.faults.network import LatencyFault
from chaoskit.faults.network_probe import split_address
from chaoskit.platforms.kubernetes.platform import KubernetesPlatform
from chaoskit.spec.models import Target

pytestmark = pytest.mark.integration


async def round_trip_ms(address: str) -> float:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(*split_address(address)), 2)
    started = time.perf_counter()
    writer.write(b"ping\n")
    await writer.drain()
    await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    return (time.perf_counter() - started) * 1e3


def test_the_latency_driver_runs_unchanged_through_the_kubernetes_platform(
        toxiproxy_url: str, echo_upstream: Any, make_proxy: Any) -> None:
    proxy = make_proxy("bank", echo_upstream.address)
    target = Target.model_validate({"platform": "kubernetes", "namespace": "payments",
                                    "toxiproxy": toxiproxy_url})  # as from a port forward
    platform = KubernetesPlatform.from_target(target)
    fault = LatencyFault(platform)
    intent = fault.plan("slow-bank", {"proxy": proxy.name},
                        LatencyFault.Config(latency="150ms"), random.Random(0))
    assert intent["toxiproxy"] == toxiproxy_url

    async def scenario() -> tuple[float, float, float, list[str]]:
        before = await round_trip_ms(proxy.listen)
        await fault.inject(intent)
        during = await round_trip_ms(proxy.listen)
        await fault.revert(intent)
        after = await round_trip_ms(proxy.listen)
        return before, during, after, await fault.verify_reverted(intent)

    before, during, after, residue = asyncio.run(scenario())
    assert during >= 150 > max(before, after)  # added latency, then gone
    assert residue == []
