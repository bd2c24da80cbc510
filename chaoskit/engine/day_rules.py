"""A game day's rules, pure: each step's seed, when the day stops, the day's exit code."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from chaoskit.spec.plan import GamePlan, StopRule

INTERRUPTED = (130, 143, 129)
# the day's exit code is its worst step's; worst first (interrupted: the operator stopped it)
PRECEDENCE = (*INTERRUPTED, 4, 2, 3, 1, 5, 0)
STATUS_OF_EXIT = {0: "held", 1: "failed", 2: "invalid", 3: "aborted", 4: "error",
                  5: "inconclusive", 129: "interrupted", 130: "interrupted",
                  143: "interrupted"}


@dataclass
class StepOutcome:
    """How one experiment of a step ended, as its journal says."""

    step: str
    name: str
    exit_code: int
    status: str
    failed_items: list[str] = field(default_factory=list)
    journal: str | None = None
    report: str | None = None
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""  # why it did not run, when it did not


def step_seeds(plan: GamePlan, seed: int) -> dict[str, int]:
    """One seed per experiment of the day, from the day's seed: the same day, the same runs."""
    rng = random.Random(seed)
    return {entry.name: rng.getrandbits(31) for entry in plan.experiments()}


def stop_reason(outcomes: list[StepOutcome], rule: StopRule) -> str | None:
    """Why the day stops after a step ended this way (None: it goes on)."""
    for outcome in outcomes:
        if outcome.exit_code in INTERRUPTED:
            return f"{outcome.name} was interrupted"
        if rule.error and outcome.exit_code in (2, 4):
            return f"{outcome.name} could not run ({outcome.status}, exit {outcome.exit_code})"
        if rule.aborted and outcome.exit_code == 3:
            return f"{outcome.name} was aborted by a guardrail"
        named = outcome.failed_items if rule.failed == "any" else [
            item for item in outcome.failed_items if item in rule.failed]
        if named:
            return f"{outcome.name} failed {', '.join(named)}"
    return None


def day_exit(codes: list[int]) -> int:
    """The day's exit code: its worst step's (0 when every step held, or none ran)."""
    for code in PRECEDENCE:
        if code in codes:
            return code
    return 4 if codes else 0  # an exit code chaoskit does not know: treat as an error
