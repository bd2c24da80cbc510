"""A load worker process: `python -m chaoskit.load.worker_process`, driven over stdin.

Protocol (one JSON object or word per line). Parent -> worker: the LoadPlan, then `go <t0>`
(monotonic start time), optionally `stop`. Worker -> parent: `ready`, one `window` per 100 ms,
then `done` with the run's histograms. EOF on stdin means the parent is gone: stop at once.
"""

from __future__ import annotations

import asyncio
import gc
import json
import math
import os
import resource
import sys
import time

import uvloop

from chaoskit.load.open_model import OpenModelRun
from chaoskit.load.plan import LoadPlan

# Beyond the run, its timeout and this margin, a worker exits whatever happens (parent gone...).
HARD_MARGIN = 10.0
# Warm pool: connections for 8 ms of round trips at the peak rate. With fewer, a burst (after a
# window report, a moment off the CPU) finds them all busy and arrivals queue for one: on one
# core under SCHED_FIFO, at 28,000/s, 1 per 1000/s queued up to 43,000 arrivals a 5 s run (lag
# p99 13-230 ms) where 4 queued none (1.6-2.1 ms); at 32,000/s 4 queued 8-13,000 (69-113 ms),
# 8 2-3,000 (17-20 ms). The pool still grows when the system answers slowly.
CONNECTIONS_PER_KRPS = 8.0
MAX_WARM = 1024


def _emit(message: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(message, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def _raise_fd_limit() -> None:
    """Each connection is a descriptor; the default soft limit (1024) is too low for a big pool."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class _Commands:
    """Lines from the parent on stdin, read without blocking the loop."""

    def __init__(self, run: OpenModelRun) -> None:
        self._run = run
        self._buffer = b""
        self.go: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.stopped = False

    def readable(self) -> None:
        data = os.read(sys.stdin.fileno(), 4096)
        if not data:
            self._stop()
            return
        self._buffer += data
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            self._handle(line.decode().split())

    def _handle(self, words: list[str]) -> None:
        if words and words[0] == "go" and not self.go.done():
            self.go.set_result(float(words[1]))
        elif words and words[0] == "stop":
            self._stop()

    def _stop(self) -> None:
        self.stopped = True
        if not self.go.done():
            self.go.set_result(math.nan)
        self._run.stop()


async def serve(plan: LoadPlan) -> None:
    loop = asyncio.get_running_loop()
    run = OpenModelRun(plan, _emit)
    peak = plan.curve().peak_bound() / plan.workers
    warmed = await run.warm(max(4, min(MAX_WARM, math.ceil(peak / 1000 * CONNECTIONS_PER_KRPS))))
    commands = _Commands(run)
    loop.add_reader(sys.stdin.fileno(), commands.readable)
    _emit({"type": "ready", "worker": plan.worker, "connections": warmed})
    t0 = await commands.go
    if math.isnan(t0):
        run.stop()
        return
    loop.call_later(t0 - time.monotonic() + plan.run_seconds + plan.timeout + HARD_MARGIN,
                    os._exit, 3)
    gc.freeze()  # the pool and plan are long-lived: keep them out of every collection
    run.start(t0)
    if commands.stopped:  # "stop" came in the same read as "go"
        run.stop()
    await run.finished


def main() -> None:
    plan = LoadPlan.from_json(sys.stdin.readline())
    _raise_fd_limit()
    uvloop.run(serve(plan))


if __name__ == "__main__":
    main()
