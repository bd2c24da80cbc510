"""One step of a capacity search, as an experiment: `chaoskit run FILE --at-rate RATE`.

The load is held at RATE for the step (capacity.step; without a capacity section, the load's
own duration) and every fault is applied from the step's start to its end: the declared
profile and fault times are replaced, everything else (mix, flows, timeout, retries, caps,
hypothesis, guardrails, phases) is the experiment's. Baseline and recover keep the declared
profile's opening rate: the system under its normal traffic, before and after the step.
`--without-faults` drops the faults (the comparison search, or a control run). Pure.
"""

from __future__ import annotations

from chaoskit.errors import Problem, SpecError
from chaoskit.load.shapes import rate_at
from chaoskit.spec.load import ConstantShape
from chaoskit.spec.models import Experiment
from chaoskit.spec.units import format_duration


def step_seconds(experiment: Experiment) -> float:
    """How long a step holds its rate (run seconds)."""
    if experiment.capacity is not None:
        return experiment.capacity.step
    assert experiment.load is not None
    return experiment.load.run_seconds()


def opening_rate(experiment: Experiment, seed: int) -> float:
    """The declared profile's rate at its start: what baseline and recover send."""
    assert experiment.load is not None
    return rate_at(experiment.load, 0.0, seed)


def at_rate(experiment: Experiment, rate: float, source: str) -> Experiment:
    """The experiment with its load held at `rate` for one step, every fault active
    throughout."""
    load = experiment.load
    if load is None:
        raise SpecError([Problem(source, 1, 1, "--at-rate needs a load: section (the rate "
                                 "it holds)", "add load: to the experiment")])
    scenario = step_seconds(experiment) * load.time_scale
    held = load.model_copy(update={
        "profile": [ConstantShape(shape="constant", rate=rate)], "duration": scenario})
    faults = [f.model_copy(update={"start": 0.0, "duration": scenario})
              for f in experiment.faults]
    return experiment.model_copy(update={"load": held, "faults": faults})


def without_faults(experiment: Experiment) -> Experiment:
    return experiment.model_copy(update={"faults": []})


def step_note(rate: float, seconds: float, faults: int, steady: float) -> str:
    """What the step changed of the experiment, for its journal header and report."""
    what = (f"every fault ({faults}) applied from its start to its end" if faults
            else "no fault")
    return (f"capacity step: the load held at {rate:g}/s for {format_duration(seconds)} with "
            f"{what}; the declared profile and fault times are replaced; baseline and recover "
            f"at the declared opening rate ({steady:g}/s)")
