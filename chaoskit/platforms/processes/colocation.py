"""Offline work co-located with a service: on the same machine, pinned to the service's CPUs.

As root the offline processes run in chaoskit/processes/<run>/<tag>/<node>/offline groups: a
cpuset holding exactly the service's CPUs (its affinity) and a cpu group weighted 2 with
`isolation: true` (Kubernetes' BestEffort weight) or 1024 without; for the fault's duration the
service's tree sits in the sibling .../online cpu group weighted 1024, and goes back to its own
group at the revert. Without root: `taskset` to the service's CPUs, and nice 19 with isolation.

`work: burner` is the generic one (`python -m chaoskit.lab.offline`: busy workers, resident
memory). `work: reconciliation` is the reference stack's batch (`python -m chaoskit.stack
offline`): it reads (and migrates) the reference stack's ledger at CHAOSKIT_DATABASE_URL, here
target.database, so it only fits a user's stack whose database is the reference schema.
Every offline process carries CHAOSKIT_COLOCATE=<tag> and CHAOSKIT_PROCESSES_RUN=<run> in its
environment and stops by itself (`timeout`) after the work's lifetime plus 5 s.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from chaoskit.errors import PlatformError
from chaoskit.lab import addresses, processes
from chaoskit.platforms.abilities import OfflineProcess, OfflineWork
from chaoskit.platforms.processes import groups, marks, procfs
from chaoskit.platforms.processes.finding import Found

TAG_ENV = "CHAOSKIT_COLOCATE"
RUN_ENV = "CHAOSKIT_PROCESSES_RUN"
OFFLINE_SHARES = 2
ONLINE_SHARES = 1024
NICE = 19
WORKS = ("burner", "reconciliation")
PROJECT = str(Path(__file__).resolve().parents[3])
_JOIN = 'for g in $CHAOSKIT_CGROUPS; do echo $$ > "$g/cgroup.procs" || exit 111; done; exec "$@"'


def with_cgroups() -> bool:
    return os.geteuid() == 0 and all(groups.mount(h) for h in ("cpu", "cpuset"))


def mechanism() -> str:
    if with_cgroups():
        return (f"cgroup cpu.shares {OFFLINE_SHARES} vs {ONLINE_SHARES} (the service in its own "
                f"{ONLINE_SHARES} group meanwhile), cpuset of the service's CPUs")
    return f"nice {NICE} (no root: no cgroups), taskset to the service's CPUs"


def cpu_list(pid: int) -> str:
    return ",".join(str(c) for c in sorted(os.sched_getaffinity(pid)))


def body(work: OfflineWork) -> list[str]:
    """The work's command line, bounded by `timeout` even if no revert ever comes."""
    if work.work == "burner":
        argv = [sys.executable, "-m", "chaoskit.lab.offline", "--cpu", str(work.cpu),
                "--memory", str(work.memory), "--seconds", f"{work.lifetime:g}"]
    else:
        argv = [sys.executable, "-m", "chaoskit.stack", "offline"]
    return ["timeout", "-k", "3", f"{work.lifetime + 5:g}", *argv]


def environment(work: OfflineWork, run: str, tag: str, name: str, node: str,
                database: str | None, listen: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAOSKIT_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [PROJECT, env.get("PYTHONPATH")]))
    env |= {TAG_ENV: tag, RUN_ENV: run, "CHAOSKIT_NODE": node, "CHAOSKIT_INSTANCE": name,
            "CHAOSKIT_LISTEN": listen}
    if work.work == "reconciliation":
        if not database:
            raise PlatformError("work: reconciliation needs the system's database",
                                hint="set target.database (the reference stack's schema), or "
                                     "use work: burner")
        env |= {"CHAOSKIT_DATABASE_URL": database, "CHAOSKIT_TIME_SCALE": "1",
                "CHAOSKIT_OFFLINE_WINDOW": f"{work.window:g}s",
                "CHAOSKIT_OFFLINE_LINGER": f"{work.lifetime:g}s"}
        env |= {"CHAOSKIT_OFFLINE_UNITS": str(work.units)} if work.units else {}
        env |= {"CHAOSKIT_OFFLINE_ROUNDS": str(work.rounds)} if work.rounds else {}
    return env


def _weighted(run: str, tag: str, node: str, work: OfflineWork, cpus: str) -> dict[str, Path]:
    made = {"online": groups.make(groups.group("cpu", run, tag, node, "online")),
            "offline": groups.make(groups.group("cpu", run, tag, node, "offline")),
            "cpuset": groups.make(groups.group("cpuset", run, tag, node, "offline"))}
    (made["online"] / "cpu.shares").write_text(str(ONLINE_SHARES))
    shares = OFFLINE_SHARES if work.isolation else ONLINE_SHARES
    (made["offline"] / "cpu.shares").write_text(str(shares))
    (made["cpuset"] / "cpuset.cpus").write_text(cpus)
    return made


def start(state_dir: Path, run: str, node: str, tag: str, work: OfflineWork, service: Found,
          database: str | None) -> str:
    """Start the work next to the service (found running)."""
    if work.work not in WORKS:
        raise PlatformError(f"unknown offline work '{work.work}'",
                            hint=f"use one of: {', '.join(WORKS)}")
    name = f"{work.work}-{node}-{tag}"
    path = marks.offline_mark(state_dir, run, tag, node)
    if marks.read(path) is not None:
        raise PlatformError(f"offline work {name} is already running",
                            hint="revert the fault that started it first")
    cpus, listen = cpu_list(service.roots[0]), f"127.0.0.1:{addresses.free_port()}"
    env = environment(work, run, tag, name, node, database, listen)
    mark: dict[str, Any] = {"id": name, "tag": tag, "node": node, "run": run, "work": work.work,
                            "cpus": cpus, "isolation": work.isolation, "groups": [],
                            "metrics_url": f"http://{listen}/metrics"
                            if work.work == "reconciliation" else "",
                            "log": str(state_dir / "logs" / f"{name}.log")}
    argv = body(work)
    if with_cgroups():
        mark["online_cgroups"] = groups.originals(list(service.pids), "cpu")
        marks.write(path, mark)
        made = _weighted(run, tag, node, work, cpus)
        mark["groups"] = [str(g) for g in made.values()]
        marks.write(path, mark)
        for pid in procfs.tree(service.roots):
            groups.remember(mark["online_cgroups"], pid, "cpu", service.roots)
            groups.move(pid, made["online"])
        env["CHAOSKIT_CGROUPS"] = f"{made['offline']} {made['cpuset']}"
        argv = ["/bin/sh", "-c", _JOIN, "sh", *argv]
    else:
        niced = ["nice", "-n", str(NICE)] if work.isolation else []
        argv = ["taskset", "-c", cpus, *niced, *argv]
    marks.write(path, mark)
    mark["pid"], mark["started"] = processes.spawn(argv, env, Path(mark["log"]))
    marks.write(path, mark)
    return name


def describe(state_dir: Path, tag: str) -> list[OfflineProcess]:
    found = []
    for path in marks.offline_marks(state_dir, tag):
        mark = marks.read(path) or {}
        pid = mark.get("pid")
        found.append(OfflineProcess(
            mark.get("id", path.stem), mark.get("node", ""), mark.get("work", ""),
            procfs.alive(pid, mark.get("started")), mark.get("metrics_url", ""),
            procfs.started_at(mark.get("started")), procfs.cgroups_of(pid)))
    return found


def leader(state_dir: Path, process_id: str) -> int | None:
    for path in marks.offline_marks(state_dir):
        mark = marks.read(path) or {}
        if mark.get("id") == process_id and procfs.alive(mark.get("pid"), mark.get("started")):
            return int(mark["pid"])
    return None


def tagged(tag: str | None = None, run: str | None = None) -> list[int]:
    """Offline processes of a tag or of a run, found by their environment."""
    return sorted(set(procfs.tagged(f"{TAG_ENV}={tag}") if tag else [])
                  | set(procfs.tagged(f"{RUN_ENV}={run}") if run else []))


def stop(state_dir: Path, tag: str) -> list[str]:
    """Stop the tag's processes, put the services back in their groups, remove ours."""
    stopped = []
    for path in marks.offline_marks(state_dir, tag):
        mark = marks.read(path) or {}
        undo(mark)
        marks.remove(path)
        stopped.append(str(mark.get("id", path.stem)))
    processes.kill_all(tagged(tag), grace=1.0)
    return stopped


def undo(mark: dict[str, Any]) -> None:
    """Kill one mark's work, move the service back, remove the groups (idempotent)."""
    pid, started = mark.get("pid"), mark.get("started")
    if pid and procfs.alive(pid, started):
        procfs.send([p.pid for p in procfs.snapshot().values() if p.pgrp == pid],
                    signal.SIGKILL)
    processes.kill_all(tagged(mark.get("tag")), grace=1.0)
    processes.reap()
    made = [Path(g) for g in mark.get("groups", [])]
    online = [g for g in made if g.name == "online"]
    for group in online:
        for member in groups.members(group):
            groups.move_back(member, "cpu", mark.get("online_cgroups", {}).get(str(member)))
    _remove(made)


def _remove(made: list[Path]) -> None:
    deadline = time.monotonic() + 5.0
    while any(groups.members(g) for g in made) and time.monotonic() < deadline:
        processes.kill_all([p for g in made if g.name == "offline" for p in groups.members(g)],
                           grace=0.5)
        time.sleep(0.02)
    left = [why for g in made if (why := groups.remove(g))]
    if left:
        raise PlatformError(f"offline groups left behind: {'; '.join(left)}",
                            hint="revert again, or `chaoskit recover`")


def residue(state_dir: Path, tag: str) -> list[str]:
    found = [f"offline work {(marks.read(p) or {}).get('id', p.stem)} is still recorded ({p})"
             for p in marks.offline_marks(state_dir, tag)]
    found += [f"offline process {pid} ({TAG_ENV}={tag}) is running" for pid in tagged(tag)]
    found += [f"cgroup {g} exists" for h in ("cpu", "cpuset") for g in groups.ours(h, tag, "*")]
    return found
