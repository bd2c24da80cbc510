"""`type: http`: one request to one URL, read as its latency, its status, or whether it was ok.

    probe: {type: http, url: http://127.0.0.1:8080/healthz, measure: ok}
    probe: {type: http, url: http://127.0.0.1:8080/v1/flows/x, expect_status: [200, 404],
            measure: latency, timeout: 2s}

`ok` is 1.0 when the status is expected and the body holds `body_contains`, else 0.0 (also
when nothing answered); `status` is the HTTP status, 0.0 when nothing answered; `latency` is
seconds to the full response, and a request that got no response is a probe error.
"""

from __future__ import annotations

import time
from typing import ClassVar, Literal

import httpx
from pydantic import Field, field_validator

from chaoskit.errors import ProbeError
from chaoskit.probes.base import ProbeConfig, ProbeContext, waiting_on_the_system
from chaoskit.spec.units import PositiveDuration


class HttpProbeConfig(ProbeConfig):
    url: str
    method: Literal["GET", "HEAD", "POST", "PUT", "DELETE"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = Field(default=None, description="request body, sent as is")
    expect_status: list[int] = Field(default_factory=list,
                                     description="statuses counted ok (default: any 2xx)")
    body_contains: str | None = None
    timeout: PositiveDuration = 5.0
    measure: Literal["latency", "ok", "status"] = "ok"

    @field_validator("expect_status", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, int) else value


class HttpProbe:
    """Sends one request per sample on a kept-alive client."""

    type_name: ClassVar[str] = "http"
    Config: ClassVar[type[ProbeConfig]] = HttpProbeConfig

    def __init__(self, config: ProbeConfig, context: ProbeContext) -> None:
        assert isinstance(config, HttpProbeConfig)
        self.config = config
        self._client: httpx.AsyncClient | None = None

    def unit(self) -> str:
        return {"latency": "s", "ok": "count"}.get(self.config.measure, "")

    async def sample(self) -> float:
        started = time.perf_counter()
        try:
            response = await self._send()
        except httpx.HTTPError as exc:
            return self._no_response(exc)
        latency = time.perf_counter() - started
        if self.config.measure == "latency":
            return latency
        if self.config.measure == "status":
            return float(response.status_code)
        return 1.0 if self.is_ok(response) else 0.0

    async def _send(self) -> httpx.Response:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.config.timeout)
        c = self.config
        with waiting_on_the_system():
            return await self._client.request(c.method, c.url, headers=c.headers, content=c.body)

    def is_ok(self, response: httpx.Response) -> bool:
        expected = self.config.expect_status
        status_ok = response.status_code in expected if expected else response.is_success
        wanted = self.config.body_contains
        return status_ok and (wanted is None or wanted in response.text)

    def _no_response(self, exc: httpx.HTTPError) -> float:
        if self.config.measure != "latency":
            return 0.0
        raise ProbeError(f"{self.config.method} {self.config.url} got no response: {exc!r}",
                         hint="latency needs an answer; use `measure: ok` to count failures, "
                              "or raise `timeout:`")

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
