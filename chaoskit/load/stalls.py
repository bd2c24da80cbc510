"""Where a worker's schedule lag comes from: its own measurements of itself, sent with `done`.

Schedule lag (actual minus intended send time) has a few causes, and each one is measured here
so that a late send can be told apart from the others, and nothing is hidden:

    wake        how late the loop reached the first due arrival each time it woke up for one:
                timer granularity, and the loop busy with responses or window reports
    queued      arrivals that found no free connection and waited for one (the system is slow
                to answer, or the pool was still growing)
    gc          the interpreter's garbage collections: how many, their total and longest pause
    cpu_wait    time the worker was ready to run but the kernel ran something else (run queue
                delay from /proc/<pid>/schedstat): other processes on its CPU
    preempted   involuntary context switches
    window_max  the longest 100 ms window report (dispatch of what is due, expiry, emit)

All of it is cheap: a callback per collection, a bucket count per wake-up, two reads per run.
"""

from __future__ import annotations

import gc
import resource
import time
from typing import Any

from chaoskit.load.recorder import BucketCounts

SCHEDSTAT = "/proc/self/schedstat"


def run_queue_seconds() -> float | None:
    """Seconds this process has waited on a run queue since it started (None off Linux)."""
    try:
        with open(SCHEDSTAT, "rb") as file:
            return int(file.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


class StallWatch:
    """One worker's account of its own stalls over a run."""

    def __init__(self) -> None:
        self.wake = BucketCounts()
        self.queued = 0
        self.window_max = 0.0
        self.gc_count = 0
        self.gc_seconds = 0.0
        self.gc_max = 0.0
        self._gc_started = 0.0
        self._queue_at_start: float | None = None
        self._switches_at_start = 0
        self._watching = False

    def start(self) -> None:
        self._queue_at_start = run_queue_seconds()
        self._switches_at_start = resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw
        if not self._watching:
            gc.callbacks.append(self._on_gc)
            self._watching = True

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
            return
        pause = time.perf_counter() - self._gc_started
        self.gc_count += 1
        self.gc_seconds += pause
        self.gc_max = max(self.gc_max, pause)

    def window(self, seconds: float) -> None:
        self.window_max = max(self.window_max, seconds)

    def report(self) -> dict[str, Any]:
        """The run's account (JSON-able); stops watching collections."""
        if self._watching:
            gc.callbacks.remove(self._on_gc)
            self._watching = False
        now = run_queue_seconds()
        waited = (None if now is None or self._queue_at_start is None
                  else round(now - self._queue_at_start, 6))
        switches = resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw - self._switches_at_start
        return {"wake": self.wake.pairs(), "queued": self.queued,
                "gc": {"count": self.gc_count, "seconds": round(self.gc_seconds, 6),
                       "max": round(self.gc_max, 6)},
                "cpu_wait": waited, "preempted": switches,
                "window_max": round(self.window_max, 6)}
