"""Co-location (`type: colocate`): offline batch work pinned to the node of online pods.

    faults:
      - name: batch-at-8pm
        type: colocate
        target: {selector: app.kubernetes.io/name=gateway}   # online pods; their node is used
        isolation: true     # low priority (payments-offline) vs. false: the same, without it
        count: 2            # offline pods
        cpu: 500m           # each one's CPU request
        start: 10s
        duration: 60s

The driver asks its platform to node_of(selector), start_offline, stop_offline and
offline_residue; on Kubernetes that is a Job with node affinity, removed at revert.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any, ClassVar

from pydantic import Field

from chaoskit.errors import FaultError
from chaoskit.faults.base import FaultConfig, Intent
from chaoskit.platforms.base import unsupported


class ColocateConfig(FaultConfig):
    isolation: bool = Field(default=True, description="offline work at low priority")
    count: int = Field(default=1, ge=1, le=100)
    cpu: str = "500m"
    memory: str = "128Mi"
    image: str = "chaoskit/payment-stack:0.1.0"
    args: list[str] = Field(default_factory=lambda: ["offline"])


class ColocateFault:
    type_name: ClassVar[str] = "colocate"
    Config: ClassVar[type[FaultConfig]] = ColocateConfig

    def __init__(self, platform: Any) -> None:
        self.platform = platform

    def plan(self, name: str, target: dict[str, Any], config: FaultConfig,
             rng: random.Random) -> Intent:
        assert isinstance(config, ColocateConfig)
        if set(target) != {"selector"}:
            raise FaultError(f"colocate target {target!r} is not understood",
                             hint="use target: {selector: LABEL=VALUE} (the online pods)")
        node = self._ability("node_of")(target["selector"])
        return {"fault": name, "type": self.type_name, "node": node,
                "namespace": getattr(self.platform, "namespace", None),
                "options": config.model_dump()}

    async def inject(self, intent: Intent) -> dict[str, Any]:
        start = self._ability("start_offline")
        return dict(await asyncio.to_thread(start, intent["fault"], intent["node"],
                                            intent["options"]))

    async def revert(self, intent: Intent) -> dict[str, Any]:
        return dict(await asyncio.to_thread(self._ability("stop_offline"), intent["fault"]))

    async def verify_reverted(self, intent: Intent) -> list[str]:
        return list(await asyncio.to_thread(self._ability("offline_residue"), intent["fault"]))

    async def preflight(self, intent: Intent) -> list[str]:
        missing = getattr(self.platform, "missing_access", None)
        return list(await asyncio.to_thread(missing, self.type_name)) if missing else []

    def _ability(self, name: str) -> Any:
        ability = getattr(self.platform, name, None)
        if ability is None:
            raise unsupported(self.platform.name, f"co-locate offline work ({name})",
                              hint="run `type: colocate` on a platform that offers it")
        return ability
