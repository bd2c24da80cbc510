"""Elastic capacity on the real lab: a node joins HAProxy and the lease pool, then drains out."""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
import uuid
from typing import Any

import httpx
import pytest

from chaoskit.errors import PlatformError
from chaoskit.faults.scale import Scale, ScaleConfig
from chaoskit.lab import netns, processes
from chaoskit.platforms.local.platform import LocalPlatform
from tests.fixtures.lab import RunningLab

pytestmark = [pytest.mark.integration, pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="netns nodes need root")]


def plan(platform: LocalPlatform, nodes: int, target: dict[str, Any] | None = None
         ) -> dict[str, Any]:
    return Scale(platform).plan("elastic", target or {}, ScaleConfig(nodes=nodes, drain="3s"),
                                random.Random(1))


class Payers:
    """Payments through the entry from a thread, bounded in count and time; counts failures."""

    def __init__(self, entry: str, limit: int = 2000, seconds: float = 60.0) -> None:
        self.entry, self.limit, self.seconds = entry, limit, seconds
        self.sent = self.failed = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + self.seconds
        with httpx.Client(base_url=self.entry, timeout=10, trust_env=False) as http:
            while not self.stop.is_set() and self.sent < self.limit and \
                    time.monotonic() < deadline:
                self.sent += 1
                try:
                    ok = http.post("/v1/payments", json={"amount": "1.00", "currency": "CNY",
                                                         "merchant": "m-scale"},
                                   headers={"Idempotency-Key": uuid.uuid4().hex}).status_code
                    self.failed += ok != 201
                except httpx.HTTPError:
                    self.failed += 1
                time.sleep(0.02)

    def __enter__(self) -> Payers:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(timeout=20)


def test_a_node_joins_serves_and_drains_out_with_no_client_error(lab: RunningLab) -> None:
    platform, driver = lab.platform, Scale(lab.platform)
    intent = plan(platform, +1)
    name = intent["nodes"][0]
    with Payers(platform.entry_url()) as payers:
        time.sleep(0.5)
        facts = asyncio.run(driver.inject(intent))
        effect = asyncio.run(driver.measure_effect(intent))
        worker = next(p for p in platform.lab().processes_on(name) if p.service == "worker")
        netns_name = platform.lab().node(name).netns
        time.sleep(1.0)
        reverted = asyncio.run(driver.revert(intent))
        time.sleep(0.5)
    print(f"\n{name}: in rotation after {facts['in_rotation_s']}s, served {effect['served_by']}"
          f", drained in {reverted['drain_s']}; {payers.sent} payments, {payers.failed} failed")
    assert effect["served_by"].get(name, 0) > 0 and effect["entry_states"][name] == "UP"
    assert processes.alive(worker.pid, worker.started) is False  # it was in the pool, now gone
    assert payers.sent > 50 and payers.failed == 0
    assert reverted["removed"] == [name]
    assert name not in platform.entry_states() and netns_name not in netns.netns_list()
    assert asyncio.run(driver.revert(intent))["removed"] == []
    assert asyncio.run(driver.verify_reverted(intent)) == []


def test_a_node_taken_out_stops_serving_and_comes_back(lab: RunningLab) -> None:
    platform, driver = lab.platform, Scale(lab.platform)
    intent = plan(platform, -1, {"node": "node-3"})
    with Payers(platform.entry_url()) as payers:
        time.sleep(0.3)
        asyncio.run(driver.inject(intent))
        effect = asyncio.run(driver.measure_effect(intent))
        assert platform.entry_states()["node-3"] == "MAINT"
        assert "node-3" not in effect["served_by"] and sum(effect["served_by"].values()) > 0
        assert asyncio.run(driver.verify_reverted(intent)) != []
        facts = asyncio.run(driver.revert(intent))
    print(f"\nnode-3 back in rotation after {facts['in_rotation_s']}s; "
          f"{payers.sent} payments, {payers.failed} failed")
    assert payers.failed == 0
    assert asyncio.run(driver.revert(intent))["started"] == []
    assert asyncio.run(driver.verify_reverted(intent)) == []


class SecondNodeFails(LocalPlatform):
    """The lab, except that the second node of a scale-out fails after being recorded."""

    def add_node(self, name: str | None = None) -> str:
        added = super().add_node(name)
        if len([n for n in self.nodes() if n.name not in ("node-1", "node-2", "node-3")]) > 1:
            raise PlatformError(f"{added} failed its start-up checks", hint="test")
        return added


def test_a_failure_mid_inject_leaves_no_node_behind(lab: RunningLab) -> None:
    platform = SecondNodeFails(lab.dir)
    intent = plan(platform, +2)
    with pytest.raises(PlatformError, match="failed its start-up checks"):
        asyncio.run(Scale(platform).inject(intent))
    for name in intent["nodes"]:
        assert platform.departed_residue(name) == []
    assert [n.name for n in platform.nodes()] == ["node-1", "node-2", "node-3"]
    assert httpx.get(f"{platform.entry_url()}/healthz", trust_env=False).status_code == 200
