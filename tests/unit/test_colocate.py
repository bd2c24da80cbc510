"""Unit tests of the colocate driver and the local burner, at our own seams."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import asdict
from typing import Any

import pytest
from pydantic import ValidationError

from chaoskit.errors import FaultError, PlatformError
from chaoskit.faults.base import MeasuresEffect
from chaoskit.faults.colocate import Colocate, ColocateConfig
from chaoskit.lab import offline
from chaoskit.lab.state import ProcessRecord
from chaoskit.platforms.abilities import Colocation, OfflineProcess, OfflineWork, missing
from chaoskit.testing import FakePlatform, platform_without


class OfflinePlatform(FakePlatform):
    """The fake platform with offline work kept in memory; it can fail on a chosen node."""

    def __init__(self, fail_on: str | None = None) -> None:
        super().__init__()
        self.running: dict[str, OfflineProcess] = {}
        self.fail_on = fail_on
        self.stops = 0
        self.move_role("gateway", "node-2")

    def start_offline(self, node: str, tag: str, work: OfflineWork) -> str:
        if node == self.fail_on:
            raise PlatformError(f"cannot start on {node}", hint="test")
        pid = f"{work.work}-{node}-{tag}"
        self.running[pid] = OfflineProcess(pid, node, work.work, True, "", time.time())
        return pid

    def offline_processes(self, tag: str) -> list[OfflineProcess]:
        return [p for p in self.running.values() if p.id.endswith(tag)]

    def stop_offline(self, tag: str) -> list[str]:
        self.stops += 1
        gone = [p.id for p in self.offline_processes(tag)]
        for pid in gone:
            del self.running[pid]
        return gone

    def offline_residue(self, tag: str) -> list[str]:
        return [f"{p.id} running" for p in self.offline_processes(tag)]

    def offline_isolation(self) -> str:
        return "weight 2"

    def process_cpu_seconds(self, process_id: str) -> float:
        return 0.0


def plan(platform: Any, target: dict[str, Any], seed: int = 7, run: str = "run-a",
         **config: Any) -> dict[str, Any]:
    return Colocate(platform, run).plan("batch", target, ColocateConfig(**config),
                                        random.Random(seed))


def test_plan_resolves_patterns_names_and_roles_and_tags_the_work_with_its_run() -> None:
    platform = OfflinePlatform()
    assert plan(platform, {"node": "*"})["nodes"] == ["node-1", "node-2", "node-3"]
    assert plan(platform, {"node": "node-[13]"})["nodes"] == ["node-1", "node-3"]
    assert plan(platform, {"role": "gateway"})["nodes"] == ["node-2"]
    assert plan(platform, {"node": "node-3"})["nodes"] == ["node-3"]
    # the tag names the work on the nodes: the same run finds it again, another run never does
    one = {"node": "node-1"}
    assert plan(platform, one, seed=1)["tag"] == plan(platform, one, seed=2)["tag"]
    assert plan(platform, one, run="run-a")["tag"] != plan(platform, one, run="run-b")["tag"]
    with pytest.raises(FaultError, match="no node matches"):
        plan(platform, {"node": "edge-*"})
    with pytest.raises(FaultError, match="needs a target"):  # never a silent default node
        plan(platform, {})


def test_config_reads_sizes_and_refuses_finish_without_a_job() -> None:
    intent = plan(OfflinePlatform(), {"node": "node-1"}, memory="256MiB", cpu=3)
    assert intent["work"]["memory"] == 256 * 2**20 and intent["work"]["cpu"] == 3
    with pytest.raises(ValidationError, match="finish"):
        ColocateConfig(work="burner", finish=True)
    with pytest.raises(ValidationError):
        ColocateConfig(work="video-encoding")


def test_inject_starts_on_every_node_and_revert_is_idempotent_and_verified() -> None:
    platform = OfflinePlatform()
    driver = Colocate(platform)
    intent = plan(platform, {"node": "*"}, isolation=False)
    facts = asyncio.run(driver.inject(intent))
    assert len(facts["processes"]) == 3 and facts["isolation"].startswith("none")
    assert asyncio.run(driver.verify_reverted(intent)) != []
    assert len(asyncio.run(driver.revert(intent))["stopped"]) == 3
    assert asyncio.run(driver.revert(intent))["stopped"] == []
    assert asyncio.run(driver.verify_reverted(intent)) == []
    assert isinstance(driver, MeasuresEffect)


def test_a_failure_on_the_second_node_stops_what_the_first_started() -> None:
    platform = OfflinePlatform(fail_on="node-2")
    intent = plan(platform, {"node": "*"})
    with pytest.raises(PlatformError, match="node-2"):
        asyncio.run(Colocate(platform).inject(intent))
    assert platform.running == {} and platform.stops == 1


def test_a_platform_without_offline_abilities_says_so() -> None:
    bare = platform_without(Colocation)
    needs = Colocate(bare).needs(ColocateConfig())
    assert missing(bare, needs) == ["the bare platform cannot run co-located offline work"]
    assert missing(OfflinePlatform(), needs) == []
    intent = plan(bare, {"node": "node-1"})
    with pytest.raises(PlatformError, match="cannot run co-located offline work"):
        asyncio.run(Colocate(bare).verify_reverted(intent))


TEMPLATE = ProcessRecord("gateway-node-1", "gateway", "node-1",
                         ["/usr/bin/python3", "-m", "chaoskit.stack", "gateway"],
                         {"CHAOSKIT_DATABASE_URL": "postgresql://x/y"}, "/tmp/log")


def test_local_offline_commands_bound_the_work_and_nice_it_without_cgroups() -> None:
    burner = OfflineWork("burner", True, 30.0, cpu=2, memory=1024)
    niced = offline._argv(burner, TEMPLATE, niced=True)
    assert niced[:3] == ["nice", "-n", "19"] and niced[3:6] == ["timeout", "-k", "3"]
    assert niced[-6:] == ["--cpu", "2", "--memory", "1024", "--seconds", "30"]
    job = OfflineWork("reconciliation", False, 60.0, units=50, window=20.0)
    plain = offline._argv(job, TEMPLATE, niced=False)
    assert plain[0] == "timeout" and plain[-3:] == ["-m", "chaoskit.stack", "offline"]
    env = offline._env(job, TEMPLATE, "t1")
    assert env["CHAOSKIT_OFFLINE_WINDOW"] == "20s" and env["CHAOSKIT_TIME_SCALE"] == "1"
    assert env["CHAOSKIT_OFFLINE_UNITS"] == "50" and env[offline.TAG_ENV] == "t1"
    assert env["CHAOSKIT_DATABASE_URL"] == "postgresql://x/y"


def test_the_burner_stops_by_itself_at_its_deadline() -> None:
    started = time.monotonic()
    offline.burn(cpu=2, memory=2**20, seconds=0.3)
    took = time.monotonic() - started
    assert 0.3 <= took < 5.0  # generous upper bound: this machine's cores are shared


def test_offline_work_survives_the_journal_round_trip() -> None:
    work = OfflineWork("burner", True, 10.0, cpu=1, memory=5)
    assert OfflineWork(**asdict(work)) == work
