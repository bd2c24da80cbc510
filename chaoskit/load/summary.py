"""Merging worker reports: per-100 ms windows across workers, and the run's LoadSummary."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from chaoskit.load.plan import WINDOW
from chaoskit.load.recorder import fill, highest_at_index, new_histogram, percentiles_us

_COUNTS = ("intended", "sent", "ok", "errors", "dropped", "capped", "starved")
_EVENTS = ("late", "behind", "timeouts", "retries")  # counted per window, not per flow
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
    """A run's totals, latency (from intended send times), the engine's account of its own
    stalls, and (when kept) its 100 ms series."""

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
    engine: dict[str, Any] = field(default_factory=dict)  # where lag came from (engine_report)
    series: list[dict[str, Any]] = field(default_factory=list)  # 100 ms windows, if kept

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
    """Joins one window's reports from all live workers, then hands the merged dict on.

    It keeps running totals, so a run of hours costs no more memory than a minute: the series of
    every window is kept only when asked (`keep_series`, for tests and benches). `on_span`, when
    given, gets one dict per `span` windows (the journal's per-second load records): counts
    added up, latency percentiles over all of the span's completions (exact, not averaged).
    """

    def __init__(self, workers: int, flows: list[str], on_window: Callable[[dict], None], *,
                 keep_series: bool = True, on_span: Callable[[dict], None] | None = None,
                 span: int = 10) -> None:
        self._alive = set(range(workers))
        self._flows = flows
        self._on_window = on_window
        self._pending: dict[int, dict[int, dict[str, Any]]] = {}
        self._keep = keep_series
        self.series: list[dict[str, Any]] = []
        self.totals: dict[str, int] = dict.fromkeys((*_COUNTS, *_EVENTS), 0)
        self.by_flow = {f: dict.fromkeys(_COUNTS, 0) for f in flows}
        self.windows = 0
        self.last_sending = 0.0  # load time of the end of the last window with arrivals
        self._spans = SpanFolder(flows, span, on_span) if on_span is not None else None

    def add(self, worker: int, message: dict[str, Any]) -> None:
        self._pending.setdefault(int(message["w"]), {})[worker] = message
        self._flush(final=False)

    def worker_done(self, worker: int) -> None:
        self._alive.discard(worker)
        self._flush(final=False)

    def close(self) -> None:
        self._flush(final=True)
        if self._spans is not None:
            self._spans.close()

    def _flush(self, *, final: bool) -> None:
        for w in sorted(self._pending):
            reports = self._pending[w]
            if not final and not self._alive <= set(reports):
                return  # windows go out in order: wait for the slowest worker
            del self._pending[w]
            counts = merged_counts([r["latency"] for r in reports.values()])
            window = self._merge(w, list(reports.values()), counts)
            self._count(window)
            if self._keep:
                self.series.append(window)
            self._on_window(window)
            if self._spans is not None:
                self._spans.add(window, counts)

    def _count(self, window: dict[str, Any]) -> None:
        self.windows += 1
        for name in self.totals:
            self.totals[name] += window[name]
        for flow, counts in window["by_flow"].items():
            mine = self.by_flow[flow]
            for name in _COUNTS:
                mine[name] += counts[name]
        if window["intended"]:
            self.last_sending = window["t"]

    def _merge(self, w: int, reports: list[dict[str, Any]],
               counts: dict[int, int]) -> dict[str, Any]:
        by_flow = {flow: {name: sum(r[name][i] for r in reports) for name in _COUNTS}
                   for i, flow in enumerate(self._flows)}
        window: dict[str, Any] = {"t": round((w + 1) * WINDOW, 6)}
        for name in _COUNTS:
            window[name] = sum(f[name] for f in by_flow.values())
        for name in _EVENTS:
            window[name] = sum(r.get(name, 0) for r in reports)
        lat = latency_ms(counts)
        window.update(p50_ms=lat["p50"], p99_ms=lat["p99"], max_ms=lat["max"], by_flow=by_flow)
        return window


class SpanFolder:
    """Merged windows folded `span` at a time into one (the journal's per-second records): the
    counts added up, the percentiles over the span's completions, `width` its length in s."""

    def __init__(self, flows: list[str], span: int, emit: Callable[[dict], None]) -> None:
        self._flows = flows
        self._span = span
        self._emit = emit
        self._windows: list[dict[str, Any]] = []
        self._counts: dict[int, int] = {}

    def add(self, window: dict[str, Any], counts: dict[int, int]) -> None:
        self._windows.append(window)
        for index, count in counts.items():
            self._counts[index] = self._counts.get(index, 0) + count
        if len(self._windows) >= self._span:
            self.close()

    def close(self) -> None:
        """Emit what is folded so far (the last span of a run may be short)."""
        windows = self._windows
        if not windows:
            return
        span: dict[str, Any] = {"t": windows[-1]["t"], "width": round(len(windows) * WINDOW, 6)}
        for name in (*_COUNTS, *_EVENTS):
            span[name] = sum(w[name] for w in windows)
        lat = latency_ms(self._counts)
        span.update(p50_ms=lat["p50"], p99_ms=lat["p99"], max_ms=lat["max"],
                    by_flow={f: {n: sum(w["by_flow"][f][n] for w in windows) for n in _COUNTS}
                             for f in self._flows})
        self._windows, self._counts = [], {}
        self._emit(span)


def summarize(merger: WindowMerger, done: list[dict[str, Any]], *, workers: int,
              run_seconds: float, started_at: float | None) -> LoadSummary:
    """The run's summary from the merger's totals and each worker's final report."""
    totals = {name: merger.totals[name] for name in (*_COUNTS, "late", "behind", "timeouts")}
    latency = merged_counts([d["latency"] for d in done])
    lag = merged_counts([d["lag"] for d in done])
    return LoadSummary(
        **totals, substituted=_substituted(done),
        acknowledged=sum(d["acks"] for d in done),
        by_flow={f: dict(c) for f, c in merger.by_flow.items()} if merger.windows else {},
        latency_ms=latency_ms(latency), lag_ms=latency_ms(lag),
        histogram=histogram(latency).encode().decode(),
        lag_histogram=histogram(lag).encode().decode(),
        workers=workers, connections=sum(d["connections"] for d in done),
        run_seconds=run_seconds, cpu_seconds=sum(d["cpu_seconds"] for d in done),
        started_at=started_at, engine=engine_report(done), series=merger.series)


def engine_report(done: list[dict[str, Any]]) -> dict[str, Any]:
    """The workers' own account of their stalls (chaoskit.load.stalls), merged: how late their
    loops woke for due arrivals, arrivals that waited for a connection, garbage collections,
    time spent waiting for a CPU, involuntary switches, the longest window report."""
    stalls = [d["engine"] for d in done if d.get("engine")]
    if not stalls:
        return {}
    waits = [s["cpu_wait"] for s in stalls if s.get("cpu_wait") is not None]
    return {"wake_ms": latency_ms(merged_counts([s["wake"] for s in stalls])),
            "queued": sum(s["queued"] for s in stalls),
            "gc": {"count": sum(s["gc"]["count"] for s in stalls),
                   "seconds": round(sum(s["gc"]["seconds"] for s in stalls), 6),
                   "max_ms": round(max(s["gc"]["max"] for s in stalls) * 1000, 3)},
            "cpu_wait_s": round(sum(waits), 6) if waits else None,
            "preempted": sum(s["preempted"] for s in stalls),
            "window_max_ms": round(max(s["window_max"] for s in stalls) * 1000, 3)}


def _substituted(done: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for report in done:
        for flow, count in (report.get("substituted") or {}).items():
            counts[flow] = counts.get(flow, 0) + int(count)
    return counts
