"""Bringing a lab up and down; every part is written to the state file before it is created."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from chaoskit import toxiproxy
from chaoskit.errors import PlatformError
from chaoskit.lab import addresses, cgroups, haproxy, health, nodes, postgres, state
from chaoskit.lab.runtime import CONTAINERS, PROCESSES, RUNTIMES, NodeRuntime, runtime_of
from chaoskit.lab.state import MARKER_ENV, LabState, ProcessRecord, logs_dir
from chaoskit.lab.teardown import teardown
from chaoskit.lab.topology import LabOptions, placement, proxy_plan, stack_record
from chaoskit.toolchain import require_binary

HOST_READY_TIMEOUT = 15.0  # a containers lab: until the bridge has the host's address


def choose_mode(requested: str) -> str:
    """netns nodes need root and cgroup v1 controllers; otherwise process groups on loopback."""
    if requested in (nodes.NETNS, nodes.PROCESS):
        if requested == nodes.NETNS and os.geteuid() != 0:
            raise PlatformError("netns nodes need root", hint="run as root or use --mode process")
        return requested
    usable = os.geteuid() == 0 and not cgroups.available() and shutil.which("ip")
    return nodes.NETNS if usable else nodes.PROCESS


def runtime_settings(options: LabOptions) -> dict[str, Any]:
    """The runtime's fields of a new lab's state, checked before anything is made: a containers
    lab needs an engine that answers and the stack image in it."""
    if options.runtime not in RUNTIMES:
        raise PlatformError(f"unknown runtime '{options.runtime}'",
                            hint=f"use one of: {', '.join(RUNTIMES)}")
    if options.runtime == PROCESSES:
        if options.engine or options.image:
            raise PlatformError("--engine and --image are for container nodes",
                                hint="add --runtime containers, or leave them out")
        return {"runtime": PROCESSES, "mode": choose_mode(options.mode)}
    if options.mode != "auto":
        raise PlatformError(f"--mode {options.mode} is for the processes runtime",
                            hint="leave --mode out with --runtime containers")
    from chaoskit.lab.containers.engine import prepare
    from chaoskit.lab.containers.runtime import MODE

    engine, image = prepare(options.engine, options.image)
    return {"runtime": CONTAINERS, "mode": MODE, "engine": engine, "image": image}


def up(options: LabOptions) -> tuple[LabState, float]:
    """Start a lab and wait until it is healthy; returns its state and the seconds it took."""
    started = time.monotonic()
    lab = _claim(options, runtime_settings(options))
    try:
        asyncio.run(_build(lab, options))
    except BaseException:
        teardown(lab)  # a failed start leaves nothing behind either
        raise
    lab.status = "up"
    state.save(lab)
    return lab, time.monotonic() - started


def _claim(options: LabOptions, settings: dict[str, Any]) -> LabState:
    if options.nodes < 2:
        raise PlatformError("a lab needs at least 2 nodes (leader and standby scheduler)",
                            hint="use --nodes 2 or more")
    directory = state.lab_dir(options.name)
    with state.locked(directory):
        if state.exists(directory) and state.load(directory).status != "down":
            raise PlatformError(f"the lab at {directory} is already up (or was left half-made)",
                                hint=f"run `chaoskit lab down --name {options.name}` first")
        shutil.rmtree(directory / "logs", ignore_errors=True)
        (directory / "logs").mkdir(parents=True)
        lab = LabState(name=directory.name, dir=str(directory), lab_id=state.lab_id(directory),
                       owner_pid=os.getpid(), time_scale=options.time_scale, **settings)
        state.save(lab)
    return lab


async def _build(lab: LabState, options: LabOptions) -> None:
    runtime = runtime_of(lab)
    await asyncio.to_thread(runtime.make_nodes, lab, options.nodes)
    host_records = _plan_host(lab, options)
    stack, entry = _plan_stack(lab, options, runtime)
    state.save(lab)
    # Everything starts at once: stack services retry the database (and its proxy) until it
    # answers, so their slow Python start-up overlaps initdb and Toxiproxy's start.
    postgres_ready = asyncio.create_task(_start_postgres(lab, host_records.get("postgres")))
    proxies_ready = asyncio.create_task(_start_proxies(lab, host_records["toxiproxy"], runtime))
    _launch_all(lab, [host_records["bank"]])
    await runtime.start_stack(lab, stack)
    _launch_all(lab, [entry])
    await asyncio.gather(postgres_ready, proxies_ready)
    await _wait_ready(lab, options.timeout)


def _plan_host(lab: LabState, options: LabOptions) -> dict[str, ProcessRecord]:
    """Records of the host-side processes: postgres, toxiproxy, the bank, HAProxy."""
    records: dict[str, ProcessRecord] = {}
    if options.postgres_url:
        lab.postgres_url, lab.postgres_external = options.postgres_url, True
    else:
        records["postgres"] = _postgres_record(lab)
    bank_listen = f"127.0.0.1:{addresses.free_port()}"
    db = urlsplit(lab.postgres_url)
    lab.proxies = proxy_plan(lab, f"{db.hostname}:{db.port or 5432}", bank_listen)
    lab.toxiproxy_api = f"http://127.0.0.1:{addresses.free_port()}"
    records["toxiproxy"] = _toxiproxy_record(lab)
    bank = stack_record(lab, options, "bank", None, "127.0.0.1")
    bank.listen, bank.health = bank_listen, f"http://{bank_listen}/healthz"
    bank.env["CHAOSKIT_LISTEN"] = bank_listen
    records["bank"] = bank
    lab.processes.extend(records.values())
    return records


def _postgres_record(lab: LabState) -> ProcessRecord:
    port = addresses.free_port()
    lab.pgdata = str(postgres.data_dir(lab.path, lab.lab_id))
    lab.postgres_url = postgres.url(port)
    return ProcessRecord("postgres", "postgres", None, postgres.server_argv(Path(lab.pgdata), port),
                         {}, str(logs_dir(lab) / "postgres.log"), f"127.0.0.1:{port}",
                         user=postgres.run_user())


def _toxiproxy_record(lab: LabState) -> ProcessRecord:
    # Started by the lab itself (not toxiproxy.start_toxiproxy_server) so it carries the lab's
    # marker and is found by `lab down` even when `lab up` died before noting its pid.
    api = urlsplit(lab.toxiproxy_api)
    argv = [require_binary("toxiproxy-server"), "-host", str(api.hostname), "-port", str(api.port)]
    return ProcessRecord("toxiproxy", "toxiproxy", None, argv, {},
                         str(logs_dir(lab) / "toxiproxy.log"), f"{api.hostname}:{api.port}")


def _plan_stack(lab: LabState, options: LabOptions,
                runtime: NodeRuntime) -> tuple[list[ProcessRecord], ProcessRecord]:
    records = []
    for service, node_name in placement([n.name for n in lab.nodes]):
        node = lab.node(node_name)
        record = stack_record(lab, options, service, node_name, node.address)
        runtime.place(lab, record)
        records.append(record)
        node.roles.append(service)
    gateways = [(r.node or r.id, r.listen) for r in records if r.service == "gateway"]
    entry = _haproxy_record(lab, gateways)
    lab.processes.extend([*records, entry])
    return records, entry


def _haproxy_record(lab: LabState, gateways: list[tuple[str, str]]) -> ProcessRecord:
    port = addresses.free_port()
    lab.entry_url = f"http://127.0.0.1:{port}"
    lab.haproxy_socket = str(lab.path / "haproxy.sock")
    config = lab.path / "haproxy.cfg"
    haproxy.write(config, haproxy.render(port, gateways, lab.haproxy_socket))
    return ProcessRecord("haproxy", "haproxy", None, haproxy.argv(config), {},
                         str(logs_dir(lab) / "haproxy.log"), f"127.0.0.1:{port}",
                         health=f"{lab.entry_url}/healthz")


def _launch_all(lab: LabState, records: list[ProcessRecord]) -> None:
    """Host processes (PostgreSQL, Toxiproxy, the bank, HAProxy), each noted as started."""
    for record in records:
        nodes.launch(lab, record)
        state.save(lab)


async def _start_postgres(lab: LabState, record: ProcessRecord | None) -> None:
    if record is None:
        return
    # initdb carries the lab's marker: a `lab up` killed meanwhile leaves it to `lab down`
    await asyncio.to_thread(postgres.init, Path(lab.pgdata), record.user,
                            {**os.environ, MARKER_ENV: lab.marker})
    _launch_all(lab, [record])
    host, _, port = record.listen.rpartition(":")
    await health.wait_port(host, int(port), 20.0)


async def _start_proxies(lab: LabState, record: ProcessRecord, runtime: NodeRuntime) -> None:
    _launch_all(lab, [record])
    await asyncio.to_thread(toxiproxy.wait_ready, lab.toxiproxy_api, 10.0)
    await asyncio.to_thread(runtime.host_ready, lab, HOST_READY_TIMEOUT)
    server = toxiproxy.ToxiproxyServer(lab.toxiproxy_api)
    for name, proxy in lab.proxies.items():
        await asyncio.to_thread(server.ensure_proxy, name, proxy["listen"], proxy["upstream"])


async def _wait_ready(lab: LabState, timeout: float) -> None:
    urls = {p.id: p.health for p in lab.processes if p.health}
    try:
        await health.wait_healthy(urls, timeout, lambda: _dead(lab))
        await _wait_gateways_up(lab, timeout)
    except PlatformError as exc:
        raise PlatformError(exc.message, hint=exc.hint + _dead_hint(lab)) from None


async def _wait_gateways_up(lab: LabState, timeout: float) -> None:
    """HAProxy must have seen every gateway pass a check before clients are let in."""
    deadline = time.monotonic() + timeout
    wanted = {r.node for r in lab.processes if r.service == "gateway"}
    while True:
        states = haproxy.server_states(lab.haproxy_socket)
        if wanted and all(states.get(str(n)) == "UP" for n in wanted):
            return
        if time.monotonic() > deadline:
            raise PlatformError(f"HAProxy does not see every gateway up: {states}",
                                hint="read `chaoskit lab logs haproxy`")
        await asyncio.sleep(0.05)


def _dead(lab: LabState) -> list[str]:
    return runtime_of(lab).dead(lab)


def _dead_hint(lab: LabState) -> str:
    dead = _dead(lab)
    if not dead:
        return ""
    tails = [f"\n--- {d}: " + _tail(Path(lab.process(d).log)) for d in dead[:3]]  # type: ignore
    return f"; exited: {', '.join(dead)}" + "".join(tails)


def _tail(path: Path, lines: int = 8) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def down(name_or_dir: str | None) -> list[str]:
    """Stop a lab (also one whose `lab up` crashed); returns any residue left behind."""
    directory = state.lab_dir(name_or_dir)
    lab = state.load(directory)
    return teardown(lab)
