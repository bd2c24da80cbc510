"""Marks: what chaoskit changed on a node or started next to it, in files another process reads.

    <state_dir>/<run>/nodes/<node>.<mode>.json     a node loss (pids, original cgroups, how)
    <state_dir>/<run>/offline/<tag>.<node>.json     offline work (its leader, groups, the service)
    <state_dir>/logs/<service>.log                  output of services chaoskit started

A mark is written before the change and removed after its undo, so a revert in another
process (`recover`, the watchdog) knows what to undo, and `recover_processes` finds it without
a journal. Every change is made under the state directory's lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def write(path: Path, data: dict[str, Any]) -> None:
    """Atomically (a crash leaves the old mark or the new one, never half of one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({**data, "written_at": time.time()}, sort_keys=True))
    os.replace(tmp, path)


def read(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data


def node_mark(state_dir: Path, run: str, node: str, mode: str) -> Path:
    return state_dir / run / "nodes" / f"{node}.{mode}.json"


def node_marks(state_dir: Path, node: str | None = None, mode: str | None = None,
               run: str | None = None) -> list[Path]:
    """Node marks of any run (or one), of one node and mode (or all)."""
    pattern = f"{run or '*'}/nodes/{node or '*'}.{mode or '*'}.json"
    return sorted(state_dir.glob(pattern)) if state_dir.exists() else []


def offline_mark(state_dir: Path, run: str, tag: str, node: str) -> Path:
    return state_dir / run / "offline" / f"{tag}.{node}.json"


def offline_marks(state_dir: Path, tag: str | None = None, run: str | None = None
                  ) -> list[Path]:
    pattern = f"{run or '*'}/offline/{tag + '.' if tag else ''}*.json"
    found = sorted(state_dir.glob(pattern)) if state_dir.exists() else []
    return [p for p in found if tag is None or (read(p) or {}).get("tag") == tag]


def remove(path: Path) -> None:
    """Remove a mark and the run's directories it leaves empty."""
    path.unlink(missing_ok=True)
    for parent in (path.parent, path.parent.parent):
        with contextlib.suppress(OSError):
            parent.rmdir()


@contextlib.contextmanager
def locked(state_dir: Path) -> Iterator[None]:
    """One change at a time on this machine's services (runner and watchdog alike)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / "lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
