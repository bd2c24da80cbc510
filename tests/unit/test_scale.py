"""Unit tests of the scale driver at our own seams, and of node naming in the local lab."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from pydantic import ValidationError

from chaoskit.errors import FaultError, PlatformError
from chaoskit.faults.scale import Scale, ScaleConfig
from chaoskit.lab import capacity
from chaoskit.lab.state import LabState, NodeRecord
from chaoskit.platforms.abilities import CapacityRetire, NodeInfo, missing
from chaoskit.testing import FakePlatform, platform_without


class ElasticPlatform(FakePlatform):
    """The fake platform with nodes and an entry held in memory; can fail on one name."""

    name = "memory"

    def __init__(self, fail_on: str | None = None) -> None:
        super().__init__()
        self.names = ["node-1", "node-2", "node-3"]
        self.states = {n: "UP" for n in self.names}
        self.retired: set[str] = set()
        self.fail_on = fail_on
        self.drained: list[str] = []
        self.set_address("entry", "http://127.0.0.1:9")  # nothing listens there

    def nodes(self) -> list[NodeInfo]:
        return [NodeInfo(n, "127.0.0.1") for n in self.names]

    def next_node_names(self, count: int) -> list[str]:
        top = max(int(n.rsplit("-", 1)[1]) for n in self.names)
        return [f"node-{top + i}" for i in range(1, count + 1)]

    def add_node(self, name: str | None = None) -> str:
        assert name is not None
        self.names.append(name)  # the platform records first, as the local lab does
        if name == self.fail_on:
            raise PlatformError(f"{name} did not start", hint="test")
        self.states[name] = "UP"
        return name

    def drain_gateway(self, name: str, timeout: float) -> float:
        self.drained.append(name)
        self.states[name] = "MAINT"
        return 0.0

    def remove_node(self, name: str) -> None:
        self.names.remove(name)
        self.states.pop(name, None)

    def retire_node(self, name: str, drain: float) -> list[str]:
        self.retired.add(name)
        self.states[name] = "MAINT"
        return [f"gateway-{name}"]

    def return_node(self, name: str) -> list[str]:
        was = name in self.retired
        self.retired.discard(name)
        self.states[name] = "UP"
        return [f"gateway-{name}"] if was else []

    def entry_states(self) -> dict[str, str]:
        return dict(self.states)

    def departed_residue(self, name: str) -> list[str]:
        return [f"{name} still here"] if name in self.names else []

    def node_residue(self, node: str) -> list[str]:
        return [f"{node} stopped"] if node in self.retired else []


def plan(platform: Any, nodes: int, target: dict[str, Any] | None = None) -> dict[str, Any]:
    return Scale(platform).plan("elastic", target or {}, ScaleConfig(nodes=nodes),
                                random.Random(1))


def test_plan_names_new_nodes_ahead_and_picks_leaving_ones() -> None:
    platform = ElasticPlatform()
    assert plan(platform, 2)["nodes"] == ["node-4", "node-5"]
    assert plan(platform, -1)["nodes"] == ["node-3"]
    assert plan(platform, -2)["nodes"] == ["node-2", "node-3"]
    assert plan(platform, -1, {"node": "node-1"})["nodes"] == ["node-1"]
    with pytest.raises(FaultError, match="leave no node"):
        plan(platform, -3)
    with pytest.raises(ValidationError):
        ScaleConfig(nodes=0)


def test_scale_out_then_back_drains_before_removing_and_is_idempotent() -> None:
    platform = ElasticPlatform()
    driver = Scale(platform)
    intent = plan(platform, 1)
    assert asyncio.run(driver.inject(intent))["added"] == ["node-4"]
    assert platform.states["node-4"] == "UP"
    assert asyncio.run(driver.verify_reverted(intent)) == ["node-4 still here"]
    assert asyncio.run(driver.revert(intent))["removed"] == ["node-4"]
    assert platform.drained == ["node-4"]
    assert asyncio.run(driver.revert(intent))["removed"] == []
    assert asyncio.run(driver.verify_reverted(intent)) == []


def test_scale_in_then_back_restores_the_node_into_rotation() -> None:
    platform = ElasticPlatform()
    driver = Scale(platform)
    intent = plan(platform, -1)
    asyncio.run(driver.inject(intent))
    assert platform.states["node-3"] == "MAINT"
    problems = asyncio.run(driver.verify_reverted(intent))
    assert "node-3 stopped" in problems and any("not back in rotation" in p for p in problems)
    asyncio.run(driver.revert(intent))
    asyncio.run(driver.revert(intent))
    assert asyncio.run(driver.verify_reverted(intent)) == []


def test_a_node_that_fails_to_join_takes_the_others_out_again() -> None:
    platform = ElasticPlatform(fail_on="node-5")
    intent = plan(platform, 2)
    with pytest.raises(PlatformError, match="node-5"):
        asyncio.run(Scale(platform).inject(intent))
    assert platform.names == ["node-1", "node-2", "node-3"]


def test_measure_effect_reports_the_entry_even_when_nothing_answers() -> None:
    effect = asyncio.run(Scale(ElasticPlatform()).measure_effect(plan(ElasticPlatform(), 1)))
    assert effect["served_by"] == {} and effect["entry_states"]["node-1"] == "UP"


def test_local_lab_names_the_next_node_after_the_highest_index() -> None:
    lab = LabState("t", "/tmp/t", "abcde", "process",
                   nodes=[NodeRecord("node-1", "127.0.0.1"), NodeRecord("node-4", "127.0.0.1")])
    assert capacity.next_node_names(lab, 2) == ["node-5", "node-6"]
    with pytest.raises(PlatformError, match="taken"):
        capacity.add_node(lab, "node-4")
    with pytest.raises(PlatformError, match="node-N"):
        capacity.add_node(lab, "edge")


def test_a_platform_that_cannot_take_capacity_out_says_so() -> None:
    bare = platform_without(CapacityRetire)
    assert missing(bare, Scale(bare).needs(ScaleConfig(nodes=-1))) == [
        "the bare platform cannot take capacity out (scale -N)"]
    assert missing(bare, Scale(bare).needs(ScaleConfig(nodes=1))) == []
