"""Preflight of the processes platform: every service found, restartable, ours to signal.

Nothing here changes anything (no directory is created, no signal but 0 is sent).
"""

from __future__ import annotations

import os
from pathlib import Path

from chaoskit.platforms.processes import finding, procfs
from chaoskit.platforms.processes.config import ServiceConfig
from chaoskit.platforms.processes.launch import healthy


def services(configured: dict[str, ServiceConfig]) -> list[str]:
    procs = procfs.snapshot()
    problems: list[str] = []
    owners: dict[int, str] = {}
    for name, service in configured.items():
        found = finding.find(service, procs)
        if not found.running:
            problems.append(f"service {name}: {found.problem}")
        problems += restartable(name, service)
        problems += signalable(name, found.roots)
        for pid in found.pids:
            if pid in owners:
                problems.append(f"services {owners[pid]} and {name} share pid {pid}: give each "
                                "node its own processes")
                break
            owners[pid] = name
    return problems


def restartable(name: str, service: ServiceConfig) -> list[str]:
    if not service.start and not service.unit:
        return [f"service {name} has no `start:` command (or `unit:`): chaoskit could take it "
                "down but not bring it back"]
    problems = []
    if service.cwd and not Path(service.cwd).is_dir():
        problems.append(f"service {name}: cwd {service.cwd} is not a directory")
    if service.log and not writable(Path(service.log)):
        problems.append(f"service {name}: cannot write its log {service.log}")
    return problems


def writable(path: Path) -> bool:
    """Whether the file can be appended to (or created in its nearest existing directory)."""
    if path.exists():
        return os.access(path, os.W_OK)
    for parent in path.parents:
        if parent.exists():
            return os.access(parent, os.W_OK | os.X_OK)
    return False


def signalable(name: str, pids: tuple[int, ...]) -> list[str]:
    problems = []
    for pid in pids:
        try:
            os.kill(pid, 0)
        except PermissionError:
            problems.append(f"service {name}: no permission to signal pid {pid}; run chaoskit "
                            "as root or as the service's user")
        except ProcessLookupError:
            continue
    return problems


def health(configured: dict[str, ServiceConfig]) -> list[str]:
    return [f"service {name}: {s.health} does not answer 200" for name, s in configured.items()
            if s.health and not healthy(s.health, timeout=2.0)]
