"""The worker processes of one load run: spawn, start together, stop, and always reap."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from chaoskit.errors import LoadError
from chaoskit.load.plan import LoadPlan

READY_TIMEOUT = 20.0
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


def _child_env() -> dict[str, str]:
    """Workers import chaoskit from where this process did, installed or not."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
    return env


class WorkerFleet:
    """N processes, each running `chaoskit.load.worker_process` with its share of the schedule."""

    def __init__(self, procs: list[asyncio.subprocess.Process]) -> None:
        self._procs = procs
        self._queue: asyncio.Queue[tuple[int, dict[str, Any] | None]] = asyncio.Queue()
        self._stderr: list[bytearray] = [bytearray() for _ in procs]
        self._readers: list[asyncio.Task[None]] = []

    @classmethod
    async def start(cls, plan: LoadPlan) -> WorkerFleet:
        procs = []
        for _ in range(plan.workers):
            procs.append(await asyncio.create_subprocess_exec(
                sys.executable, "-m", "chaoskit.load.worker_process", env=_child_env(),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, limit=16 * 1024 * 1024))
        fleet = cls(procs)
        fleet._listen()
        for worker, proc in enumerate(procs):
            assert proc.stdin is not None
            proc.stdin.write(plan.for_worker(worker).to_json().encode() + b"\n")
        await fleet._await_ready()
        return fleet

    def _listen(self) -> None:
        for i, proc in enumerate(self._procs):
            self._readers.append(asyncio.create_task(self._read(i, proc)))
            self._readers.append(asyncio.create_task(self._read_stderr(i, proc)))

    async def _read(self, i: int, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            await self._queue.put((i, json.loads(line)))
        await self._queue.put((i, None))

    async def _read_stderr(self, i: int, proc: asyncio.subprocess.Process) -> None:
        assert proc.stderr is not None
        async for line in proc.stderr:
            self._stderr[i] += line[:4096]
            del self._stderr[i][:-16384]  # keep the tail: it holds the traceback

    async def _await_ready(self) -> None:
        waiting = set(range(len(self._procs)))
        async with asyncio.timeout(READY_TIMEOUT):
            while waiting:
                i, message = await self._queue.get()
                if message is None:
                    raise self.crashed(i)
                waiting.discard(i)

    def crashed(self, i: int) -> LoadError:
        tail = self._stderr[i].decode(errors="replace").strip()[-2000:]
        return LoadError(f"load worker {i} exited early (status {self._procs[i].returncode})"
                         + (f":\n{tail}" if tail else ""),
                         hint="check that the target URL is right and reachable; a traceback "
                              "above is a chaoskit bug: please report it")

    def _send(self, line: str) -> None:
        for proc in self._procs:
            if proc.stdin is not None and proc.returncode is None:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    proc.stdin.write(line.encode() + b"\n")

    def go(self, t0: float) -> None:
        self._send(f"go {t0!r}")

    def stop(self) -> None:
        self._send("stop")

    async def messages(self, deadline: float) -> AsyncIterator[tuple[int, dict[str, Any] | None]]:
        """(worker, message) until every worker closed its output; None marks one closing."""
        open_ = len(self._procs)
        while open_:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                i, message = await self._queue.get()
            if message is None:
                open_ -= 1
            yield i, message

    async def close(self) -> None:
        """Reap every worker: ask, wait briefly, then kill the ones still running (by pid)."""
        for proc in self._procs:
            if proc.stdin is not None:
                proc.stdin.close()
        for proc in self._procs:
            try:
                await asyncio.wait_for(proc.wait(), 2.0)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        for task in self._readers:
            task.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)
