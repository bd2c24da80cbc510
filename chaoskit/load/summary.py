"""Merging worker reports: per-100 ms windows across workers, and the run's LoadSummary."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from chaoskit.load.plan import WINDOW
from chaoskit.load.recorder import fill, highest_at_index, new_histogram, percentiles_us

_COUNTS = ("intended", "sent", "ok", "errors", "dropped", "capped", "starved")
_PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p99.9": 99.9}


def merged_counts(reports: list[list[list[int]]]) -> dict[int, int]:
    """The workers' [index, count] bucket pairs added up."""
    counts: dict[int, int] = {}
    for pairs in reports:
        for index, count in pairs:
            counts[index] = counts.get(index, 0) + count
    return counts


def latency_ms(counts: dict[int, int]) -> dict[str, float | None]:
    """Percentiles and max of microsecond bucket counts, in milliseconds (None when empty)."""
    if not counts:
        return {name: None for name in (*_PERCENTILES, "max")}
    values = percentiles_us(counts, [*_PERCENTILES.values(), 100.0])
    result: dict[str, float | None] = {n: values[p] / 1000.0 for n, p in _PERCENTILES.items()}
    result["max"] = highest_at_index(max(counts)) / 1000.0
    return result


def histogram(counts: dict[int, int]) -> HdrHistogram:
    return fill(new_histogram(), counts.items())


@dataclass
class LoadSummary:
    """A run's totals, latency (from intended send times) and its 100 ms series."""

    intended: int
    sent: int
    ok: int
    errors: int
    late: int
    behind: int  # arrivals chaoskit did not send on time: its own shortfall, not the system's
    capped: int  # of those, dropped unsent at the in-flight cap
    starved: int  # not sent: the flow needed a captured value none had, and had no `otherwise`
    dropped: int
    timeouts: int
    substituted: dict[str, int]  # arrivals of a flow sent as its `otherwise` flow
    acknowledged: int
    by_flow: dict[str, dict[str, int]]
    latency_ms: dict[str, float | None]
    lag_ms: dict[str, float | None]
    histogram: str          # merged HDR histogram of latency in microseconds, base64
    lag_histogram: str      # merged HDR histogram of schedule lag in microseconds, base64
    workers: int
    connections: int
    run_seconds: float
    cpu_seconds: float      # CPU time the workers used while running (user + system)
    started_at: float | None  # time.monotonic() of run second 0 (None: stopped before start)
    series: list[dict[str, Any]] = field(default_factory=list)

    def shortfall(self) -> int:
        """Arrivals chaoskit itself did not send on time (behind its schedule, or capped)."""
        return self.behind

    def achieved_rate(self) -> float:
        return self.sent / self.run_seconds if self.run_seconds else 0.0

    def per_second(self) -> list[tuple[int, int]]:
        """(intended, sent) in each whole run second."""
        seconds: dict[int, list[int]] = {}
        for window in self.series:
            slot = seconds.setdefault(round(window["t"] / WINDOW - 1) // 10, [0, 0])
            slot[0] += window["intended"]
            slot[1] += window["sent"]
        return [(i, s) for _, (i, s) in sorted(seconds.items())]


class WindowMerger:
    """Joins one window's reports from all live workers, then hands the merged dict on."""

    def __init__(self, workers: int, flows: list[str], on_window: Callable[[dict], None]) -> None:
        self._alive = set(range(workers))
        self._flows = flows
        self._on_window = on_window
        self._pending: dict[int, dict[int, dict[str, Any]]] = {}
        self.series: list[dict[str, Any]] = []

    def add(self, worker: int, message: dict[str, Any]) -> None:
        self._pending.setdefault(int(message["w"]), {})[worker] = message
        self._flush(final=False)

    def worker_done(self, worker: int) -> None:
        self._alive.discard(worker)
        self._flush(final=False)

    def close(self) -> None:
        self._flush(final=True)

    def _flush(self, *, final: bool) -> None:
        for w in sorted(self._pending):
            reports = self._pending[w]
            if not final and not self._alive <= set(reports):
                return  # windows go out in order: wait for the slowest worker
            del self._pending[w]
            window = self._merge(w, list(reports.values()))
            self.series.append(window)
            self._on_window(window)

    def _merge(self, w: int, reports: list[dict[str, Any]]) -> dict[str, Any]:
        by_flow = {flow: {name: sum(r[name][i] for r in reports) for name in _COUNTS}
                   for i, flow in enumerate(self._flows)}
        window: dict[str, Any] = {"t": round((w + 1) * WINDOW, 6)}
        for name in _COUNTS:
            window[name] = sum(f[name] for f in by_flow.values())
        for name in ("late", "behind", "timeouts"):
            window[name] = sum(r.get(name, 0) for r in reports)
        window["retries"] = sum(r.get("retries", 0) for r in reports)
        lat = latency_ms(merged_counts([r["latency"] for r in reports]))
        window.update(p50_ms=lat["p50"], p99_ms=lat["p99"], max_ms=lat["max"], by_flow=by_flow)
        return window


def summarize(merger: WindowMerger, done: list[dict[str, Any]], *, workers: int,
              run_seconds: float, started_at: float | None) -> LoadSummary:
    """The run's summary from the merged series and each worker's final report."""
    series = merger.series
    totals = {name: sum(w.get(name, 0) for w in series)
              for name in (*_COUNTS, "late", "behind", "timeouts")}
    flows = series[0]["by_flow"].keys() if series else []
    by_flow = {f: {n: sum(w["by_flow"][f][n] for w in series) for n in _COUNTS} for f in flows}
    latency = merged_counts([d["latency"] for d in done])
    lag = merged_counts([d["lag"] for d in done])
    return LoadSummary(
        **totals, substituted=_substituted(done),
        acknowledged=sum(d["acks"] for d in done), by_flow=by_flow,
        latency_ms=latency_ms(latency), lag_ms=latency_ms(lag),
        histogram=histogram(latency).encode().decode(),
        lag_histogram=histogram(lag).encode().decode(),
        workers=workers, connections=sum(d["connections"] for d in done),
        run_seconds=run_seconds, cpu_seconds=sum(d["cpu_seconds"] for d in done),
        started_at=started_at, series=series)


def _substituted(done: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for report in done:
        for flow, count in (report.get("substituted") or {}).items():
            counts[flow] = counts.get(flow, 0) + int(count)
    return counts
