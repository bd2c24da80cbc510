"""A run's guard: the lease heartbeat, beaten from a thread, and the detached watchdog.

The heartbeat runs in its own thread, so CPU-heavy work on the event loop (statistics, a slow
fsync) cannot starve it; the loop's own progress is written beside it, so a wedged loop is
still noticed (lease.LOOP_HANG_LIMIT). The same thread checks that the watchdog lives and
starts a new one if it died: a run is never without its watchdog.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from chaoskit.engine import lease

WATCHDOG_RESPAWNS = 3
# A loop that has not ticked for this long gets every thread's stack written beside the
# journal (stalls.log), once per stall: what wedged it is there if the watchdog has to end the
# run (lease.LOOP_HANG_LIMIT), and a long but survived stall is explained too.
STALL_DUMP_AFTER = 5.0


def spawn_watchdog(journal: Path, lease_path: Path, runner_pid: int) -> subprocess.Popen[bytes]:
    """Start the watchdog in its own session, so Ctrl-C or a killed process group spares it."""
    log = open(journal.with_name("watchdog.log"), "ab")  # noqa: SIM115 - handed to the child
    command = [sys.executable, "-m", "chaoskit.engine.watchdog", "--journal", str(journal),
               "--lease", str(lease_path), "--runner-pid", str(runner_pid)]
    try:
        return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True, close_fds=True)
    finally:
        log.close()


class RunGuard:
    """Keeps the lease fresh and a watchdog alive for as long as the run lasts."""

    def __init__(self, journal: Path, lease_path: Path, *, watchdog: bool = True,
                 on_event: Callable[[str], None] | None = None, loop_ticks: bool = True
                 ) -> None:
        self.journal = journal
        self.lease_path = lease_path
        self.use_watchdog = watchdog
        self.on_event = on_event
        self.pid = os.getpid()
        self.watchdog: subprocess.Popen[bytes] | None = None
        self.respawns = 0
        self.loop_ticks = loop_ticks  # False: no loop runs between calls (the pytest fixture)
        self._loop_tick = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ticker: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dumped_tick: float | None = None  # the loop tick whose stall was dumped
        self.stalls = journal.with_name("stalls.log")

    def start(self) -> None:
        """Call from the run's event loop (or any thread without `loop_ticks`), before
        anything is injected."""
        if self.loop_ticks:
            self._loop = asyncio.get_running_loop()
            self._tick()
        lease.write(self.lease_path, self.pid, self._loop_tick)  # before the watchdog looks
        if self.use_watchdog:
            self.watchdog = spawn_watchdog(self.journal, self.lease_path, self.pid)
        self._thread = threading.Thread(target=self._beat, name="chaoskit-lease", daemon=True)
        self._thread.start()

    def _tick(self) -> None:
        self._loop_tick = time.monotonic()
        assert self._loop is not None
        self._ticker = self._loop.call_later(lease.HEARTBEAT_INTERVAL, self._tick)

    def _beat(self) -> None:
        while not self._stop.wait(lease.HEARTBEAT_INTERVAL):
            if not self.loop_ticks:
                self._loop_tick = time.monotonic()
            with contextlib.suppress(OSError):  # a full disk must not stop the beat for good
                lease.write(self.lease_path, self.pid, self._loop_tick)
            self._check_watchdog()
            self._dump_if_stalled()

    def _dump_if_stalled(self) -> None:
        tick = self._loop_tick
        stalled = time.monotonic() - tick
        if not self.loop_ticks or stalled < STALL_DUMP_AFTER or self._dumped_tick == tick:
            return
        self._dumped_tick = tick
        with contextlib.suppress(OSError), open(self.stalls, "a") as out:
            out.write(f"\n== {time.strftime('%Y-%m-%dT%H:%M:%S')}: the event loop has not "
                      f"run for {stalled:.1f}s; every thread's stack:\n")
            out.flush()
            faulthandler.dump_traceback(out, all_threads=True)

    def _check_watchdog(self) -> None:
        if self.watchdog is None or self.watchdog.poll() is None or self._stop.is_set():
            return
        if self.respawns >= WATCHDOG_RESPAWNS:
            return
        self.respawns += 1
        code = self.watchdog.returncode
        self.watchdog = spawn_watchdog(self.journal, self.lease_path, self.pid)
        self._tell(f"the watchdog exited ({code}); a new one watches the run (pid "
                   f"{self.watchdog.pid})")

    def _tell(self, message: str) -> None:
        if self.on_event is not None and self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closing
                self._loop.call_soon_threadsafe(self.on_event, message)

    async def stop(self, dismiss: bool = False) -> None:
        """After the journal is closed: stop beating; the watchdog sees the result and exits.
        `dismiss`: the run reverted and recorded its end, but not in the journal (its disk is
        full), so the watchdog would never see it: stop the watchdog instead of letting it
        revert a finished run's faults again, perhaps under the next run's feet."""
        if self._ticker is not None:
            self._ticker.cancel()
        await asyncio.to_thread(self.stop_blocking, dismiss)

    def stop_blocking(self, dismiss: bool = False) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        if self.watchdog is not None:
            if dismiss:
                self.watchdog.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.watchdog.wait(5.0)
