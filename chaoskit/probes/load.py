"""`type: load`: what clients were told, from the run's own load engine (errors, latency, rate).

    probe: {type: load, measure: error_ratio, window: 5s}
    probe: {type: load, measure: p99, flow: final_payment, window: 5s}  # s, from intended time

error_ratio    arrivals that did not get a success (error status, refused, reset, timed out,
               dropped) over the arrivals whose fate is known: a dead gateway reads 100%.
               Arrivals chaoskit itself never sent (its in-flight cap) are its shortfall,
               reported by behind_ratio and the run's load-delivered precondition, not here
achieved_ratio arrivals sent over arrivals intended
late_ratio     arrivals sent later than `late_after` over those sent
behind_ratio   arrivals the load engine itself reached late or dropped at its in-flight cap,
               over those intended: chaoskit's own shortfall, not the system's
p50/p99/max    latency from the intended send time; failures count with the time clients
               waited, timeouts and drops at least at the timeout
A window with nothing to measure (no arrival yet, or none resolved) has no data: the sample is
not evidence either way, never a silent 0.
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
                     "behind_ratio", "dropped", "p50", "p99", "max"] = "error_ratio"
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
        if self.config.flow is None or name in ("behind", "late"):
            return float(sum(w.get(name, 0) for w in windows))
        return float(sum(w.get("by_flow", {}).get(self.config.flow, {}).get(name, 0)
                         for w in windows))

    async def sample(self) -> float | None:
        windows = self._recent()
        if not windows:
            return None  # the load has not reported in this window: nothing to measure
        measure = self.config.measure
        if measure in ("p50", "p99", "max"):
            values = [w.get(f"{measure}_ms") for w in windows]
            present = [v for v in values if v is not None]
            return max(present) / 1000.0 if present else None
        count = self._counts
        if measure == "error_ratio":
            failed = (count(windows, "errors") + count(windows, "dropped")
                      - count(windows, "capped"))
            resolved = count(windows, "ok") + failed
            return failed / resolved if resolved else None
        if measure == "behind_ratio":
            return _ratio(count(windows, "behind"), count(windows, "intended"))
        if measure == "late_ratio":
            return _ratio(count(windows, "late"), count(windows, "sent"))
        if measure == "achieved_ratio":
            return _ratio(count(windows, "sent"), count(windows, "intended"))
        return count(windows, measure)

    def unit(self) -> str:
        measure = self.config.measure
        if measure in ("p50", "p99", "max"):
            return "s"
        return "ratio" if measure.endswith("_ratio") else "count"

    async def close(self) -> None:
        return None


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None
