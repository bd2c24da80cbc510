"""`type: noop`: a fault that does nothing, for dry runs of timelines and plumbing checks."""

from __future__ import annotations

import random
from typing import Any, ClassVar

from chaoskit.faults.base import FaultConfig, Intent, Touch
from chaoskit.platforms.abilities import Need


class NoopFault:
    type_name: ClassVar[str] = "noop"
    Config: ClassVar[type[FaultConfig]] = FaultConfig
    destructive: ClassVar[bool] = False

    def __init__(self, platform: Any, run: str = "adhoc") -> None:
        self.platform = platform
        self.run = run

    def needs(self, config: FaultConfig) -> list[Need]:
        return []

    def touches(self, intent: Intent) -> list[Touch]:
        return []

    def plan(self, name: str, target: dict[str, Any], config: FaultConfig,
             rng: random.Random) -> Intent:
        return {"fault": name}

    async def inject(self, intent: Intent) -> dict[str, Any]:
        return {}

    async def revert(self, intent: Intent) -> dict[str, Any]:
        return {}

    async def verify_reverted(self, intent: Intent) -> list[str]:
        return []
