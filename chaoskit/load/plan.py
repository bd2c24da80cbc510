"""The load plan: a LoadSpec flattened to exact, JSON-able numbers for the worker processes."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from chaoskit.errors import LoadError
from chaoskit.load.curve import Curve, curve_from_json

# One worker process comfortably sustains this many requests/s; "auto" adds workers beyond it.
RATE_PER_WORKER = 40_000.0
WINDOW = 0.1  # run seconds per reported window


@dataclass(frozen=True)
class Endpoint:
    scheme: str
    host: str
    port: int
    prefix: str  # path prefix in front of each flow's path

    @classmethod
    def parse(cls, base_url: str) -> Endpoint:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise LoadError(f"load target {base_url!r} is not an http:// or https:// URL",
                            hint="give the entry's base URL, e.g. http://127.0.0.1:8080")
        default = 443 if parts.scheme == "https" else 80
        return cls(parts.scheme, parts.hostname, parts.port or default, parts.path.rstrip("/"))


@dataclass(frozen=True)
class LoadPlan:
    """Everything a worker needs; built by the parent from the spec, shipped as one JSON line."""

    primitives: list[list[object]]
    time_scale: float
    run_seconds: float
    flows: list[str]            # names, in the order of `requests` and of the windows' counts
    weights: list[float]
    requests: list[dict[str, Any]]  # each flow's spec (templates, success, captures), by name
    seed: int
    workers: int
    worker: int
    host: str
    port: int
    prefix: str
    timeout: float
    late_after: float
    max_in_flight: int   # this worker's share
    nonce: str           # makes idempotency keys unique across runs of the same seed
    ack_path: str | None
    retries: int = 0
    retry_after: float = 0.2
    scheme: str = "http"
    tls_verify: bool = True
    tls_ca_file: str | None = None
    behind_after: float = 0.1  # reached this late: the engine's own shortfall
    # captured values kept with each acknowledgement (None: all; the run keeps only those its
    # `acknowledged` query looks up)
    ack_captures: list[str] | None = None

    def curve(self) -> Curve:
        return curve_from_json(self.primitives, self.time_scale, self.run_seconds)

    def for_worker(self, worker: int) -> LoadPlan:
        return LoadPlan(**{**asdict(self), "worker": worker})

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> LoadPlan:
        return cls(**json.loads(text))


def worker_count(requested: int | str, peak_rate: float) -> int:
    """Processes to use: as asked, or for "auto" enough for the peak, at most one per core."""
    if isinstance(requested, int):
        return requested
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cores or 1, math.ceil(peak_rate / RATE_PER_WORKER)))
