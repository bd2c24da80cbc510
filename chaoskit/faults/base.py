"""The fault-driver contract: plan an intent, inject it, revert it idempotently, prove it is gone.

A driver is stateless between calls: everything needed to revert a fault is in its *intent*
(a JSON-able dict written to the journal before the fault is applied). That is what lets
`chaoskit recover` and the watchdog revert a fault from the journal alone, in another process.

A driver is built with its platform and the id of the run that owns it; everything it leaves on
a system is named or labelled with that owner, so two runs never undo each other's faults. It
declares the platform abilities it needs (`needs`) and what it touches (`touches`): the engine
checks both in preflight, against the platform and against the experiment's scope.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from chaoskit.journal import Intent
from chaoskit.platforms.abilities import Need, Platform

__all__ = ["FaultConfig", "FaultDriver", "Intent", "MeasuresEffect", "PreflightChecks", "Touch",
           "owner_tag"]


class FaultConfig(BaseModel):
    """Type-specific magnitude fields of a fault; drivers subclass it (unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Touch:
    """One thing a fault touches: `kind` (node, proxy, namespace, container, process) named
    `name` at `where` (a lab directory, a Toxiproxy URL, a cluster context). The scope is
    checked by kind and name; a live run claims `kind:where:name` so no other run touches it."""

    kind: str
    name: str
    where: str

    def claim(self) -> str:
        return f"{self.kind}:{self.where}:{self.name}"


def owner_tag(run: str) -> str:
    """A short, stable tag of a run id for names with little room (toxics, process tags)."""
    return hashlib.sha1(run.encode()).hexdigest()[:8]


class FaultDriver(Protocol):
    """One fault kind, keyed in the registry by its `type:` string."""

    type_name: ClassVar[str]
    Config: ClassVar[type[FaultConfig]]
    destructive: ClassVar[bool]  # touches nodes: needs an explicit scope (or `any`)

    def __init__(self, platform: Platform, run: str) -> None: ...

    def needs(self, config: FaultConfig) -> list[Need]:
        """The platform abilities this fault needs (checked before anything is planned)."""
        ...

    def plan(self, name: str, target: dict[str, Any], config: FaultConfig,
             rng: random.Random) -> Intent:
        """Resolve the target (seeded choices included) into an intent; no side effects."""
        ...

    def touches(self, intent: Intent) -> list[Touch]:
        """Everything the intent would touch, for the scope check and the run's claims."""
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
