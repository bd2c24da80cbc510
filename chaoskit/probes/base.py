"""The probe contract: turn a measurement source into samples; judging them is not its job."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict


class ProbeConfig(BaseModel):
    """Type-specific fields of a probe; probes subclass it (unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class ProbeContext:
    """What a probe may know about the run: the platform and where the run writes things."""

    platform: Any
    run_dir: str
    acknowledged_path: str | None = None  # the load engine's record of acknowledged requests
    load_windows: Any = None  # deque of (monotonic time, load window dict) while load runs


def read_once(probe: Probe) -> float:
    """Take one sample outside a run (tests, notebooks, the chaoskit_probe fixture), then close."""

    async def once() -> float:
        try:
            return float(await probe.sample())
        finally:
            await probe.close()
    return asyncio.run(once())


class Probe(Protocol):
    """Produces one number per sample. Raise ProbeError with a fix when it cannot measure."""

    type_name: ClassVar[str]
    Config: ClassVar[type[ProbeConfig]]

    def __init__(self, config: ProbeConfig, context: ProbeContext) -> None: ...

    async def sample(self) -> float: ...

    async def close(self) -> None: ...
