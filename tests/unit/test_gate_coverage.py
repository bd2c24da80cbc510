"""The gate set exercises every promise and every money check the reference stack declares,
and provokes the two races defects hide in: client resends that overlap the first attempt,
and bank retries after the bank already executed."""

from __future__ import annotations

from pathlib import Path

from chaoskit.spec.loader import load_experiment
from chaoskit.spec.models import Experiment
from chaoskit.spec.units import parse_duration
from chaoskit.stack.config import StackConfig
from tests.fixtures.systems import reference

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
GATE = [e for e in map(load_experiment, sorted(EXPERIMENTS.glob("*.yaml")))
        if "gate" in e.metadata.tags]


def probed(key: str) -> set[str]:
    """What the gate's items and guardrails read under `key` (promise, check, ...)."""
    return {str(item.probe.options().get(key)) for e in GATE
            for item in [*e.hypothesis, *e.guardrails] if item.probe.options().get(key)}


def faults(experiment: Experiment, dependency: str) -> list[float]:
    """Latencies (s) of the experiment's latency faults on a dependency."""
    return [parse_duration((f.model_extra or {})["latency"]) for f in experiment.faults
            if f.type == "latency" and str(f.target.get("dependency") or ""
                                           ).split(":")[0] == dependency]


def test_every_declared_promise_check_and_reconciliation_is_judged_by_the_gate() -> None:
    system = reference()
    assert set(system.promises) <= probed("promise")
    assert set(system.checks) <= probed("check")
    assert set(system.reconciliations) <= probed("reconciliation")
    measures = {str(i.probe.options().get("measure")) for e in GATE for i in e.hypothesis
                if i.probe.type == "acknowledged"}
    assert {"missing", "duplicated", "misdirected"} <= measures


def test_the_gate_makes_clients_resend_while_their_first_attempt_is_in_flight() -> None:
    assert any(e.load and e.load.retries and faults(e, "postgres")
               and min(faults(e, "postgres")) > e.load.timeout for e in GATE)


def test_the_gate_makes_banks_answer_after_the_workers_gave_up() -> None:
    timeout = StackConfig.from_env({}).bank_timeout
    assert any(max(faults(e, "bank"), default=0) > timeout for e in GATE)


def test_the_gate_opens_a_final_payment_window_with_orders_waiting() -> None:
    assert sum(1 for e in GATE if e.load and "presale_order" in e.load.mix) >= 2
