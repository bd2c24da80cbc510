"""The probe contract: turn a measurement source into samples; judging them is not its job."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from chaoskit.spec.system import SystemSpec


class ProbeConfig(BaseModel):
    """Type-specific fields of a probe; probes subclass it (unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class ProbeContext:
    """What a probe may know about the run: the platform, the system's declarations, and where
    the run writes things."""

    platform: Any
    run_dir: str
    acknowledged_path: str | None = None  # the load engine's record of acknowledged requests
    load_windows: Any = None  # deque of (monotonic time, load window dict) while load runs
    system: SystemSpec | None = None  # flows, promises, checks, ... (see chaoskit.spec.system)


def read_once(probe: Probe) -> float | None:
    """Take one sample outside a run (tests, notebooks, the chaoskit_probe fixture), then
    close; None when the probe had nothing to measure."""

    async def once() -> float | None:
        try:
            value = await probe.sample()
            return None if value is None else float(value)
        finally:
            await probe.close()
    return asyncio.run(once())


class Probe(Protocol):
    """Produces one number per sample. Raise ProbeError with a fix when it cannot measure."""

    type_name: ClassVar[str]
    Config: ClassVar[type[ProbeConfig]]

    def __init__(self, config: ProbeConfig, context: ProbeContext) -> None: ...

    async def sample(self) -> float | None:
        """One number; None when there was nothing to measure (not evidence either way)."""
        ...

    def unit(self) -> str:
        """What the number is in: s, ratio, count, rows, rate, amount, bytes, cores or ''
        (report.values formats it for readers)."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class Explains(Protocol):
    """Optional: what the last sample found, beyond its number (e.g. example rows)."""

    def detail(self) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class DeclarationProblem:
    """A declaration the real system refuses (a column its query lacks, a state word it does
    not map), pointed at inside the system's declarations, e.g. ("promises", "refund", "query")."""

    loc: tuple[str | int, ...]
    message: str
    hint: str


@runtime_checkable
class ProbeChecks(Protocol):
    """Optional: checks of its declarations against the real system, before anything is
    injected ([] when ready). A failure is bad input (exit 2) pointed at its file and line."""

    async def preflight(self) -> list[DeclarationProblem]: ...


UNIT_FIELD_HELP = ("how to show the values: s, ratio, count, rows, rate, amount, bytes, cores "
                   "(default: from the metric's name)")


def unit_from_name(metric: str) -> str:
    """The Prometheus naming conventions: *_seconds, *_bytes, *_ratio, *_total."""
    for suffix, unit in (("_seconds", "s"), ("_bytes", "bytes"), ("_ratio", "ratio"),
                         ("_total", "count")):
        if metric.removesuffix("_bucket").endswith(suffix):
            return unit
    return ""


# Seconds the current sample spent waiting on the system under test (its database's answer to
# a declared query, its metrics endpoint, Prometheus): whoever times samples sets it, and the
# engine journals it beside the sample's time, so a probe that slows down as the system's tables
# grow is told apart from one whose own work grows.
WAITED: ContextVar[list[float] | None] = ContextVar("chaoskit_probe_waited", default=None)


@contextmanager
def waiting_on_the_system() -> Iterator[None]:
    """Count the block's time as waiting on the system (see WAITED)."""
    began = time.monotonic()
    try:
        yield
    finally:
        waited = WAITED.get()
        if waited is not None:
            waited[0] += time.monotonic() - began
