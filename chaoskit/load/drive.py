"""The load engine entry point: drive a LoadSpec against a base URL, summarize what happened."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable
from typing import Any

from chaoskit.errors import LoadError
from chaoskit.load.curve import primitives_to_json
from chaoskit.load.fleet import WorkerFleet
from chaoskit.load.plan import WINDOW, Endpoint, LoadPlan, worker_count
from chaoskit.load.shapes import curve_of
from chaoskit.load.summary import LoadSummary, WindowMerger, summarize
from chaoskit.spec.load import LoadSpec
from chaoskit.spec.system import FlowSpec

START_MARGIN = 0.05   # seconds between "go" and t0, so every worker starts on the same tick
END_MARGIN = 5.0      # beyond run + timeout, the parent stops waiting and kills the workers


def plan_for(spec: LoadSpec, base_url: str, flows: dict[str, FlowSpec], *, seed: int,
             ack_path: str | None, ack_captures: list[str] | None = None) -> LoadPlan:
    """The worker plan for a spec: exact curve, the system's flows (the mix's, and those they
    fall back on) in a fixed order, per-worker caps. `ack_captures`: the captured values kept
    with each acknowledged request (None: all of them)."""
    if not flows:
        raise LoadError("the load has no flows to send",
                        hint="declare the system's requests under `system: flows:`")
    curve = curve_of(spec, seed)
    workers = worker_count(spec.workers, curve.peak_bound())
    mix = spec.mix or {name: 1.0 / len(flows) for name in flows}
    names = [n for n in flows if mix.get(n, 0.0) > 0.0 or _fallback(n, mix, flows)]
    endpoint = Endpoint.parse(base_url)
    requests = [{"name": n, **flows[n].model_dump(by_alias=True, mode="json")} for n in names]
    return LoadPlan(
        primitives=primitives_to_json(curve), time_scale=spec.time_scale,
        run_seconds=spec.run_seconds(), flows=names,
        weights=[mix.get(n, 0.0) for n in names], requests=requests,
        seed=seed, workers=workers, worker=0, host=endpoint.host, port=endpoint.port,
        prefix=endpoint.prefix, timeout=spec.timeout, late_after=spec.late_after,
        max_in_flight=-(-spec.max_in_flight // workers), nonce=secrets.token_hex(6),
        ack_path=ack_path, retries=spec.retries, retry_after=spec.retry_after,
        scheme=endpoint.scheme, tls_verify=spec.tls.verify, tls_ca_file=spec.tls.ca_file,
        behind_after=spec.behind_after, ack_captures=ack_captures)


def _fallback(name: str, mix: dict[str, float], flows: dict[str, FlowSpec]) -> bool:
    """Whether a flow out of the mix is sent in place of one in it (`otherwise`)."""
    return any(flows[m].otherwise == name for m in mix if m in flows and mix[m] > 0)


async def drive(spec: LoadSpec, base_url: str, flows: dict[str, FlowSpec], *, seed: int,
                stop: asyncio.Event, on_window: Callable[[dict], None],
                ack_path: str | None, keep_series: bool = True,
                on_second: Callable[[dict], None] | None = None,
                ack_captures: list[str] | None = None) -> LoadSummary:
    """Run the spec's open-model load against `base_url` until its duration or `stop`.

    `on_window` gets a merged dict every ~100 ms in this event loop; `on_second`, if given, one
    per second of load (the same fields added up, percentiles over the second, `width`).
    `keep_series=False` keeps no window in the summary: memory stays flat over hours. Bounded:
    workers that overrun the run, its timeout and a margin are killed.
    """
    plan = plan_for(spec, base_url, flows, seed=seed, ack_path=ack_path,
                    ack_captures=ack_captures)
    merger = WindowMerger(plan.workers, plan.flows, on_window, keep_series=keep_series,
                          on_span=on_second, span=round(1 / WINDOW))
    done: list[dict[str, Any]] = []
    fleet = await WorkerFleet.start(plan)
    watcher = asyncio.create_task(_stop_on(stop, fleet))
    t0: float | None = None
    try:
        if not stop.is_set():
            t0 = time.monotonic() + START_MARGIN
            fleet.go(t0)
            deadline = t0 + plan.run_seconds + plan.timeout + END_MARGIN
            await _collect(fleet, merger, done, deadline)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await fleet.close()
    merger.close()
    return summarize(merger, done, workers=plan.workers, run_seconds=_ran(plan, merger),
                     started_at=t0)


async def _stop_on(stop: asyncio.Event, fleet: WorkerFleet) -> None:
    await stop.wait()
    fleet.stop()


async def _collect(fleet: WorkerFleet, merger: WindowMerger, done: list[dict[str, Any]],
                   deadline: float) -> None:
    try:
        async for worker, message in fleet.messages(deadline):
            if message is None:
                merger.worker_done(worker)
                if not any(d["worker"] == worker for d in done):
                    raise fleet.crashed(worker)
            elif message["type"] == "window":
                merger.add(worker, message)
            elif message["type"] == "done":
                done.append({**message, "worker": worker})
    except TimeoutError:
        raise LoadError("load workers did not finish within the run, its timeout and "
                        f"{END_MARGIN:g}s; they were stopped",
                        hint="the machine may be overloaded: lower the rate or add workers"
                        ) from None


def _ran(plan: LoadPlan, merger: WindowMerger) -> float:
    """Run seconds actually driven: the planned length, or less when stopped early."""
    return min(plan.run_seconds, merger.last_sending or plan.run_seconds)
