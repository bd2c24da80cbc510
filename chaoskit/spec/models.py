"""The chaoskit/v1 experiment model: pure pydantic, no I/O."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from chaoskit.spec.capacity import CapacitySpec
from chaoskit.spec.conditions import parse_expectation, parse_threshold
from chaoskit.spec.load import LoadSpec
from chaoskit.spec.params import ParameterSpec
from chaoskit.spec.schedule import Schedule
from chaoskit.spec.system import SystemSpec
from chaoskit.spec.units import (
    Duration,
    PositiveDuration,
)

API_VERSION = "chaoskit/v1"
PHASES: tuple[Literal["before", "during", "after"], ...] = ("before", "during", "after")
_NAME = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Metadata(Strict):
    name: str = Field(pattern=_NAME, description="DNS-style name: lowercase, digits, dashes")
    description: str = ""
    owner: str = ""
    tags: list[str] = Field(default_factory=list)


class ProxyDecl(Strict):
    """A Toxiproxy proxy the experiment needs; created if missing, removed only if we made it."""

    name: str
    listen: str
    upstream: str


def _any_as_list(value: Any) -> Any:
    return ["any"] if value == "any" else value


ScopeList = Annotated[list[str], BeforeValidator(_any_as_list)]
_SCOPE_HELP = "names or patterns (node-*), or `any` for everything"


class Scope(Strict):
    """The blast radius: nothing outside it may be touched.

    Faults that touch nodes (node-loss, colocate, scale, ...) need `nodes` (a list, or `any`):
    an experiment never touches every node by leaving the scope out. Load goes only to
    loopback, to addresses the platform created itself, and to `hosts`.
    """

    nodes: ScopeList = Field(default_factory=list, description=_SCOPE_HELP)
    proxies: ScopeList = Field(default_factory=list, description=_SCOPE_HELP)
    namespaces: ScopeList = Field(default_factory=list, description=_SCOPE_HELP)
    selectors: dict[str, str] = Field(default_factory=dict)
    hosts: ScopeList = Field(default_factory=list, description=(
        "hosts or CIDRs load may be sent to besides loopback and the platform's own "
        "addresses (e.g. staging.example.com)"))


class Target(BaseModel):
    """Where the experiment runs. `platform` picks the platform; the other keys not listed here
    are that platform's own fields (e.g. `lab:` for local, `namespace:` for kubernetes)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    platform: str = Field(default="local", description="local, kubernetes, containers, "
                          "processes, ... (installed platforms)")
    toxiproxy: str | None = Field(default=None, description="Toxiproxy API URL (not ours)")
    proxies: list[ProxyDecl] = Field(default_factory=list)
    entry: str | None = Field(default=None, description="base URL load is sent to")
    database: str | None = Field(default=None, description="the system's database URL")
    scope: Scope = Field(default_factory=Scope)

    def options(self) -> dict[str, Any]:
        """The platform's own fields, checked by its `Config`."""
        return dict(self.model_extra or {})


class ProbeRef(BaseModel):
    """`type:` picks the probe; the other keys are that probe's own fields."""

    model_config = ConfigDict(extra="allow")
    type: str
    interval: PositiveDuration = Field(default=1.0, description="sampling period (real time)")

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


def check_condition(text: str) -> str:
    """Both sides of a comparison must parse (the grammar lives in spec.conditions)."""
    _, right = parse_expectation(text)
    try:
        parse_threshold(text)
    except ValueError:
        raise ValueError(f"'{right}' in '{text}' is not a number, duration, percentage, rate "
                         "or baseline; write e.g. '300ms', '99.9%', '5' or 'baseline * 1.5'"
                         ) from None
    return text


class Expectation(Strict):
    name: str = Field(pattern=_NAME)
    probe: ProbeRef
    expect: str = Field(description="comparison: '<= 300ms', '>= 99.9%', '<= baseline * 1.5'")
    aggregate: Literal["every", "last", "mean", "max", "min", "p50", "p90", "p99"] = "every"
    phases: list[Literal["before", "during", "after"]] = Field(
        default_factory=lambda: list(PHASES), min_length=1)
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0,
                              description="for baseline comparisons: statistical confidence")
    no_evidence: Literal["inconclusive", "held", "failed"] = Field(
        default="inconclusive", description=(
            "the verdict of a phase in which the probe had nothing to measure (no flow fell "
            "due, no request was sent): inconclusive fails a gate unless this says otherwise"))

    @field_validator("expect")
    @classmethod
    def _expect_parses(cls, value: str) -> str:
        return check_condition(value)


class Guardrail(Strict):
    name: str = Field(pattern=_NAME)
    probe: ProbeRef
    abort_when: str = Field(description="condition that aborts: '> 5', '>= 1%'")
    for_: Duration = Field(default=0.0, alias="for",
                           description="how long the condition must hold before aborting")
    unreadable_limit: int = Field(default=3, ge=0, description=(
        "consecutive samples the probe could not read that abort the run (0: never); a "
        "guardrail that cannot see must not let the run go on blind"))

    @field_validator("abort_when")
    @classmethod
    def _condition_parses(cls, value: str) -> str:
        return check_condition(value)


class FaultSpec(BaseModel):
    """Common fault fields; the rest are the driver's magnitude fields, checked by its Config."""

    model_config = ConfigDict(extra="allow")
    name: str = Field(pattern=_NAME)
    type: str
    target: dict[str, Any] = Field(default_factory=dict)
    start: Duration = 0.0
    duration: PositiveDuration

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class Phases(Strict):
    """How long the steady-state phases last (real time)."""

    baseline: Duration = 5.0
    recover: Duration = 5.0


class Experiment(Strict):
    api_version: Literal["chaoskit/v1"] = Field(alias="apiVersion")
    kind: Literal["Experiment"]
    metadata: Metadata
    parameters: dict[str, ParameterSpec] = Field(default_factory=dict, description=(
        "values the experiment takes (`${name}` anywhere; `chaoskit run --set name=value`)"))
    system: SystemSpec | None = Field(default=None, description=(
        "the system under test: a path to a `kind: System` file (relative to this file), or "
        "its declarations written here (flows, promises, checks, roles, ...)"))
    target: Target = Field(default_factory=Target)
    hypothesis: list[Expectation] = Field(default_factory=list)
    load: LoadSpec | None = None
    faults: list[FaultSpec] = Field(default_factory=list)
    guardrails: list[Guardrail] = Field(default_factory=list)
    phases: Phases = Field(default_factory=Phases)
    schedule: Schedule | None = None
    capacity: CapacitySpec | None = Field(default=None, description=(
        "how `chaoskit run --find-capacity` searches the highest arrival rate at which the "
        "hypothesis holds with the faults active"))
    _system_file: str | None = PrivateAttr(default=None)  # the `kind: System` file it includes

    def system_source(self, source: str) -> tuple[str, tuple[str | int, ...]]:
        """Where the system's declarations are written: the included file (loc inside it is
        as declared) or this experiment's own file (under `system:`)."""
        return (self._system_file, ()) if self._system_file else (source, ("system",))

    def inject_seconds(self) -> float:
        """Length of the inject phase in run seconds: the load, or the last fault's end."""
        scale = self.load.time_scale if self.load else 1.0
        fault_end = max((f.start + f.duration for f in self.faults), default=0.0)
        load_end = self.load.duration if self.load else 0.0
        return max(load_end, fault_end) / scale

    @model_validator(mode="after")
    def _names_unique(self) -> Experiment:
        for group in ("hypothesis", "faults", "guardrails"):
            seen: set[str] = set()
            for item in getattr(self, group):
                if item.name in seen:
                    raise ValueError(f"{group}: the name '{item.name}' is used twice")
                seen.add(item.name)
        return self


class SystemFile(SystemSpec):
    """A `kind: System` file: a system's declarations that many experiments include."""

    api_version: Literal["chaoskit/v1"] = Field(alias="apiVersion")
    kind: Literal["System"]
    metadata: Metadata
    parameters: dict[str, ParameterSpec] = Field(default_factory=dict)

    def declarations(self) -> SystemSpec:
        return SystemSpec.model_validate(self.model_dump(  # json: durations as "10s" again
            mode="json", by_alias=True, exclude={"api_version", "kind", "metadata",
                                                 "parameters"}))
