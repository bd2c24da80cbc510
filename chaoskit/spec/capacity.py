"""`capacity:`: how `chaoskit run FILE --find-capacity` searches the highest arrival rate at
which the hypothesis still holds with the faults active. Pure pydantic, no I/O.

    capacity:
      from: 50/s            # the lowest rate tried
      to: 1600/s            # the highest: the search never asks for more (<= load.caps.rate)
      resolution: 25/s      # done when the highest rate that held and the lowest that failed
                            # are this close (search: steps: the rise from one step to the next)
      step: 30s             # how long each step holds its rate with every fault active: long
                            # enough to judge the hypothesis (each item sampled >= 3 times)
      cooldown: 10s         # idle between steps: no load, no fault
      required_rate: 400/s  # optional CI gate: exit 1 when the capacity is below it
      compare_without_faults: true   # the same search without the faults: what they cost

Each step is one run of the experiment (its own journal, lease and watchdog): the baseline
phase at the declared opening rate (the steady baseline between steps, when phases.baseline
asks for one), then the load held at the step's rate for `step` with every fault applied
from its start to its end, then the recover phase.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from chaoskit.spec.units import Duration, PositiveDuration, Rate, format_duration

if TYPE_CHECKING:
    from chaoskit.spec.models import Experiment

MIN_SAMPLES = 3  # samples of each item a step must allow for, in its inject phase
Loc = tuple[str | int, ...]


class CapacitySpec(BaseModel):
    """Search the highest arrival rate at which the hypothesis holds with the faults active."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: Rate = Field(alias="from", gt=0, description=(
        "the lowest arrival rate tried, e.g. 50/s"))
    to: Rate = Field(gt=0, description=(
        "the highest arrival rate tried: the search never asks for more (at most "
        "load.caps.rate)"))
    resolution: Rate = Field(gt=0, description=(
        "bisect: done when the highest rate that held and the lowest that failed are this "
        "close; steps: the rise from one step to the next"))
    step: PositiveDuration = Field(description=(
        "how long each step holds its rate with every fault active (real time): long enough "
        "to judge the hypothesis, at least 3 samples of each item judged `during`"))
    search: Literal["bisect", "steps"] = Field(default="bisect", description=(
        "bisect: the rate grows by `growth` until a step fails, then the gap between the "
        "highest rate that held and the lowest that failed is halved down to `resolution` "
        "(few steps); steps: from `from` up by `resolution` until the first failure (never "
        "more than one step above the capacity)"))
    growth: float = Field(default=2.0, gt=1.0, le=100.0, description=(
        "bisect: the factor the rate grows by while every step holds"))
    cooldown: Duration = Field(default=0.0, description=(
        "idle time between steps (no load, no fault), before the next step's baseline"))
    required_rate: Rate | None = Field(default=None, description=(
        "a CI gate: the rate the system must take with the faults active; tried first; exit "
        "1 when the hypothesis fails there"))
    compare_without_faults: bool = Field(default=False, description=(
        "also search without the faults (same seed and range): the capacity they cost, as "
        "a rate and a ratio"))

    @model_validator(mode="after")
    def _range(self) -> CapacitySpec:
        if self.to <= self.from_:
            raise ValueError(f"capacity: `to` ({self.to:g}/s) must be above `from` "
                             f"({self.from_:g}/s); widen the range")
        if self.resolution > self.to - self.from_:
            raise ValueError(f"capacity: resolution {self.resolution:g}/s is wider than the "
                             f"range {self.from_:g}-{self.to:g}/s; make it smaller")
        if self.required_rate is not None and not self.from_ <= self.required_rate <= self.to:
            raise ValueError(f"capacity: required_rate {self.required_rate:g}/s is outside "
                             f"{self.from_:g}-{self.to:g}/s; put it inside the range")
        return self


def capacity_problems(experiment: Experiment) -> list[tuple[Loc, str, str]]:
    """(where, what is wrong, what to do) of a capacity section that cannot answer its
    question with this experiment: no load or hypothesis, a range over the caps, steps too
    short to sample every item."""
    capacity = experiment.capacity
    if capacity is None:
        return []
    problems: list[tuple[Loc, str, str]] = []
    if not experiment.hypothesis:
        problems.append((("capacity",), "a capacity search needs a hypothesis: the capacity "
                         "is the highest rate at which it holds", "add hypothesis: items"))
    load = experiment.load
    if load is None:
        problems.append((("capacity",), "a capacity search needs a load: section (the "
                         "rate it raises)", "add load: with the mix and timeout; its profile "
                         "is replaced by each step's rate"))
        return problems
    if capacity.to > load.caps.rate:
        problems.append((("capacity", "to"), f"capacity.to ({capacity.to:g}/s) is above "
                         f"load.caps.rate ({load.caps.rate:g}/s)",
                         "lower it, or raise load.caps.rate explicitly"))
    if capacity.step > load.caps.duration:
        problems.append((("capacity", "step"), f"a step of {format_duration(capacity.step)} "
                         f"is longer than load.caps.duration", "shorten the step"))
    if capacity.compare_without_faults and not experiment.faults:
        problems.append((("capacity", "compare_without_faults"), "there are no faults to "
                         "compare without", "declare faults, or drop compare_without_faults"))
    for i, item in enumerate(experiment.hypothesis):
        needed = MIN_SAMPLES * item.probe.interval
        if "during" in item.phases and capacity.step < needed:
            problems.append((("capacity", "step"), f"a step of "
                             f"{format_duration(capacity.step)} samples "
                             f"'{item.name}' (every {format_duration(item.probe.interval)}) "
                             f"fewer than {MIN_SAMPLES} times: too short to judge it",
                             f"make the step at least {format_duration(needed)}, or sample "
                             f"hypothesis[{i}] more often"))
    return problems
