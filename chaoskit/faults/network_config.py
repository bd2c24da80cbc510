"""Each network fault's magnitude fields, in human units, and the Toxiproxy toxic it makes."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema

from chaoskit.faults.base import FaultConfig
from chaoskit.spec.units import Duration, Ratio

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(KB|MB)/s\s*$", re.IGNORECASE)


def _whole_ms(seconds: float) -> float:
    # Toxiproxy takes integer milliseconds; refusing 1.5ms beats silently asking for 2ms.
    if seconds < 0 or abs(seconds * 1000 - round(seconds * 1000)) > 1e-6:
        raise ValueError("Toxiproxy works in whole milliseconds (e.g. 1ms, 250ms, 2s)")
    return seconds


def _kb_per_s(value: Any) -> int:
    """Toxiproxy's bandwidth unit is KB/s (1 KB = 1000 bytes): 500, '500KB/s', '2MB/s'."""
    if isinstance(value, int) and not isinstance(value, bool):
        rate = float(value)
    else:
        match = _RATE.match(str(value))
        if not match:
            raise ValueError(f"'{value}' is not a bandwidth; write e.g. 500KB/s or 2MB/s")
        rate = float(match.group(1)) * (1000 if match.group(2).upper() == "MB" else 1)
    if rate < 1 or rate != int(rate):
        raise ValueError(f"bandwidth must be a whole number of KB/s, at least 1, got {value!r}")
    return int(rate)


Millis = Annotated[Duration, AfterValidator(_whole_ms)]
Bandwidth = Annotated[int, BeforeValidator(_kb_per_s),
                      WithJsonSchema({"anyOf": [{"type": "integer", "minimum": 1},
                                                {"type": "string",
                                                 "pattern": r"^\s*\d+(\.\d+)?\s*(KB|MB)/s\s*$"}],
                                      "examples": ["500KB/s"],
                                      "description": "bandwidth; a bare number is KB/s"})]


def ms(seconds: float) -> int:
    return round(seconds * 1000)


class NetworkConfig(FaultConfig):
    """Fields every toxic takes: which direction(s), and the share of connections affected."""

    stream: Literal["downstream", "upstream", "both"] = "downstream"
    toxicity: Ratio = 1.0

    def toxic_attributes(self) -> dict[str, Any]:
        raise NotImplementedError


class LatencyConfig(NetworkConfig):
    latency: Millis
    jitter: Millis = 0.0
    # how to send a request through the proxy to time the effect (none: do not probe)
    probe: Literal["http", "echo", "none"] = "http"

    def toxic_attributes(self) -> dict[str, Any]:
        return {"latency": ms(self.latency), "jitter": ms(self.jitter)}


class BandwidthConfig(NetworkConfig):
    rate: Bandwidth

    def toxic_attributes(self) -> dict[str, Any]:
        return {"rate": self.rate}


class TimeoutConfig(NetworkConfig):
    # 0: data is dropped and the connection held open until the fault ends
    timeout: Millis = 0.0

    def toxic_attributes(self) -> dict[str, Any]:
        return {"timeout": ms(self.timeout)}


class ResetPeerConfig(NetworkConfig):
    # wait this long after the next data chunk before resetting (0: at once)
    timeout: Millis = 0.0

    def toxic_attributes(self) -> dict[str, Any]:
        return {"timeout": ms(self.timeout)}


class SlowCloseConfig(NetworkConfig):
    delay: Millis

    def toxic_attributes(self) -> dict[str, Any]:
        return {"delay": ms(self.delay)}


class LimitDataConfig(NetworkConfig):
    # the connection is closed once this many bytes have passed
    max_bytes: int = Field(ge=1)

    def toxic_attributes(self) -> dict[str, Any]:
        return {"bytes": self.max_bytes}


class DownConfig(FaultConfig):
    """A partition: the proxy is disabled, so connects are refused and open ones dropped."""
