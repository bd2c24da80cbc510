"""Offline work co-located on a lab node: the stack's reconciliation job or a CPU/memory burner.

With isolation, the offline processes run in a child cgroup of their node with cpu.shares 2 (what
Kubernetes gives BestEffort pods) next to the online services' default 1024, on the node's own
cpuset; without root (loopback nodes have no cgroups) isolation falls back to nice 19 against the
online services' nice 0. Without isolation they join the node's groups like any online service.
Every process carries CHAOSKIT_COLOCATE=<tag>, so whatever a crash left is found again by tag.

Run as a module, this file is the burner: `python -m chaoskit.lab.offline --cpu 2
--memory 268435456 --seconds 60` keeps that many cores busy and that much memory resident, and
stops by itself at the deadline.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

from chaoskit.errors import PlatformError
from chaoskit.lab import addresses, capacity, cgroups, nodes, processes, state
from chaoskit.lab.state import LabState, NodeRecord, ProcessRecord
from chaoskit.lab.topology import STACK_SERVICES
from chaoskit.platforms.abilities import OfflineProcess, OfflineWork

TAG_ENV = "CHAOSKIT_COLOCATE"
OFFLINE_SHARES = 2  # Kubernetes' cpu.shares for BestEffort pods
ONLINE_SHARES = 1024  # the default weight, which every online task of a node keeps
NICE = 19
SERVICE_OF = {"reconciliation": "offline", "burner": "burner"}
_ISOLATED = ("cpu", "cpuset")  # the controllers whose offline group differs from the node's
_TICK = os.sysconf("SC_CLK_TCK")


def isolation_mechanism(lab: LabState) -> str:
    return f"cgroup cpu.shares {OFFLINE_SHARES}" if lab.mode == nodes.NETNS else f"nice {NICE}"


def group_dirs(lab: LabState, node: str, tag: str) -> list[Path]:
    return [cgroups.ROOT / c / cgroups.TOP / lab.lab_id / node / f"offline-{tag}"
            for c in _ISOLATED]


def _create_groups(lab: LabState, node: str, tag: str) -> list[Path]:
    """The node's offline child groups: low cpu weight, the node's own cpus and memory nodes."""
    made = group_dirs(lab, node, tag)
    for group in made:
        group.mkdir(exist_ok=True)
    cpu, cpuset = made
    (cpu / "cpu.shares").write_text(str(OFFLINE_SHARES))
    for knob in ("cpuset.cpus", "cpuset.mems"):
        (cpuset / knob).write_text((cpuset.parent / knob).read_text())
    return made


def _template(lab: LabState) -> ProcessRecord:
    for record in lab.processes:
        if record.service in STACK_SERVICES and record.node:
            return record
    raise PlatformError("the lab has no stack process to copy settings from",
                        hint="recreate the lab with `chaoskit lab up`")


def _argv(spec: OfflineWork, template: ProcessRecord, niced: bool) -> list[str]:
    if spec.work == "burner":
        body = [sys.executable, "-m", __name__, "--cpu", str(spec.cpu), "--memory",
                str(spec.memory), "--seconds", f"{spec.lifetime:g}"]
    else:
        body = [*template.argv[:-1], "offline"]
    # timeout(1) bounds the job too: a lost revert cannot leave it running for ever
    bounded = ["timeout", "-k", "3", f"{spec.lifetime + 5:g}", *body]
    return ["nice", "-n", str(NICE), *bounded] if niced else bounded


def _env(spec: OfflineWork, template: ProcessRecord, tag: str) -> dict[str, str]:
    env = {**template.env, TAG_ENV: tag}
    if spec.work == "reconciliation":
        # scale 1: the window is given in real seconds, whatever the lab's time scale
        env.update({"CHAOSKIT_TIME_SCALE": "1", "CHAOSKIT_OFFLINE_WINDOW": f"{spec.window:g}s",
                    "CHAOSKIT_OFFLINE_LINGER": f"{spec.lifetime:g}s"})
        if spec.units:
            env["CHAOSKIT_OFFLINE_UNITS"] = str(spec.units)
        if spec.rounds:
            env["CHAOSKIT_OFFLINE_ROUNDS"] = str(spec.rounds)
    return env


def start(lab: LabState, node_name: str, tag: str, spec: OfflineWork) -> ProcessRecord:
    """Start offline work on a node; recorded before it runs, so `lab down` stops it too."""
    node = lab.node(node_name)
    if spec.work not in SERVICE_OF:
        raise PlatformError(f"unknown offline work '{spec.work}'",
                            hint=f"use one of: {', '.join(SERVICE_OF)}")
    name = f"{spec.work}-{node_name}-{tag}"
    if lab.process(name) is not None:
        raise PlatformError(f"offline work {name} is already running",
                            hint="revert the fault that started it first")
    template = _template(lab)
    listen = f"{node.address}:{addresses.free_port()}"
    niced = spec.isolation and lab.mode != nodes.NETNS
    record = ProcessRecord(
        name, SERVICE_OF[spec.work], node_name, _argv(spec, template, niced),
        {**_env(spec, template, tag), "CHAOSKIT_LISTEN": listen, "CHAOSKIT_NODE": node_name,
         "CHAOSKIT_INSTANCE": name}, str(state.logs_dir(lab) / f"{name}.log"), listen,
        health=f"http://{listen}/healthz" if spec.work == "reconciliation" else "")
    lab.processes.append(record)
    state.save(lab)
    isolated = spec.isolation and lab.mode == nodes.NETNS
    nodes.launch(_with_groups(lab, node, tag) if isolated else lab, record)
    state.save(lab)
    return record


def _with_groups(lab: LabState, node: NodeRecord, tag: str) -> LabState:
    """A view of the lab in which the node's cpu and cpuset groups are its offline ones, so the
    launcher joins them before exec (inside the netns, /sys/fs/cgroup is out of reach)."""
    offline = {p.parts[len(cgroups.ROOT.parts)]: str(p)
               for p in _create_groups(lab, node.name, tag)}
    swapped = [offline.get(Path(g).parts[len(cgroups.ROOT.parts)], g) for g in node.cgroups]
    view = dataclasses.replace(node, cgroups=swapped)
    return dataclasses.replace(lab, nodes=[view if n is node else n for n in lab.nodes])


def records(lab: LabState, tag: str) -> list[ProcessRecord]:
    return [p for p in lab.processes if p.env.get(TAG_ENV) == tag]


def tagged_pids(lab: LabState, tag: str) -> list[int]:
    """Live processes of this lab carrying the tag (forked burner workers included)."""
    needle = f"{TAG_ENV}={tag}\0".encode()
    found = []
    for pid in processes.marked(lab.marker):
        try:
            if needle in Path(f"/proc/{pid}/environ").read_bytes():
                found.append(pid)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return found


def _existing_groups(lab: LabState, tag: str) -> list[Path]:
    return [g for n in lab.nodes for g in group_dirs(lab, n.name, tag) if g.exists()]


def stop(lab: LabState, tag: str) -> list[str]:
    """Stop the tag's processes (records first, then any stray), then remove its groups."""
    stopped = [r.id for r in records(lab, tag)]
    for process_id in stopped:
        capacity.stop_service(lab, process_id)
    processes.kill_all(tagged_pids(lab, tag), grace=1.0)
    groups = _existing_groups(lab, tag)
    _empty(groups, timeout=5.0)
    left = cgroups.remove(groups)
    if left:
        raise PlatformError(f"offline groups left behind: {'; '.join(left)}",
                            hint="revert again; `chaoskit lab down` sweeps the lab")
    return stopped


def _empty(groups: list[Path], timeout: float) -> None:
    """Kill what is still in the groups and wait until the kernel lets them go (an exiting
    task keeps its group busy for a moment, and rmdir would fail)."""
    deadline = time.monotonic() + timeout
    while any(cgroups.members(g) for g in groups) and time.monotonic() < deadline:
        processes.kill_all([p for g in groups for p in cgroups.members(g)], grace=0.5)
        time.sleep(0.02)


def residue(lab: LabState, tag: str) -> list[str]:
    found = [f"offline process {r.id} is still recorded" for r in records(lab, tag)]
    found += [f"offline process {pid} ({TAG_ENV}={tag}) is running"
              for pid in tagged_pids(lab, tag)]
    found += [f"offline cgroup {g} exists" for g in _existing_groups(lab, tag)]
    return found


def describe(lab: LabState, tag: str) -> list[OfflineProcess]:
    return [OfflineProcess(r.id, r.node or "", _work_of(r), processes.alive(r.pid, r.started),
                           f"http://{r.listen}/metrics" if r.health else "",
                           _started_at(r.started), _groups_of(r.pid))
            for r in records(lab, tag)]


def _work_of(record: ProcessRecord) -> str:
    return next(w for w, s in SERVICE_OF.items() if s == record.service)


def _started_at(ticks: int | None) -> float | None:
    """Epoch seconds from a /proc start time (clock ticks since boot)."""
    if ticks is None:
        return None
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return int(line.split()[1]) + ticks / _TICK
    return None


def _groups_of(pid: int | None) -> list[str]:
    """The cgroup of each v1 hierarchy the process is in ('cpu:/chaoskit/...')."""
    try:
        text = Path(f"/proc/{pid}/cgroup").read_text()
    except (FileNotFoundError, ProcessLookupError, TypeError):
        return []
    return [f"{line.split(':')[1]}:{line.split(':', 2)[2]}" for line in text.splitlines()
            if line.split(":")[1]]


def cpu_seconds(leader: int | None) -> float:
    """CPU time (user + system) used so far by the live processes of a process group."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if leader and int(fields[2]) == leader:
            total += int(fields[11]) + int(fields[12])
    return total / _TICK


# -- the burner ---------------------------------------------------------------------------
def _burn(until: float) -> None:
    x = 1.0
    while time.monotonic() < until:
        for _ in range(20000):
            x = x * 1.000001 + 1e-9


def burn(cpu: int, memory: int, seconds: float) -> None:
    """Hold `memory` bytes resident and keep `cpu` processes busy until the deadline."""
    until = time.monotonic() + seconds
    held = bytearray(memory)
    for offset in range(0, memory, 4096):  # touch every page: resident, not just reserved
        held[offset] = 1
    for _ in range(cpu - 1):
        if os.fork() == 0:
            _burn(until)
            os._exit(0)
    _burn(until)
    while True:  # reap the workers before leaving
        try:
            os.wait()
        except ChildProcessError:
            break


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="chaoskit's synthetic offline burner")
    parser.add_argument("--cpu", type=int, default=1)
    parser.add_argument("--memory", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    burn(max(1, args.cpu), max(0, args.memory), args.seconds)


if __name__ == "__main__":
    main()
