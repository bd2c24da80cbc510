"""`schedule:` of an experiment or a game-day plan: when it runs by itself (cron, in a time
zone), the window it may run in, the freeze it respects. Pure: parsing is `chaoskit.schedules`."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from chaoskit.schedules import parse_cron, parse_window, zone


class Schedule(BaseModel):
    """When a game day runs. `chaoskit run` and `chaoskit gameday` refuse to start outside
    `window` or inside `freeze` (unless `approved`); `chaoskit schedule apply` makes `cron` a
    Kubernetes CronJob."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    cron: str | None = Field(default=None, description=(
        'five-field cron in `timezone`, e.g. "0 20 * * 1-5" (20:00 on weekdays)'))
    timezone: str = Field(default="UTC", description="IANA zone, e.g. Asia/Shanghai")
    window: str | None = Field(default=None, description=(
        'when a run may start, e.g. "Mon-Fri 09:00-18:00; not 2026-11-10..2026-11-12"'))
    freeze: str | None = Field(default=None, description=(
        'a freeze: only approved experiments run in it, e.g. "2026-11-04..2026-11-12" '
        "(also $CHAOSKIT_FREEZE, for a freeze every experiment respects)"))
    approved: bool = Field(default=False, description=(
        "approved to run inside a freeze (never outside its own window)"))

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        zone(value)
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            parse_cron(value)
        return value

    @field_validator("window", "freeze")
    @classmethod
    def _window(cls, value: str | None) -> str | None:
        if value is not None:
            parse_window(value)
        return value
