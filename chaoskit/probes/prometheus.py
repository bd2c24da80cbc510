"""`type: prometheus`: one number from a PromQL query against a Prometheus server's HTTP API.

    probe: {type: prometheus, query: 'histogram_quantile(0.99, sum by (le)
            (rate(payments_request_duration_seconds_bucket[30s])))'}
    probe: {type: prometheus, query: 'sum(payments_queue_depth)', range: 5m, reduce: max}

An instant query must answer one series (or a scalar); a range query's one series is reduced
to one number by `reduce`.
"""

from __future__ import annotations

import math
import re
import statistics
import time
from collections.abc import Callable
from typing import Any, ClassVar, Literal

import httpx
from pydantic import Field

from chaoskit.errors import ProbeError
from chaoskit.platforms.abilities import PrometheusAddress
from chaoskit.probes.base import (
    UNIT_FIELD_HELP,
    ProbeConfig,
    ProbeContext,
    unit_from_name,
    waiting_on_the_system,
)
from chaoskit.spec.units import PositiveDuration

REDUCE: dict[str, Callable[[list[float]], float]] = {
    "last": lambda v: v[-1], "max": max, "min": min, "mean": statistics.fmean}
MAX_POINTS = 250  # default step keeps a range query to about this many points


_FUNCTIONS = {"histogram_quantile", "sum_over_time", "avg_over_time", "max_over_time",
              "min_over_time", "count_over_time", "label_replace", "quantile_over_time"}


class PrometheusProbeConfig(ProbeConfig):
    url: str | None = Field(default=None, description="Prometheus base URL (default: platform)")
    query: str = Field(description="PromQL answering one series or a scalar")
    range: PositiveDuration | None = Field(default=None, description="query the last this long")
    step: PositiveDuration | None = Field(default=None, description="range query resolution")
    reduce: Literal["last", "max", "min", "mean"] = "last"
    timeout: PositiveDuration = 5.0
    when_empty: float | None = Field(
        default=None, description="value when the query has no data (default: a probe error)")
    unit: str | None = Field(default=None, description=UNIT_FIELD_HELP)


def _default_url(platform: object) -> str | None:
    return platform.prometheus_url() if isinstance(platform, PrometheusAddress) else None


class PrometheusProbe:
    """Asks Prometheus; raises ProbeError saying why when the answer is not one number."""

    type_name: ClassVar[str] = "prometheus"
    Config: ClassVar[type[ProbeConfig]] = PrometheusProbeConfig

    def __init__(self, config: ProbeConfig, context: ProbeContext) -> None:
        assert isinstance(config, PrometheusProbeConfig)
        self.config = config
        url = config.url or _default_url(context.platform)
        if not url:
            raise ProbeError("the prometheus probe has no server URL",
                             hint="set `url:` (e.g. http://127.0.0.1:9090), or use the `metrics` "
                                  "probe to scrape services directly")
        self.url = url.rstrip("/")
        self._client: httpx.AsyncClient | None = None

    def unit(self) -> str:
        """As configured, else from the first metric name in the query (histogram_quantile
        of *_seconds_bucket reads as seconds, a rate of *_total as a rate)."""
        if self.config.unit is not None:
            return self.config.unit
        names = re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*(?=\s*[{\[(])", self.config.query)
        metrics = [n for n in names if "_" in n and n not in _FUNCTIONS]
        named = unit_from_name(metrics[0]) if metrics else ""
        if named == "count" and re.search(r"\b(i?rate)\(", self.config.query):
            return "rate"
        return named

    async def sample(self) -> float:
        if self.config.range is None:
            data = await self._ask("/api/v1/query", {"query": self.config.query})
        else:
            end = time.time()
            step = self.config.step or max(1.0, self.config.range / MAX_POINTS)
            data = await self._ask("/api/v1/query_range", {
                "query": self.config.query, "start": end - self.config.range, "end": end,
                "step": step})
        return self._or_empty(self._number(data))

    async def _ask(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.config.timeout)
        try:
            with waiting_on_the_system():
                response = await self._client.get(self.url + path, params=params)
        except httpx.HTTPError as exc:
            raise ProbeError(f"Prometheus at {self.url} is unreachable: {exc!r}",
                             hint="check `url:` and that Prometheus runs and listens there") \
                from None
        return self._payload(response)

    def _payload(self, response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            raise ProbeError(f"{self.url} answered HTTP {response.status_code} without JSON",
                             hint="`url:` must be Prometheus' base URL, not a page or "
                                  "/metrics") from None
        if body.get("status") != "success":
            raise ProbeError(
                f"Prometheus rejected the query {self.config.query!r}: "
                f"{body.get('errorType', 'error')}: {body.get('error', response.status_code)}",
                hint=f"fix the PromQL; try it at {self.url}/graph")
        return dict(body["data"])

    def _number(self, data: dict[str, Any]) -> float:
        kind, result = data["resultType"], data["result"]
        if kind in ("scalar", "string"):
            return float(result[1])
        if not result:
            return math.nan
        if len(result) > 1:
            shown = ", ".join(str(series.get("metric", {})) for series in result[:3])
            raise ProbeError(f"the query {self.config.query!r} answered {len(result)} series "
                             f"({shown}, ...), not one number",
                             hint="aggregate it, e.g. wrap it in sum(...) or max(...)")
        if kind == "vector":
            return float(result[0]["value"][1])
        values = [float(v) for _, v in result[0]["values"] if not math.isnan(float(v))]
        return REDUCE[self.config.reduce](values) if values else math.nan

    def _or_empty(self, value: float) -> float:
        if not math.isnan(value):
            return value
        if self.config.when_empty is not None:
            return self.config.when_empty
        raise ProbeError(f"the query {self.config.query!r} returned no data",
                         hint="check that the metric and its labels exist and that the scrape "
                              "ran (see Status > Targets), or set `when_empty:`")

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
