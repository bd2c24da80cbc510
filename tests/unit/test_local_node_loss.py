"""Unit tests of the node-loss driver at our own seams (a platform written for the test)."""

from __future__ import annotations

import asyncio
import random
import tomllib
from pathlib import Path
from typing import Any

import pytest

from chaoskit.errors import FaultError, PlatformError
from chaoskit.faults.base import MeasuresEffect
from chaoskit.faults.node_loss import (
    IS_LEADER,
    LEADER_CHANGES,
    TAKEOVERS,
    NodeLoss,
    NodeLossConfig,
    RecoveryWatch,
    resolve_node,
)
from chaoskit.platforms.base import NodeInfo


class RecordingPlatform:
    """Node operations that only record what was asked (our own Platform seam)."""

    name = "recording"

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.frozen: set[str] = set()

    def nodes(self) -> list[NodeInfo]:
        return [NodeInfo(f"node-{i}", f"127.0.0.{i}") for i in (1, 2, 3)]

    def node_for_role(self, role: str) -> str:
        return {"scheduler-leader": "node-2", "worker-most-leases": "node-3"}.get(role, "node-1")

    def metrics_targets(self, exclude_node: str | None = None) -> dict[str, str]:
        return {}

    def entry_url(self) -> str:
        return "http://127.0.0.1:9"

    def kill_node(self, name: str) -> list[int]:
        self.calls.append(("kill", name))
        return [101, 102]

    def restart_node(self, name: str) -> list[str]:
        self.calls.append(("restart", name))
        return []

    def freeze_node(self, name: str) -> None:
        self.calls.append(("freeze", name))
        self.frozen.add(name)

    def thaw_node(self, name: str) -> None:
        self.calls.append(("thaw", name))
        self.frozen.discard(name)

    def node_residue(self, name: str) -> list[str]:
        return [f"node {name} is frozen"] if name in self.frozen else []


def plan(target: dict[str, Any], mode: str = "kill", seed: int = 1) -> dict[str, Any]:
    config = NodeLossConfig(mode=mode, recovery_timeout=0.3)  # type: ignore[arg-type]
    return NodeLoss(RecordingPlatform()).plan("f", target, config, random.Random(seed))


def test_targets_resolve_to_a_node() -> None:
    assert plan({"node": "node-3"})["node"] == "node-3"
    assert plan({"role": "scheduler-leader"})["node"] == "node-2"
    assert plan({"role": "worker-most-leases"})["node"] == "node-3"
    picks = {plan({"node": "any"}, seed=s)["node"] for s in range(20)}
    assert picks == {"node-1", "node-2", "node-3"}
    assert plan({"node": "any"}, seed=5)["node"] == plan({"node": "any"}, seed=5)["node"]


def test_intent_records_the_resolved_node_and_mode() -> None:
    intent = plan({"role": "scheduler-leader"}, mode="freeze")
    assert intent == {"fault": "f", "type": "node-loss", "mode": "freeze", "node": "node-2",
                      "target": {"role": "scheduler-leader"}, "recovery_timeout": 0.3}


@pytest.mark.parametrize("target", [{"node": "node-9"}, {"role": "janitor"}, {},
                                    {"node": "node-1", "role": "gateway"}, {"pod": "x"}])
def test_bad_targets_are_errors_with_a_hint(target: dict[str, Any]) -> None:
    with pytest.raises(FaultError) as err:
        resolve_node(RecordingPlatform(), target, random.Random(0))
    assert err.value.hint


def test_modes_are_validated() -> None:
    with pytest.raises(ValueError):
        NodeLossConfig.model_validate({"mode": "explode"})
    with pytest.raises(ValueError):
        NodeLossConfig.model_validate({"mode": "kill", "signal": 9})


def test_freeze_inject_and_revert_call_the_platform_and_audit() -> None:
    platform = RecordingPlatform()
    driver = NodeLoss(platform)
    intent = driver.plan("f", {"node": "node-1"}, NodeLossConfig(mode="freeze",
                                                                recovery_timeout=0.2),
                         random.Random(0))
    facts = asyncio.run(driver.inject(intent))
    assert facts["node"] == "node-1" and facts["mode"] == "freeze"
    assert asyncio.run(driver.verify_reverted(intent)) == ["node node-1 is frozen"]
    asyncio.run(driver.revert(intent))
    asyncio.run(driver.revert(intent))
    assert platform.calls == [("freeze", "node-1"), ("thaw", "node-1"), ("thaw", "node-1")]
    assert asyncio.run(driver.verify_reverted(intent)) == []


def test_kill_reports_the_pids_and_measures_effect() -> None:
    driver = NodeLoss(RecordingPlatform())
    assert isinstance(driver, MeasuresEffect)
    intent = plan({"node": "node-2"})
    facts = asyncio.run(driver.inject(intent))
    assert facts["killed_pids"] == [101, 102]
    effect = asyncio.run(driver.measure_effect(intent))  # nothing answers: not recovered
    assert effect["recovered"] is False and effect["recovery_s"] is None


def test_a_platform_without_node_operations_says_so() -> None:
    platform = RecordingPlatform()
    driver = NodeLoss(platform)
    intent = plan({"node": "node-1"}, mode="isolate")
    with pytest.raises(PlatformError, match="cannot isolate node"):
        asyncio.run(driver.inject(intent))


def test_recovery_needs_a_leader_the_entry_and_a_takeover_when_leases_were_held() -> None:
    before = {TAKEOVERS: 3.0, LEADER_CHANGES: 1.0, IS_LEADER: 0.0}
    watch = RecoveryWatch(started=0.0, before=before, leases_held=2)
    seen: dict[str, float] = {}
    watch._note(seen, {TAKEOVERS: 3.0, LEADER_CHANGES: 1.0, IS_LEADER: 1.0}, entry_ok=True)
    assert not watch._recovered(seen)  # leases were held and nobody took them over yet
    watch._note(seen, {TAKEOVERS: 4.0, LEADER_CHANGES: 2.0, IS_LEADER: 1.0}, entry_ok=True)
    assert watch._recovered(seen)
    facts = watch._facts(seen)
    assert facts["recovered"] and facts["leader_changed"]
    assert facts["recovery_s"] == facts["first_takeover_s"] >= facts["leader_s"]
    idle = RecoveryWatch(started=0.0, before=before, leases_held=0)
    quiet: dict[str, float] = {}
    idle._note(quiet, {TAKEOVERS: 3.0, LEADER_CHANGES: 1.0, IS_LEADER: 1.0}, entry_ok=True)
    assert idle._recovered(quiet) and idle._facts(quiet)["leader_changed"] is False


def test_node_loss_is_registered_as_an_entry_point() -> None:
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    faults = pyproject["project"]["entry-points"]["chaoskit.faults"]
    assert faults["node-loss"] == "chaoskit.faults.node_loss:NodeLoss"
    assert NodeLoss.type_name == "node-loss"


def test_preflight_names_what_would_make_inject_fail() -> None:
    platform = RecordingPlatform()
    driver = NodeLoss(platform)
    assert asyncio.run(driver.preflight(plan({"node": "node-1"}, mode="freeze"))) == []
    isolate = asyncio.run(driver.preflight(plan({"node": "node-1"}, mode="isolate")))
    assert isolate == ["the recording platform cannot isolate nodes"]
    platform.frozen.add("node-1")
    assert asyncio.run(driver.preflight(plan({"node": "node-1"}))) == [
        "before injecting: node node-1 is frozen"]
