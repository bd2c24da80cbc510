"""What live runs hold: a run claims every target its faults touch, and a second run that
would touch one of them is refused (naming the run that holds it).

A claim is a file per run under ~/.cache/chaoskit/claims (CHAOSKIT_CACHE moves it) listing
`kind:where:name` keys. It counts only while its run is alive (its lease is fresh), so a
crashed run's claim never blocks anyone; recovery and the run's end remove it.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from chaoskit.engine import lease
from chaoskit.toolchain import CACHE


def claims_dir() -> Path:
    return Path(os.environ.get("CHAOSKIT_CLAIMS", CACHE / "claims"))


@dataclass(frozen=True)
class Holder:
    run_id: str
    pid: int
    journal: str
    keys: frozenset[str]


def _path(run_id: str) -> Path:
    return claims_dir() / f"{run_id}.json"


def live_holders() -> list[Holder]:
    """Claims of runs that are alive now (dead runs' claims are removed on the way)."""
    found = []
    directory = claims_dir()
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            data = json.loads(path.read_text())
            holder = Holder(data["run_id"], int(data["pid"]), data["journal"],
                            frozenset(data["keys"]))
            lease_path = Path(data["lease"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if lease.alive(lease_path, holder.pid):
            found.append(holder)
        else:
            with contextlib.suppress(OSError):
                path.unlink()
    return found


def conflicts(run_id: str, keys: set[str]) -> list[str]:
    """One sentence per live run holding any of `keys`."""
    problems = []
    for holder in live_holders():
        shared = sorted(keys & holder.keys)
        if holder.run_id != run_id and shared:
            shown = ", ".join(k.split(":", 1)[0] + " " + k.rsplit(":", 1)[-1] for k in shared)
            problems.append(f"{shown} held by live run {holder.run_id} (pid {holder.pid}, "
                            f"journal {holder.journal}); wait for it to end or stop it")
    return problems


def claim(run_id: str, keys: set[str], pid: int, journal: Path, lease_path: Path) -> None:
    """Record (or widen) this run's claim."""
    path = _path(run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    previous: set[str] = set()
    with contextlib.suppress(OSError, ValueError, KeyError):
        previous = set(json.loads(path.read_text())["keys"])
    body = {"run_id": run_id, "pid": pid, "journal": str(journal), "lease": str(lease_path),
            "keys": sorted(previous | keys)}
    spare = path.with_name(path.name + ".new")
    spare.write_text(json.dumps(body))
    os.replace(spare, path)


def release(run_id: str) -> None:
    with contextlib.suppress(OSError):
        _path(run_id).unlink()
