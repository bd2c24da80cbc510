"""The fault-driver contract: plan an intent, inject it, revert it idempotently, prove it is gone.

A driver is stateless between calls: everything needed to revert a fault is in its *intent*
(a JSON-able dict written to the journal before the fault is applied). That is what lets
`chaoskit recover` and the watchdog revert a fault from the journal alone, in another process.
"""

from __future__ import annotations

import random
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from chaoskit.platforms.base import Platform

Intent = dict[str, Any]


class FaultConfig(BaseModel):
    """Type-specific magnitude fields of a fault; drivers subclass it (unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid")


class FaultDriver(Protocol):
    """One fault kind, keyed in the registry by its `type:` string."""

    type_name: ClassVar[str]
    Config: ClassVar[type[FaultConfig]]

    def __init__(self, platform: Platform) -> None: ...

    def plan(self, name: str, target: dict[str, Any], config: FaultConfig,
             rng: random.Random) -> Intent:
        """Resolve the target (seeded choices included) into an intent; no side effects."""
        ...

    async def inject(self, intent: Intent) -> dict[str, Any]:
        """Apply the fault; return facts worth journaling (e.g. measured activation latency)."""
        ...

    async def revert(self, intent: Intent) -> dict[str, Any]:
        """Undo the fault. Idempotent: reverting twice, or a fault never applied, is fine."""
        ...

    async def verify_reverted(self, intent: Intent) -> list[str]:
        """Residue audit: describe what is still in place (empty list means clean)."""
        ...


@runtime_checkable
class MeasuresEffect(Protocol):
    """Optional ability: measure what the fault actually does (e.g. observed added latency)."""

    async def measure_effect(self, intent: Intent) -> dict[str, Any]: ...


@runtime_checkable
class PreflightChecks(Protocol):
    """Optional ability: check the target is reachable and permitted before anything runs."""

    async def preflight(self, intent: Intent) -> list[str]: ...
