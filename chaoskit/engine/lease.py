"""The runner's lease: a heartbeat file that tells the watchdog a live runner from a dead one."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path

HEARTBEAT_INTERVAL = 0.5  # seconds between heartbeats
LEASE_TTL = 3.0  # a heartbeat older than this means the runner is gone


def beat(path: Path) -> None:
    path.touch(exist_ok=True)
    now = time.time()
    os.utime(path, (now, now))


def age(path: Path) -> float:
    """Seconds since the last heartbeat (infinite when the lease file is gone)."""
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")


async def keep_alive(path: Path, stop: asyncio.Event) -> None:
    """Heartbeat until stopped. Runs in the runner's event loop, so a hung loop lets it lapse."""
    while not stop.is_set():
        beat(path)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), HEARTBEAT_INTERVAL)
