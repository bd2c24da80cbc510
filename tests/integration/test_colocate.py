"""Co-located offline work on the real lab: low-weight cgroups that really yield the CPU."""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path
from typing import Any

import pytest

from chaoskit.errors import PlatformError
from chaoskit.faults.colocate import Colocate, ColocateConfig
from chaoskit.lab import cgroups, offline
from chaoskit.platforms.abilities import OfflineWork
from chaoskit.platforms.local.platform import LocalPlatform
from tests.fixtures.lab import RunningLab
from tests.fixtures.systems import role_node
from tests.fixtures.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="cgroup nodes need root")]


def plan(platform: LocalPlatform, target: dict[str, Any], **config: Any) -> dict[str, Any]:
    return Colocate(platform).plan("colo", target, ColocateConfig(**config),
                                   random.Random(time.monotonic_ns()))


def cpu_group(platform: LocalPlatform, process_id: str) -> Path:
    """The cpu cgroup directory the process is in, read from /proc/<pid>/cgroup."""
    record = platform.lab().process(process_id)
    assert record is not None and record.pid
    for line in Path(f"/proc/{record.pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "cpu" in controllers.split(","):
            return cgroups.ROOT / "cpu" / path.lstrip("/")
    raise AssertionError("no cpu cgroup")



def gateway_of(platform: LocalPlatform, node: str) -> str:
    return next(p.id for p in platform.lab().processes_on(node) if p.service == "gateway")


def test_isolated_burner_runs_in_a_low_weight_group_on_the_nodes_cpus(lab: RunningLab) -> None:
    platform, driver = lab.platform, Colocate(lab.platform)
    intent = plan(platform, {"node": "node-1"}, work="burner", cpu=2, memory="32MiB",
                  lifetime="60s")
    facts = asyncio.run(driver.inject(intent))
    try:
        assert facts["isolation"] == "cgroup cpu.shares 2"
        group = cpu_group(platform, facts["processes"][0])
        node_group = cpu_group(platform, gateway_of(platform, "node-1"))
        assert group.parent == node_group and group.name == f"offline-{intent['tag']}"
        assert (group / "cpu.shares").read_text().strip() == "2"
        assert (node_group / "cpu.shares").read_text().strip() == "1024"
        cpuset = cgroups.ROOT / "cpuset" / group.relative_to(cgroups.ROOT / "cpu")
        assert (cpuset / "cpuset.cpus").read_text() == (cpuset.parent / "cpuset.cpus").read_text()
        # timeout(1), the burner and its second worker (forked once the burner has started)
        wait_for(lambda: len(cgroups.members(group)) == 3, 10.0, "3 processes in the group")
    finally:
        reverted = asyncio.run(driver.revert(intent))
    assert reverted["stopped"] == facts["processes"]
    assert not group.exists() and not cpuset.exists()
    assert asyncio.run(driver.revert(intent))["stopped"] == []
    assert asyncio.run(driver.verify_reverted(intent)) == []


def cpu_split(platform: LocalPlatform, online: str, offline_id: str, seconds: float
              ) -> tuple[float, float]:
    """CPU seconds the two process groups got over the same few seconds of contention."""
    before = (platform.process_cpu_seconds(online), platform.process_cpu_seconds(offline_id))
    time.sleep(seconds)
    return (platform.process_cpu_seconds(online) - before[0],
            platform.process_cpu_seconds(offline_id) - before[1])


def contend(platform: LocalPlatform, isolation: bool) -> tuple[float, float]:
    """Two busy workers at online weight (the node's own groups, as a gateway is) against two
    offline workers, with or without isolation, on one node: (online s, offline s)."""
    online_work = OfflineWork("burner", False, 30.0, cpu=2)
    offline_work = OfflineWork("burner", isolation, 30.0, cpu=2)
    online = platform.start_offline("node-2", "online-standin", online_work)
    batch = platform.start_offline("node-2", "batch", offline_work)
    try:
        time.sleep(0.5)  # both at full speed before measuring
        return cpu_split(platform, online, batch, 4.0)
    finally:
        platform.stop_offline("online-standin")
        platform.stop_offline("batch")


def test_under_contention_the_cpu_goes_to_the_online_side(lab: RunningLab) -> None:
    platform = lab.platform
    isolated = contend(platform, isolation=True)
    shared = contend(platform, isolation=False)
    print(f"\nonline vs offline CPU seconds over 4 s: isolated {isolated[0]:.2f} vs "
          f"{isolated[1]:.2f}, shared {shared[0]:.2f} vs {shared[1]:.2f}")
    assert isolated[0] > 1.0, "the online stand-in did not get the CPU"
    # weights 2048 : 2; measured ~13x here with other load around (shared: ~1x): 5x is safe
    assert isolated[0] >= 5 * isolated[1]
    assert 0.5 <= shared[0] / max(shared[1], 1e-3) <= 2.0  # equal weights: about even
    assert platform.offline_residue("online-standin") == platform.offline_residue("batch") == []


def test_reconciliation_finishes_in_its_window_and_the_revert_says_so(lab: RunningLab) -> None:
    platform, driver = lab.platform, Colocate(lab.platform)
    intent = plan(platform, {"node": role_node(platform, "gateway")}, work="reconciliation",
                  units=40, rounds=2000, window="60s", finish=True, lifetime="90s")
    asyncio.run(driver.inject(intent))
    effect = asyncio.run(driver.measure_effect(intent))
    facts = asyncio.run(driver.revert(intent))
    print(f"\nreconciliation: {effect['timeline']}, {facts['window_left_s']}s to spare")
    assert effect["finished"] is True and facts["finished_in_window"] is True
    assert set(facts["progress"].values()) == {1.0}
    assert 0 < facts["window_left_s"] < 60
    assert asyncio.run(driver.verify_reverted(intent)) == []


class FailsOnSecondNode(LocalPlatform):
    """The lab, except that starting offline work on node-2 fails after node-1's started."""

    def start_offline(self, node: str, tag: str, work: OfflineWork) -> str:
        if node == "node-2":
            raise PlatformError("node-2 refused the offline work", hint="test")
        return super().start_offline(node, tag, work)


def test_a_failure_mid_inject_leaves_no_process_and_no_group(lab: RunningLab) -> None:
    platform = FailsOnSecondNode(lab.dir)
    intent = plan(platform, {"node": "node-[12]"}, work="burner", cpu=1, lifetime="30s")
    with pytest.raises(PlatformError, match="node-2 refused"):
        asyncio.run(Colocate(platform).inject(intent))
    assert platform.offline_residue(intent["tag"]) == []
    assert not any(g.exists() for g in offline.group_dirs(platform.lab(), "node-1",
                                                          intent["tag"]))
    assert all(p.service != "burner" for p in platform.lab().processes)
