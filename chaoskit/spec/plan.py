"""`kind: GamePlan`: a game day as a file. Steps run one after another; a step may run several
experiments side by side (`together`); a `hold` asks the people watching before a step starts;
`stop_when` ends the day early. Pure pydantic.

    apiVersion: chaoskit/v1
    kind: GamePlan
    metadata: {name: rehearsal-8pm}
    parameters: {scale: {default: 1}}
    schedule: {cron: "0 19 * * 5", timezone: Asia/Shanghai, window: "Fri 18:00-23:00"}
    stop_when: {aborted: true, failed: [refunds-on-schedule]}
    steps:
      - name: triple-peak
        experiment: ../triple-peak-refunds.yaml      # relative to this file
        set: {time_scale: "${scale}"}
      - name: evening
        hold: the final-payment window opens; a node is lost in it
        together:
          - {name: loss, experiment: ../final-payment-node-loss.yaml}
          - {name: batch, experiment: ../offline-batch-at-8pm-isolated.yaml}
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from chaoskit.spec.params import ParameterSpec
from chaoskit.spec.schedule import Schedule

_NAME = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class PlanMetadata(_Strict):
    name: str = Field(pattern=_NAME, description="DNS-style name: lowercase, digits, dashes")
    description: str = ""
    owner: str = ""


class PlanExperiment(_Strict):
    """One experiment of the day, with the parameters it runs with."""

    name: str = Field(pattern=_NAME, description="the step's name in the day's report")
    experiment: str = Field(description="path of the experiment file, relative to the plan")
    set: dict[str, Any] = Field(default_factory=dict, description=(
        "its parameters (as `chaoskit run --set`), e.g. {rate: 300/s}"))


class PlanStep(_Strict):
    """A step: one experiment, or several side by side (`together`), after an optional hold."""

    name: str = Field(pattern=_NAME, description="the step's name in the day's report")
    experiment: str | None = Field(default=None, description=(
        "path of the experiment file, relative to the plan"))
    set: dict[str, Any] = Field(default_factory=dict, description="its parameters")
    together: list[PlanExperiment] = Field(default_factory=list, description=(
        "experiments that run side by side (their targets must not overlap)"))
    hold: str | None = Field(default=None, description=(
        "ask before the step starts (what the people watching must know); in a terminal a "
        "prompt shows what will be injected and where, in CI or with --yes it goes on"))

    @model_validator(mode="after")
    def _one_shape(self) -> PlanStep:
        if (self.experiment is None) == (not self.together):
            raise ValueError("give a step either `experiment:` or `together:` (a list of "
                             "experiments side by side), not both and not neither")
        if self.together and self.set:
            raise ValueError("`set:` belongs to each experiment under `together:`")
        return self

    def experiments(self) -> list[PlanExperiment]:
        """What runs in this step (the step's own name when it is a single experiment)."""
        if self.experiment is not None:
            return [PlanExperiment(name=self.name, experiment=self.experiment, set=self.set)]
        return list(self.together)


class StopRule(_Strict):
    """When the day stops before its last step (the running step is reverted first)."""

    aborted: bool = Field(default=True, description="a step aborted by a guardrail stops the day")
    failed: list[str] | Literal["any"] = Field(default_factory=list, description=(
        "item names whose failure stops the day, or `any`"))
    error: bool = Field(default=True, description=(
        "a step chaoskit could not run (exit 4) or an invalid one stops the day"))


class GamePlan(_Strict):
    api_version: Literal["chaoskit/v1"] = Field(alias="apiVersion")
    kind: Literal["GamePlan"]
    metadata: PlanMetadata
    parameters: dict[str, ParameterSpec] = Field(default_factory=dict, description=(
        "values the plan takes (`${name}` anywhere in it; `chaoskit gameday --set`)"))
    schedule: Schedule | None = None
    stop_when: StopRule = Field(default_factory=StopRule)
    steps: list[PlanStep] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> GamePlan:
        names = [e.name for step in self.steps for e in step.experiments()]
        names += [s.name for s in self.steps if s.together]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"step names must be unique in a plan: {', '.join(twice)} "
                             "appears more than once")
        return self

    def experiments(self) -> list[PlanExperiment]:
        return [e for step in self.steps for e in step.experiments()]
