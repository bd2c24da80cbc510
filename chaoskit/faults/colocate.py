"""Co-located offline work (`type: colocate`): a batch sharing nodes with the online services.

    faults:
      - name: batch-at-8pm
        type: colocate
        target: {node: "*"}       # every node; or node-1, any (seeded), {role: gateway}
        work: reconciliation      # the stack's real offline job, or `burner` (synthetic)
        isolation: true           # offline weighted low: cpu.shares 2 vs 1024 (nice 19 w/o root)
        units: 3000               # reconciliation: units of work (~10 ms of CPU each)
        window: 90s               # reconciliation: real time from its start to its deadline
        finish: true              # revert waits (up to the window) for the job to complete
        start: 30m
        duration: 1h

`work: burner` keeps `cpu:` workers busy and `memory:` resident on every target node. Every
offline process stops by itself after `lifetime:` (real seconds) even if no revert comes; the
revert at the fault's end stops it earlier. The driver asks its platform for the abilities in
`ColocatePlatform`, so a cluster platform offers the same by implementing them.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import asdict, dataclass, field
from fnmatch import fnmatch
from typing import Any, ClassVar, Literal, Protocol

import httpx
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ByteSize, Field, model_validator

from chaoskit.errors import FaultError, PlatformError
from chaoskit.faults.base import FaultConfig, Intent
from chaoskit.faults.node_loss import resolve_node
from chaoskit.platforms.base import Platform, unsupported
from chaoskit.spec.units import PositiveDuration

PROGRESS = "payments_offline_progress_ratio"
POLL = 0.25
SAMPLE_S = 3.0  # how long measure_effect watches the offline CPU use
TIMELINE_S = 5.0


@dataclass(frozen=True)
class OfflineWork:
    """What to run next to the online services, and how it is weighted."""

    work: str  # reconciliation | burner
    isolation: bool
    lifetime: float  # real seconds: the process stops by itself after this
    cpu: int = 2  # burner: busy workers
    memory: int = 0  # burner: resident bytes
    units: int | None = None  # reconciliation: units of work (the job's default if None)
    rounds: int | None = None  # reconciliation: PBKDF2 rounds per unit
    window: float = 60.0  # reconciliation: real seconds from its start to its deadline


@dataclass(frozen=True)
class OfflineProcess:
    """One offline process (running or finished) as a platform reports it."""

    id: str
    node: str
    work: str
    alive: bool
    metrics_url: str  # "" when it exports none (the burner)
    started_at: float | None  # epoch seconds
    cgroups: list[str] = field(default_factory=list)


class ColocatePlatform(Protocol):
    """Abilities a platform offers for co-located offline work (tag: the fault's own)."""

    def start_offline(self, node: str, tag: str, work: OfflineWork) -> str: ...
    def offline_processes(self, tag: str) -> list[OfflineProcess]: ...
    def stop_offline(self, tag: str) -> list[str]: ...
    def offline_residue(self, tag: str) -> list[str]: ...
    def offline_isolation(self) -> str: ...
    def process_cpu_seconds(self, process_id: str) -> float: ...


class ColocateConfig(FaultConfig):
    work: Literal["burner", "reconciliation"] = "burner"
    isolation: bool = Field(default=True, description="offline in a low cpu-weight group")
    cpu: int = Field(default=2, ge=1, le=32, description="burner: busy workers per node")
    memory: ByteSize = Field(default=ByteSize(0), description="burner: resident memory per node")
    units: int | None = Field(default=None, gt=0, description="reconciliation: units of work")
    rounds: int | None = Field(default=None, gt=0, description="reconciliation: CPU per unit")
    window: PositiveDuration = Field(default=60.0, description="reconciliation: its window")
    finish: bool = Field(default=False, description="revert waits for the job (<= window)")
    lifetime: PositiveDuration = Field(default=600.0, description="self-stop bound, real s")
    start_timeout: PositiveDuration = 30.0

    @model_validator(mode="after")
    def _finish_needs_a_job(self) -> ColocateConfig:
        if self.finish and self.work != "reconciliation":
            raise ValueError("`finish: true` waits for a job: use it with work: reconciliation")
        return self


class Colocate:
    """Offline work on the target nodes for the fault's duration."""

    type_name: ClassVar[str] = "colocate"
    Config: ClassVar[type[FaultConfig]] = ColocateConfig

    def __init__(self, platform: Platform) -> None:
        self.platform: Any = platform

    def plan(self, name: str, target: dict[str, Any], config: FaultConfig,
             rng: random.Random) -> Intent:
        assert isinstance(config, ColocateConfig)
        work = OfflineWork(config.work, config.isolation, config.lifetime, config.cpu,
                           int(config.memory), config.units, config.rounds, config.window)
        # the tag names the processes and groups; a token keeps two runs on one lab apart
        return {"fault": name, "type": self.type_name, "tag": f"{name}-{rng.getrandbits(24):06x}",
                "nodes": resolve_nodes(self.platform, target, rng), "target": dict(target),
                "work": asdict(work), "finish": config.finish,
                "start_timeout": config.start_timeout}

    async def inject(self, intent: Intent) -> dict[str, Any]:
        work, started = OfflineWork(**intent["work"]), time.monotonic()
        try:
            ids = [await asyncio.to_thread(self._ability("start_offline"), node, intent["tag"],
                                           work) for node in intent["nodes"]]
            await wait_running(self.platform, intent["tag"], float(intent["start_timeout"]))
        except Exception as exc:
            with contextlib.suppress(Exception):  # leave nothing; revert runs again anyway
                await asyncio.to_thread(self.platform.stop_offline, intent["tag"])
            if isinstance(exc, (FaultError, PlatformError)):
                raise
            raise FaultError(f"could not start offline work: {exc}",
                             hint="see the lab's logs/ for the offline process") from exc
        isolation = await asyncio.to_thread(self.platform.offline_isolation)
        return {"processes": ids, "nodes": intent["nodes"], "work": work.work,
                "isolation": isolation if work.isolation else "none (same weight as online)",
                "start_ms": round((time.monotonic() - started) * 1e3, 1)}

    async def measure_effect(self, intent: Intent) -> dict[str, Any]:
        """The offline CPU actually taken (cores) and, for the job, its progress until it is
        done or its window ends: the time-sharing promise, measured."""
        found = await asyncio.to_thread(self.platform.offline_processes, intent["tag"])
        facts: dict[str, Any] = {"offline_cores": await offline_cores(self.platform, found),
                                 "cgroups": {p.id: p.cgroups for p in found}}
        if intent["work"]["work"] == "reconciliation":
            facts.update(await watch_progress(self.platform, intent["tag"],
                                              float(intent["work"]["window"])))
        return facts

    async def revert(self, intent: Intent) -> dict[str, Any]:
        facts: dict[str, Any] = {}
        if intent.get("finish"):
            facts.update(await watch_progress(self.platform, intent["tag"],
                                              float(intent["work"]["window"])))
        stop = self._ability("stop_offline")
        facts["stopped"] = await asyncio.to_thread(stop, intent["tag"])
        return facts

    async def preflight(self, intent: Intent) -> list[str]:
        if getattr(self.platform, "start_offline", None) is None:
            return [f"the {self.platform.name} platform cannot run co-located offline work"]
        found = await asyncio.to_thread(self.platform.offline_residue, intent["tag"])
        return [f"before injecting: {r}" for r in found]

    async def verify_reverted(self, intent: Intent) -> list[str]:
        return list(await asyncio.to_thread(self._ability("offline_residue"), intent["tag"]))

    def _ability(self, name: str) -> Any:
        operation = getattr(self.platform, name, None)
        if operation is None:
            raise unsupported(self.platform.name, "run co-located offline work",
                              hint="use the local lab, or a platform offering " + name)
        return operation


def resolve_nodes(platform: Any, target: dict[str, Any], rng: random.Random) -> list[str]:
    """{node: PATTERN} ('*', 'node-[12]') -> every matching node; otherwise one node, as
    node-loss resolves it ({node: NAME}, {node: any}, {role: ROLE})."""
    pattern = str(target.get("node", ""))
    if len(target) == 1 and any(c in pattern for c in "*?["):
        names = sorted(n for n in (n.name for n in platform.nodes()) if fnmatch(n, pattern))
        if not names:
            raise FaultError(f"no node matches '{pattern}'", hint="see `chaoskit lab status`")
        return names
    return [resolve_node(platform, target or {"role": "gateway"}, rng)]


async def wait_running(platform: Any, tag: str, timeout: float) -> None:
    """Every offline process alive, and the job's /metrics answering (it reports progress)."""
    deadline = time.monotonic() + timeout
    while True:
        found = await asyncio.to_thread(platform.offline_processes, tag)
        dead = [p.id for p in found if not p.alive]
        if dead:
            raise FaultError(f"offline process(es) {', '.join(dead)} exited at start",
                             hint="see its log under the lab's logs/ directory")
        progress = await read_progress(found)
        if all(progress.get(p.id) is not None for p in found if p.metrics_url):
            return
        if time.monotonic() > deadline:
            raise FaultError(f"offline work did not report progress within {timeout:g}s",
                             hint="raise `start_timeout:` on a slow machine")
        await asyncio.sleep(POLL)


async def read_progress(found: list[OfflineProcess]) -> dict[str, float | None]:
    """Process id -> payments_offline_progress_ratio (None: no answer)."""
    async with httpx.AsyncClient(timeout=1.0, trust_env=False) as http:
        pages = await asyncio.gather(*(_scrape(http, p.metrics_url) for p in found
                                       if p.metrics_url))
    return dict(zip([p.id for p in found if p.metrics_url], pages, strict=True))


async def _scrape(http: httpx.AsyncClient, url: str) -> float | None:
    try:
        response = await http.get(url)
    except httpx.HTTPError:
        return None
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == PROGRESS:
                return float(sample.value)
    return None


async def watch_progress(platform: Any, tag: str, window: float) -> dict[str, Any]:
    """Follow the job until done, its window over, or it is gone; did it make its window?"""
    last: dict[str, float | None] = {}
    timeline: list[tuple[float, float]] = []  # (seconds since its start, mean progress)
    while True:
        found = await asyncio.to_thread(platform.offline_processes, tag)
        jobs = [p for p in found if p.metrics_url]
        if not jobs:
            return {"finished": None, "progress": last}
        now = await read_progress(jobs)
        last.update({k: v for k, v in now.items() if v is not None})
        _note(timeline, jobs, last)
        done = all((last.get(p.id) or 0.0) >= 1.0 for p in jobs)
        deadline = min(p.started_at or time.time() for p in jobs) + window
        if done or time.time() > deadline or not any(p.alive for p in jobs):
            return {"finished": done, "finished_in_window": done and time.time() <= deadline,
                    "progress": last, "window_left_s": round(deadline - time.time(), 2),
                    "timeline": timeline}
        await asyncio.sleep(POLL)


def _note(timeline: list[tuple[float, float]], jobs: list[OfflineProcess],
          last: dict[str, float | None]) -> None:
    """A progress point every TIMELINE_S seconds: how the batch yielded, then caught up."""
    since = time.time() - min(p.started_at or time.time() for p in jobs)
    if not timeline or since - timeline[-1][0] >= TIMELINE_S:
        mean = sum(last.get(p.id) or 0.0 for p in jobs) / len(jobs)
        timeline.append((round(since, 1), round(mean, 3)))


async def offline_cores(platform: Any, found: list[OfflineProcess]) -> float:
    """Cores the offline processes use, over SAMPLE_S seconds."""
    async def total() -> float:
        return sum([await asyncio.to_thread(platform.process_cpu_seconds, p.id) for p in found])
    before, started = await total(), time.monotonic()
    await asyncio.sleep(SAMPLE_S)
    return round((await total() - before) / (time.monotonic() - started), 3)
