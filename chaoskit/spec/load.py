"""The `load:` section of an experiment: an open-model traffic profile made of additive shapes.

Times and widths are scenario time (compressed by `time_scale`); rates are requests per run
second, i.e. what actually hits the system. Shapes add up: the rate at any moment is the sum of
every shape's contribution, so a triple peak is constant + peaks + spikes written side by side.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from chaoskit.spec.units import Duration, PositiveDuration, Rate, Ratio, TimeScale


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ConstantShape(_Shape):
    """A steady rate for the whole run."""

    shape: Literal["constant"]
    rate: Rate


class RampShape(_Shape):
    """Linear from `from` to `to` between `start` and `end`; holds `from` before, `to` after."""

    shape: Literal["ramp"]
    from_: Rate = Field(alias="from")
    to: Rate
    start: Duration
    end: Duration

    @model_validator(mode="after")
    def _ordered(self) -> RampShape:
        if self.end <= self.start:
            raise ValueError("ramp end must come after its start; swap them or widen the ramp")
        return self


class StepShape(_Shape):
    """Adds `rate` from `at` until the end of the run."""

    shape: Literal["step"]
    at: Duration
    rate: Rate


class SpikeShape(_Shape):
    """A flash spike: jumps by `rate` at `at` and holds it for `hold`, then drops back."""

    shape: Literal["spike"]
    at: Duration
    rate: Rate
    hold: PositiveDuration


class PeakShape(_Shape):
    """A bell around `at` reaching `rate`; `width` is its full width at half height."""

    shape: Literal["peak"]
    at: Duration
    rate: Rate
    width: PositiveDuration


class RollingPeaksShape(_Shape):
    """The same peak in `zones` time zones, each `offset` later than the one before."""

    shape: Literal["rolling-peaks"]
    at: Duration
    rate: Rate
    width: PositiveDuration
    zones: int = Field(ge=1, le=48)
    offset: PositiveDuration


class SurprisePeaksShape(_Shape):
    """`count` peaks placed anywhere in the run by the seed (promotions nobody announced)."""

    shape: Literal["surprise-peaks"]
    count: int = Field(ge=1, le=1000)
    rate: Rate
    width: PositiveDuration


class TriplePeakShape(_Shape):
    """Preset: offline 8 PM peak + platform promotions + live-stream flash spikes, about `rate`."""

    shape: Literal["triple-peak"]
    at: Duration
    rate: Rate


Shape = Annotated[
    ConstantShape | RampShape | StepShape | SpikeShape | PeakShape | RollingPeaksShape
    | SurprisePeaksShape | TriplePeakShape,
    Field(discriminator="shape"),
]


class TlsSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    verify: bool = True
    ca_file: str | None = Field(default=None, description="a PEM file of CAs to trust")


class LoadCaps(BaseModel):
    """Safety caps on what an experiment may send. Above them a run is refused before anything
    starts; raising them is an explicit, reviewable line in the experiment."""

    model_config = ConfigDict(extra="forbid")
    rate: Rate = Field(default=20_000.0, description="highest arrival rate (requests per run "
                       "second) the profile may reach; default 20000/s")
    duration: PositiveDuration = Field(default=4 * 3600.0, description=(
        "longest load in run time (wall clock); default 4h"))


class LoadSpec(BaseModel):
    """What traffic to drive, how fast, in which mix, and with how many worker processes."""

    model_config = ConfigDict(extra="forbid")

    target: str = Field(default="gateway", description=(
        "where requests go: the platform's entry (default), or a base URL (http or https)"))
    tls: TlsSpec = Field(default_factory=lambda: TlsSpec(), description=(
        "for https targets: verify with the system's CA bundle (default), a CA file, or not "
        "at all (a loud warning)"))
    duration: PositiveDuration
    time_scale: TimeScale = 1.0
    mix: dict[str, Ratio] = Field(default_factory=dict, description=(
        "share of each flow the system declares (default: every declared flow, equally)"))
    profile: list[Shape] = Field(min_length=1)
    workers: int | Literal["auto"] = "auto"
    timeout: PositiveDuration = 2.0
    max_in_flight: int = Field(default=10_000, ge=1, le=1_000_000)
    late_after: PositiveDuration = Field(default=0.010, description=(
        "a request sent this long after its intended time counts as late (in `late`)"))
    behind_after: PositiveDuration = Field(default=0.1, description=(
        "an arrival the load engine itself reaches this late counts as its own shortfall "
        "(it could not keep its schedule: CPU saturated), judged by `shortfall_tolerance`"))
    retries: int = Field(default=0, ge=0, le=5, description=(
        "how often a client resends a request that timed out, lost its connection, or got "
        "409/5xx, with the same Idempotency-Key, as payment SDKs do"))
    retry_after: PositiveDuration = Field(default=0.2, description="wait before a resend")
    caps: LoadCaps = Field(default_factory=LoadCaps, description=(
        "safety caps on rate and run length; raise them explicitly to go beyond"))
    shortfall_tolerance: Ratio = Field(default=0.01, description=(
        "share of arrivals the load engine may fail to send on time (CPU saturated, in-flight "
        "cap hit) before the run is inconclusive: it did not test what it declared"))
    pods: int | None = Field(default=None, ge=1, le=1000, description=(
        "on Kubernetes: send the inject phase's load from an Indexed Job of this many pods, "
        "each taking its share of the one arrival schedule"))

    @field_validator("mix")
    @classmethod
    def _mix(cls, value: dict[str, float]) -> dict[str, float]:
        if not value:
            return value
        total = sum(value.values())
        if abs(total - 1.0) > 0.001:
            raise ValueError(f"mix shares add up to {total:.1%}; make them sum to 100%")
        return value

    @field_validator("workers")
    @classmethod
    def _workers(cls, value: int | str) -> int | str:
        if isinstance(value, int) and not 1 <= value <= 64:
            raise ValueError("workers must be between 1 and 64, or 'auto'")
        return value

    def run_seconds(self) -> float:
        """How long the load runs on the wall clock: scenario duration over the time scale."""
        return self.duration / self.time_scale

