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
revert at the fault's end stops it earlier. The driver asks its platform for the `Colocation`
ability, so a cluster or a container platform offers the same by implementing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import asdict
from fnmatch import fnmatch
from typing import Any, ClassVar, Literal

import httpx
from pydantic import ByteSize, Field, model_validator

from chaoskit.errors import ChaoskitError, FaultError
from chaoskit.exposition import scrape_totals
from chaoskit.faults.base import FaultConfig, Intent, Touch, owner_tag
from chaoskit.faults.node_loss import resolve_node
from chaoskit.platforms.abilities import (
    Colocation,
    Need,
    OfflineProcess,
    OfflineWork,
    Platform,
    ProcessCpu,
    require,
)
from chaoskit.platforms.calls import blocking
from chaoskit.spec.units import PositiveDuration

PROGRESS = "payments_offline_progress_ratio"
POLL = 0.25
SAMPLE_S = 3.0  # how long measure_effect watches the offline CPU use
TIMELINE_S = 5.0


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
    destructive: ClassVar[bool] = True

    def __init__(self, platform: Platform, run: str = "adhoc") -> None:
        self.platform = platform
        self.run = run

    def needs(self, config: FaultConfig) -> list[Need]:
        return [Need(Colocation, "run co-located offline work")]

    @property
    def _colo(self) -> Colocation:
        return require(self.platform, Colocation, "run co-located offline work")

    def plan(self, name: str, target: dict[str, Any], config: FaultConfig,
             rng: random.Random) -> Intent:
        assert isinstance(config, ColocateConfig)
        work = OfflineWork(config.work, config.isolation, config.lifetime, config.cpu,
                           int(config.memory), config.units, config.rounds, config.window)
        # the tag names the processes and groups: the run's owner tag keeps two runs apart
        return {"fault": name, "type": self.type_name, "owner": self.run,
                "tag": f"{name}-{owner_tag(self.run)}",
                "nodes": resolve_nodes(self.platform, target, rng), "target": dict(target),
                "work": asdict(work), "finish": config.finish,
                "start_timeout": config.start_timeout,
                "revert_timeout": config.window + 60.0 if config.finish else 60.0}

    def touches(self, intent: Intent) -> list[Touch]:
        return [Touch("node", n, self.platform.identity()) for n in intent["nodes"]]

    async def inject(self, intent: Intent) -> dict[str, Any]:
        work, started = OfflineWork(**intent["work"]), time.monotonic()
        colo = self._colo
        try:
            ids = [await blocking(colo.start_offline, node, intent["tag"], work)
                   for node in intent["nodes"]]
            await wait_running(colo, intent["tag"], float(intent["start_timeout"]))
        except Exception as exc:
            with contextlib.suppress(Exception):  # leave nothing; revert runs again anyway
                await blocking(colo.stop_offline, intent["tag"])
            if isinstance(exc, ChaoskitError):
                raise
            raise FaultError(f"could not start offline work: {exc}",
                             hint="see the lab's logs/ for the offline process") from exc
        isolation = await blocking(colo.offline_isolation)
        return {"processes": ids, "nodes": intent["nodes"], "work": work.work,
                "isolation": isolation if work.isolation else "none (same weight as online)",
                "start_ms": round((time.monotonic() - started) * 1e3, 1)}

    async def measure_effect(self, intent: Intent) -> dict[str, Any]:
        """The offline CPU actually taken (cores) and, for the job, its progress until it is
        done or its window ends: the time-sharing promise, measured."""
        found = await blocking(self._colo.offline_processes, intent["tag"])
        facts: dict[str, Any] = {"cgroups": {p.id: p.cgroups for p in found}}
        if isinstance(self.platform, ProcessCpu):
            facts["offline_cores"] = await offline_cores(self.platform, found)
        if intent["work"]["work"] == "reconciliation":
            facts.update(await watch_progress(self._colo, intent["tag"],
                                              float(intent["work"]["window"])))
        return facts

    async def revert(self, intent: Intent) -> dict[str, Any]:
        facts: dict[str, Any] = {}
        if intent.get("finish"):
            facts.update(await watch_progress(self._colo, intent["tag"],
                                              float(intent["work"]["window"])))
        facts["stopped"] = await blocking(self._colo.stop_offline, intent["tag"])
        return facts

    async def preflight(self, intent: Intent) -> list[str]:
        found = await blocking(self._colo.offline_residue, intent["tag"])
        return [f"before injecting: {r}" for r in found]

    async def verify_reverted(self, intent: Intent) -> list[str]:
        return list(await blocking(self._colo.offline_residue, intent["tag"]))


def resolve_nodes(platform: Platform, target: dict[str, Any],
                  rng: random.Random) -> list[str]:
    """{node: PATTERN} ('*', 'node-[12]') -> every matching node; otherwise one node, as
    node-loss resolves it ({node: NAME}, {node: any}, {role: ROLE})."""
    pattern = str(target.get("node", ""))
    if len(target) == 1 and any(c in pattern for c in "*?["):
        names = sorted(n for n in (n.name for n in platform.nodes()) if fnmatch(n, pattern))
        if not names:
            raise FaultError(f"no node matches '{pattern}'", hint="see `chaoskit lab status`")
        return names
    if not target:
        raise FaultError("colocate needs a target: the nodes the offline work shares",
                         hint='use {node: "*"}, {node: NAME}, {node: any} or {role: ROLE}')
    return [resolve_node(platform, target, rng)]


async def wait_running(colo: Colocation, tag: str, timeout: float) -> None:
    """Every offline process alive, and the job's /metrics answering (it reports progress)."""
    deadline = time.monotonic() + timeout
    while True:
        found = await blocking(colo.offline_processes, tag)
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
    found = await scrape_totals(http, url)
    return None if found is None else found.get(PROGRESS)


async def watch_progress(colo: Colocation, tag: str, window: float) -> dict[str, Any]:
    """Follow the job until done, its window over, or it is gone; did it make its window?"""
    last: dict[str, float | None] = {}
    timeline: list[tuple[float, float]] = []  # (seconds since its start, mean progress)
    while True:
        found = await blocking(colo.offline_processes, tag)
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


async def offline_cores(platform: ProcessCpu, found: list[OfflineProcess]) -> float:
    """Cores the offline processes use, over SAMPLE_S seconds."""
    async def total() -> float:
        return sum([await blocking(platform.process_cpu_seconds, p.id) for p in found])
    before, started = await total(), time.monotonic()
    await asyncio.sleep(SAMPLE_S)
    return round((await total() - before) / (time.monotonic() - started), 3)
