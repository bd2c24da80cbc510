"""The run's timeline in run seconds: when each fault starts and ends. Pure code."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chaoskit.spec.models import Experiment


@dataclass(frozen=True)
class PlannedFault:
    """A fault with its intent as planned, and its window on the run clock (seconds into inject).

    `target`, `config` and `seed` let the engine resolve the target again when the fault
    starts: a role ("the worker holding the most leases") means the system at that moment.
    """

    name: str
    type: str
    start: float
    end: float
    intent: dict[str, Any]
    target: dict[str, Any] = field(default_factory=dict)
    config: Any = None
    seed: int = 0
    waiting: str = ""  # why its role could not be found when planned: found when it starts

    def describe(self) -> str:
        if self.waiting:
            return (f"{self.start:7.1f}s -> {self.end:7.1f}s  {self.type:<12} {self.name}  "
                    f"role={self.target.get('role')} (found when it starts; now: {self.waiting})")
        detail = {k: v for k, v in self.intent.items() if k != "fault" and v not in (None, [], {})}
        fields = ", ".join(f"{k}={v}" for k, v in detail.items())
        return f"{self.start:7.1f}s -> {self.end:7.1f}s  {self.type:<12} {self.name}  {fields}"


def fault_window(experiment: Experiment, start: float, duration: float) -> tuple[float, float]:
    """A fault's scenario-time window mapped onto the run clock by the load's time scale."""
    scale = experiment.load.time_scale if experiment.load else 1.0
    return start / scale, (start + duration) / scale


def render(experiment: Experiment, faults: list[PlannedFault], seed: int) -> str:
    """The dry-run timeline, as a user reads it."""
    phases = experiment.phases
    inject = experiment.inject_seconds()
    lines = [f"experiment {experiment.metadata.name}  seed {seed}",
             (f"  baseline {phases.baseline:g}s, inject {inject:g}s, recover {phases.recover:g}s"
             f"  (run time ~{phases.baseline + inject + phases.recover:g}s)")]
    if experiment.load:
        load = experiment.load
        shapes = ", ".join(s.shape for s in load.profile)
        lines.append(f"  load: {load.duration:g}s scenario at time scale x{load.time_scale:g}"
                     f" -> {load.run_seconds():g}s run; shapes: {shapes}")
    lines.append("  faults (offsets from the start of inject):")
    lines += [f"    {f.describe()}" for f in sorted(faults, key=lambda f: f.start)] or ["    none"]
    lines.append("  guardrails:")
    lines += [f"    {g.name}: abort when {g.probe.type} {g.abort_when} for {g.for_:g}s"
              for g in experiment.guardrails] or ["    none"]
    return "\n".join(lines)
