"""Guardrail conditions held over time: trip once a condition has held for its `for:` time."""

from __future__ import annotations

from dataclasses import dataclass, field

from chaoskit.spec.conditions import Threshold, parse_threshold
from chaoskit.spec.models import Guardrail


@dataclass
class GuardrailWatch:
    """Feeds on samples; `observe` says whether the guardrail trips now. Pure, clock passed in."""

    guardrail: Guardrail
    condition: Threshold = field(init=False)
    held_since: float | None = None
    tripped: bool = False

    def __post_init__(self) -> None:
        self.condition = parse_threshold(self.guardrail.abort_when)

    def observe(self, now: float, value: float) -> bool:
        if not self.condition.holds(value):
            self.held_since = None
            return False
        if self.held_since is None:
            self.held_since = now
        if now - self.held_since >= self.guardrail.for_ and not self.tripped:
            self.tripped = True
            return True
        return False
