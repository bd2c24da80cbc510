"""Every experiment we ship validates, and the set the mission needs is there."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaoskit.spec.loader import load_experiment

EXPERIMENTS = Path(__file__).parents[2] / "experiments"
SHIPPED = sorted(EXPERIMENTS.glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_each_shipped_experiment_validates_and_guards_money(path: Path) -> None:
    experiment = load_experiment(path)
    assert experiment.metadata.owner and experiment.metadata.description
    assert experiment.hypothesis, "an experiment without a hypothesis proves nothing"
    probes = {g.probe.type for g in experiment.guardrails} | {
        h.probe.type for h in experiment.hypothesis}
    assert probes & {"money", "acknowledged", "reconciliation", "schedule", "load", "metrics",
                     "prometheus"}
    assert "money" in {g.probe.type for g in experiment.guardrails}, "no money guardrail"


def test_the_experiments_the_mission_needs_are_shipped() -> None:
    names = {p.stem for p in SHIPPED}
    assert {"bank-latency-at-peak", "node-loss-final-payment-window",
            "triple-peak-refund-storm", "rolling-timezone-peaks", "offline-batch-at-8pm-isolated",
            "offline-batch-at-8pm-shared", "scale-out-under-peak",
            "k8s-node-loss-final-payment-window", "k8s-offline-batch-at-8pm"} <= names


def test_the_gate_set_is_tagged() -> None:
    gate = [p.stem for p in SHIPPED if "gate" in load_experiment(p).metadata.tags]
    assert "bank-latency-at-peak" in gate and len(gate) >= 3
