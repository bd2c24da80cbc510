"""`type: metrics`: scrape /metrics directly (no Prometheus): values, rates, quantiles, ratios.

    probe: {type: metrics, service: gateway, metric: payments_request_duration_seconds,
            labels: {route: /v1/payments}, measure: quantile, q: 0.99, window: 30s}

Rates, quantiles and ratios are computed from the scrapes this probe keeps over `window`, with
counter resets handled per series and quantiles interpolated as PromQL's histogram_quantile, so
the same hypothesis reads the same through the `prometheus` probe.
"""

from __future__ import annotations

import asyncio
import math
from typing import ClassVar, Literal

import httpx
from pydantic import Field, model_validator

from chaoskit import exposition
from chaoskit.errors import ProbeError
from chaoskit.exposition import Scrape, ScrapeWindow
from chaoskit.platforms.abilities import MetricsTargets
from chaoskit.probes.base import (
    UNIT_FIELD_HELP,
    ProbeConfig,
    ProbeContext,
    unit_from_name,
    waiting_on_the_system,
)
from chaoskit.probes.quantile import bucket_quantile
from chaoskit.spec.units import PositiveDuration


class MetricsProbeConfig(ProbeConfig):
    targets: list[str] = Field(default_factory=list, description="/metrics URLs to scrape")
    service: str | None = Field(default=None, description="only the platform's targets of it")
    metric: str = Field(description="sample name (counter: with or without _total); histogram "
                                    "name for quantile")
    labels: dict[str, str] = Field(default_factory=dict, description="label values to match")
    measure: Literal["value", "rate", "quantile", "ratio"] = "value"
    window: PositiveDuration = Field(default=30.0, description="rate/quantile/ratio window")
    q: float = Field(default=0.99, ge=0.0, le=1.0, description="quantile to read")
    denominator: str | None = Field(default=None, description="ratio: the counter divided by")
    denominator_labels: dict[str, str] | None = None
    timeout: PositiveDuration = 2.0
    when_empty: float | None = Field(
        default=None, description="value when the window has no data (default: a probe error)")
    unit: str | None = Field(default=None, description=UNIT_FIELD_HELP)

    @model_validator(mode="after")
    def _ratio_needs_denominator(self) -> MetricsProbeConfig:
        if self.measure == "ratio" and not self.denominator:
            raise ValueError("measure: ratio needs `denominator:` (e.g. the total counter)")
        return self


def platform_targets(platform: object, service: str | None) -> list[str]:
    """/metrics URLs the platform knows, keyed by instance name; `service` keeps its instances."""
    if not isinstance(platform, MetricsTargets):
        return []
    items = list(platform.metrics_targets().items())
    if service is None:
        return [url for _, url in items]
    return [url for name, url in items if _of_service(name, service)]


def _of_service(instance: str, service: str) -> bool:
    # instance names look like "gateway", "gateway-2" or "gateway@node-1"
    if instance == service:
        return True
    return instance.startswith(service) and instance[len(service)] in "-@./"


class MetricsProbe:
    """Reads one number from the services' own /metrics endpoints."""

    type_name: ClassVar[str] = "metrics"
    Config: ClassVar[type[ProbeConfig]] = MetricsProbeConfig

    def __init__(self, config: ProbeConfig, context: ProbeContext) -> None:
        assert isinstance(config, MetricsProbeConfig)
        self.config = config
        self.platform = context.platform
        self.targets = config.targets or platform_targets(context.platform, config.service)
        if not self.targets:
            raise ProbeError("the metrics probe has no targets to scrape",
                             hint="set `targets:` to /metrics URLs, or check `service:` names "
                                  "a service the platform runs")
        self.history = ScrapeWindow(config.window)
        self._client: httpx.AsyncClient | None = None

    async def _scrape(self) -> Scrape:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.config.timeout)
        if not self.config.targets:  # the lab may have scaled out or lost a node since
            self.targets = platform_targets(self.platform, self.config.service) or self.targets
        with waiting_on_the_system():
            scrape = await exposition.scrape_targets(self._client, self.targets)
        self.history.add(scrape)
        return scrape

    def unit(self) -> str:
        c = self.config
        if c.unit is not None:
            return c.unit
        if c.measure == "ratio":
            return "ratio"
        named = unit_from_name(c.metric)
        if c.measure == "rate":
            return "rate" if named in ("count", "") else ""
        return named

    async def sample(self) -> float:
        scrape = await self._scrape()
        if self.config.measure == "value":
            return self._value(scrape)
        if len(self.history.scrapes) < 2:
            # the first sample has nothing to compare with: wait a moment for a second scrape
            await asyncio.sleep(min(1.0, self.config.window))
            scrape = await self._scrape()
        if not self._has_series(scrape):
            return self._or_empty(math.nan)
        return self._windowed()

    def _names(self, metric: str) -> list[str]:
        return [metric, metric + "_total"]

    def _value(self, scrape: Scrape) -> float:
        keys = exposition.matching(scrape, self._names(self.config.metric), self.config.labels)
        if not keys:
            return self._or_empty(self._undeclared(scrape, self.config.metric))
        return math.fsum(scrape.values[key] for key in keys)

    def _has_series(self, scrape: Scrape) -> bool:
        c = self.config
        if c.denominator and not scrape.declares(c.denominator):
            raise exposition.unknown_metric(scrape, c.denominator, c.denominator_labels or {})
        names = [c.metric + "_bucket"] if c.measure == "quantile" else self._names(c.metric)
        if self.history.keys(names, c.labels):
            return True
        self._undeclared(scrape, c.metric)
        return False

    def _undeclared(self, scrape: Scrape, metric: str) -> float:
        """NaN (no data yet) for a declared metric without matching series; an unknown one is
        an error, since no amount of waiting will make it appear."""
        if not scrape.declares(metric):
            raise exposition.unknown_metric(scrape, metric, self.config.labels)
        return math.nan

    def _windowed(self) -> float:
        c, window = self.config, self.history
        if c.measure == "rate":
            value = window.total_increase(self._names(c.metric), c.labels) / window.span
        elif c.measure == "quantile":
            value = bucket_quantile(c.q, window.bucket_increases(c.metric, c.labels).items())
        else:
            value = self._ratio()
        return self._or_empty(value)

    def _ratio(self) -> float:
        c = self.config
        assert c.denominator is not None
        below = self.history.total_increase(
            self._names(c.denominator),
            c.labels if c.denominator_labels is None else c.denominator_labels)
        above = self.history.total_increase(self._names(c.metric), c.labels)
        return above / below if below > 0 else math.nan

    def _or_empty(self, value: float) -> float:
        if not math.isnan(value):
            return value
        if self.config.when_empty is not None:
            return self.config.when_empty
        c = self.config
        span = "" if c.measure == "value" else f" in the last {c.window:g}s"
        raise ProbeError(f"no data for {c.metric} {dict(c.labels)}{span}, so its {c.measure} "
                         "is undefined",
                         hint="send load during the window, lengthen `window:`, or set "
                              "`when_empty:` to the value an idle window should count as")

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
