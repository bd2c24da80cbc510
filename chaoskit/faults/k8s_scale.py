"""Elastic capacity (`type: scale`): scale a Deployment during the peak and back afterwards.

    faults:
      - name: scale-out
        type: scale
        target: {deployment: gateway}
        replicas: 4                # or `add: 2`
        start: 20s
        duration: 60s

The driver asks its platform for scale_out / scale_back / scale_residue / replicas (the
kubernetes platform marks the original count on the Deployment, so a recovery without the
journal can still scale it back); a platform without them cannot scale.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any, ClassVar

from pydantic import Field, model_validator

from chaoskit.errors import FaultError
from chaoskit.faults.base import FaultConfig, Intent
from chaoskit.platforms.base import unsupported


class ScaleConfig(FaultConfig):
    replicas: int | None = Field(default=None, ge=0, description="replicas during the fault")
    add: int | None = Field(default=None, description="or: replicas added to the current count")

    @model_validator(mode="after")
    def _one_of(self) -> ScaleConfig:
        if (self.replicas is None) == (self.add is None):
            raise ValueError("give exactly one of `replicas` and `add`")
        return self


class ScaleFault:
    type_name: ClassVar[str] = "scale"
    Config: ClassVar[type[FaultConfig]] = ScaleConfig

    def __init__(self, platform: Any) -> None:
        self.platform = platform

    def plan(self, name: str, target: dict[str, Any], config: FaultConfig,
             rng: random.Random) -> Intent:
        assert isinstance(config, ScaleConfig)
        if set(target) != {"deployment"}:
            raise FaultError(f"scale target {target!r} is not understood",
                             hint="use target: {deployment: NAME}")
        original = self._ability("replicas")(target["deployment"])
        wanted = config.replicas if config.replicas is not None else original + (config.add or 0)
        return {"fault": name, "type": self.type_name, "deployment": target["deployment"],
                "namespace": getattr(self.platform, "namespace", None),
                "original": original, "replicas": max(0, wanted)}

    async def inject(self, intent: Intent) -> dict[str, Any]:
        scale_out = self._ability("scale_out")
        return dict(await asyncio.to_thread(scale_out, intent["deployment"], intent["replicas"]))

    async def revert(self, intent: Intent) -> dict[str, Any]:
        scale_back = self._ability("scale_back")
        return dict(await asyncio.to_thread(scale_back, intent["deployment"], intent["original"]))

    async def verify_reverted(self, intent: Intent) -> list[str]:
        residue = self._ability("scale_residue")
        return list(await asyncio.to_thread(residue, intent["deployment"], intent["original"]))

    async def preflight(self, intent: Intent) -> list[str]:
        missing = getattr(self.platform, "missing_access", None)
        return list(await asyncio.to_thread(missing, self.type_name)) if missing else []

    def _ability(self, name: str) -> Any:
        ability = getattr(self.platform, name, None)
        if ability is None:
            raise unsupported(self.platform.name, f"scale workloads ({name})",
                              hint="run `type: scale` on a platform that offers it")
        return ability
