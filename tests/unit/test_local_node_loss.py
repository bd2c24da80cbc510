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
from chaoskit.platforms.abilities import NodeOperations, missing
from chaoskit.testing import FakePlatform, platform_without


class RecordingPlatform(FakePlatform):
    """The fake platform recording the node operations asked of it; it kills and freezes but
    cannot isolate, and does not heal itself (recovery is read from the stack's metrics)."""

    name = "recording"
    watch_recovery = None  # no ClusterRecovery: the driver watches the stack's own metrics

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str]] = []
        self.frozen: set[str] = set()
        self.move_role("scheduler-leader", "node-2")
        self.move_role("worker-most-leases", "node-3")
        self.set_address("entry", "http://127.0.0.1:9")

    def node_loss_modes(self) -> dict[str, str | None]:
        return {"kill": None, "freeze": None}

    def lose_node(self, node: str, mode: str) -> dict[str, Any]:
        self.calls.append((mode, node))
        if mode == "freeze":
            self.frozen.add(node)
        return {"killed_pids": [101, 102]} if mode == "kill" else {}

    def restore_node(self, node: str, mode: str) -> dict[str, Any]:
        self.calls.append(({"kill": "restart", "freeze": "thaw"}[mode], node))
        self.frozen.discard(node)
        return {}

    def node_residue(self, node: str) -> list[str]:
        return [f"node {node} is frozen"] if node in self.frozen else []


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
    touched = NodeLoss(RecordingPlatform(), "run-1").touches(intent)
    assert [(t.kind, t.name) for t in touched] == [("node", "node-2")]


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


def test_a_platform_without_a_mode_or_node_operations_says_so() -> None:
    isolate = NodeLoss(RecordingPlatform()).needs(NodeLossConfig(mode="isolate"))
    assert missing(RecordingPlatform(), isolate) == [
        "the recording platform cannot isolate a node (its node-loss modes: freeze, kill)"]
    bare = platform_without(NodeOperations)
    drain = NodeLoss(bare).needs(NodeLossConfig(mode="drain"))
    assert missing(bare, drain) == ["the bare platform cannot drain a node"]
    with pytest.raises(PlatformError, match="the bare platform cannot lose nodes"):
        asyncio.run(NodeLoss(bare).inject(plan({"node": "node-1"})))


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
    platform.frozen.add("node-1")
    assert asyncio.run(driver.preflight(plan({"node": "node-1"}))) == [
        "before injecting: node node-1 is frozen"]
