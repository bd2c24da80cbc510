"""`type: load`: what clients were told, from the run's own load engine (errors, latency, rate).

    probe: {type: load, measure: error_ratio, window: 5s}            # errors / sent
    probe: {type: load, measure: p99, flow: final_payment, window: 5s}  # s, from intended time
"""

from __future__ import annotations

import time
from typing import Any, ClassVar, Literal

from pydantic import Field

from chaoskit.errors import ProbeError
from chaoskit.probes.base import ProbeConfig, ProbeContext
from chaoskit.spec.units import PositiveDuration


class LoadProbeConfig(ProbeConfig):
    measure: Literal["error_ratio", "errors", "sent", "achieved_ratio", "late_ratio",
                     "dropped", "p50", "p99", "max"] = "error_ratio"
    flow: str | None = Field(default=None, description="one flow (pay, refund, final_payment)")
    window: PositiveDuration = Field(default=5.0, description="the recent run time to judge")


class LoadProbe:
    """Reads the load windows the engine keeps for this run; no windows yet reads as 0."""

    type_name: ClassVar[str] = "load"
    Config: ClassVar[type[ProbeConfig]] = LoadProbeConfig

    def __init__(self, config: ProbeConfig, context: ProbeContext) -> None:
        assert isinstance(config, LoadProbeConfig)
        self.config = config
        self.windows = context.load_windows
        if self.windows is None:
            raise ProbeError("the load probe needs a run with a `load:` section",
                             hint="add load: to the experiment, or use a metrics probe")

    def _recent(self) -> list[dict[str, Any]]:
        """Windows of the last `window` seconds, read from the newest end: the deque holds the
        whole run, and copying it on every sample would grow with the run's length."""
        since = time.monotonic() - self.config.window
        recent = []
        for at, window in reversed(self.windows):
            if at < since:
                break
            recent.append(window)
        return recent

    def _counts(self, windows: list[dict[str, Any]], name: str) -> float:
        if self.config.flow is None:
            return float(sum(w.get(name, 0) for w in windows))
        return float(sum(w.get("by_flow", {}).get(self.config.flow, {}).get(name, 0)
                         for w in windows))

    async def sample(self) -> float:
        windows = self._recent()
        measure = self.config.measure
        if measure in ("p50", "p99", "max"):
            values = [w.get(f"{measure}_ms") for w in windows]
            present = [v for v in values if v is not None]
            return max(present) / 1000.0 if present else 0.0
        sent, intended = self._counts(windows, "sent"), self._counts(windows, "intended")
        ratios = {"error_ratio": ("errors", sent), "late_ratio": ("late", sent),
                  "achieved_ratio": ("sent", intended)}
        if measure in ratios:
            name, total = ratios[measure]
            return self._counts(windows, name) / total if total else 0.0
        return self._counts(windows, measure)

    async def close(self) -> None:
        return None
