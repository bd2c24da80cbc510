"""Mutation testing, the fast part (`make mutants` runs every mutant): the healthy stack holds
every shipped gate experiment, and realistic defects planted in it (chaoskit/stack/defects.py)
each fail the gate experiment that should catch them, naming what went wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.lab import RunningLab, require_lab_tools, start_lab, stop_lab
from tests.mutants.runner import (
    EXPERIMENTS,
    Verdict,
    describe,
    examples_text,
    gate_experiments,
    run_against,
)

pytestmark = [pytest.mark.integration, pytest.mark.root]
GATE = gate_experiments()

# one mutant per new gate experiment and a class of defect each: idempotency under resends,
# money moving the wrong way, a promise about windows, a retry to a bank that had executed
FAST = [
    ("idempotency-check-then-insert", "resent-requests-slow-db", "nothing-applied-twice"),
    ("refund-legs-reversed", "final-payment-window-at-8pm", "money-moves-the-right-way"),
    ("windows-open-late", "final-payment-window-at-8pm", "windows-open-on-time"),
    ("fresh-bank-key", "bank-answers-after-timeout", "nothing-executed-twice-at-the-bank"),
]


# The healthy stack runs the whole gate set as shipped in `make test` (issue 9: the shipped
# experiments are run, not only validated); one mutant there, the other three are marked long
# (`make test-long`), and `make mutants` runs every mutant against the gate set
SHORT_MUTANTS = {"fresh-bank-key"}


def tiered(values: list, short: set[str], key) -> list:  # type: ignore[type-arg]
    """Each value as a pytest param, marked long unless its key is in `short`."""
    return [pytest.param(*(v if isinstance(v, tuple) else (v,)), id=key(v),
                         marks=() if key(v) in short else pytest.mark.long) for v in values]


def explained(verdict: Verdict) -> str:
    return "\n".join([describe(verdict), *examples_text(verdict, limit=5)])


def test_the_gate_set_has_the_experiments_the_mutants_need() -> None:
    stems = {p.stem for p in GATE}
    assert {experiment for _, experiment, _ in FAST} <= stems


@pytest.mark.parametrize("path", GATE, ids=[p.stem for p in GATE])
def test_the_healthy_stack_holds_every_gate_experiment(lab: RunningLab, tmp_path: Path,
                                                       path: Path) -> None:
    verdict = run_against(path, lab.dir, tmp_path)
    assert verdict.held, explained(verdict)


@pytest.mark.parametrize("mutant, experiment, item",
                         tiered(FAST, SHORT_MUTANTS, lambda m: m[0]))
def test_a_mutant_fails_the_gate_experiment_that_should_catch_it(
        tmp_path: Path, mutant: str, experiment: str, item: str) -> None:
    require_lab_tools()
    lab = start_lab(tmp_path, CHAOSKIT_BROKEN=mutant)
    try:
        verdict = run_against(EXPERIMENTS / f"{experiment}.yaml", lab.dir, tmp_path)
    finally:
        stop_lab(lab)
    assert verdict.kills, explained(verdict)
    assert item in {name.split(" [")[0] for name in verdict.failing}, explained(verdict)
