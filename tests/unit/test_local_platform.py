"""Unit tests of LocalPlatform and lab processes against a hand-written state file."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import pytest

from chaoskit.errors import PlatformError
from chaoskit.lab import processes, state
from chaoskit.lab.state import LabState, NodeRecord, ProcessRecord
from chaoskit.platforms.abilities import Roles
from chaoskit.platforms.local.platform import LocalPlatform
from chaoskit.spec.models import ProxyDecl, Target


def write_lab(directory: Path) -> LabState:
    lab = LabState(name="t", dir=str(directory), lab_id="abcde", mode="process",
                   toxiproxy_api="http://127.0.0.1:8474", entry_url="http://127.0.0.1:9000",
                   postgres_url="postgresql://postgres@127.0.0.1:5432/postgres", status="up")
    lab.nodes = [NodeRecord("node-1", "127.0.0.1", roles=["gateway", "worker"]),
                 NodeRecord("node-2", "127.0.0.1", roles=["gateway"])]
    lab.processes = [
        ProcessRecord("gateway-node-1", "gateway", "node-1", ["x"], {}, "g1.log", "127.0.0.1:1"),
        ProcessRecord("worker-node-1", "worker", "node-1", ["x"], {}, "w1.log", "127.0.0.1:2"),
        ProcessRecord("gateway-node-2", "gateway", "node-2", ["x"], {}, "g2.log", "127.0.0.1:3"),
        ProcessRecord("haproxy", "haproxy", None, ["x"], {}, "h.log", "127.0.0.1:9000")]
    directory.mkdir(parents=True, exist_ok=True)
    state.save(lab)
    return lab


def test_description_round_trips(tmp_path: Path) -> None:
    write_lab(tmp_path)
    platform = LocalPlatform(str(tmp_path), "http://127.0.0.1:1234",
                             [{"name": "p", "listen": "127.0.0.1:1", "upstream": "127.0.0.1:2"}])
    again = LocalPlatform.from_description(platform.describe())
    assert again.describe() == platform.describe()
    assert again.toxiproxy_url() == "http://127.0.0.1:1234"
    assert again.declared_proxies() == platform.declared_proxies()


def test_from_target_reads_lab_toxiproxy_and_proxies(tmp_path: Path) -> None:
    write_lab(tmp_path)
    target = Target(lab=str(tmp_path),
                    proxies=[ProxyDecl(name="bank-x", listen="127.0.0.1:7001",
                                       upstream="127.0.0.1:7002")])
    platform = LocalPlatform.from_target(target)
    assert platform.toxiproxy_url() == "http://127.0.0.1:8474"  # from the lab's state
    assert platform.declared_proxies() == [{"name": "bank-x", "listen": "127.0.0.1:7001",
                                            "upstream": "127.0.0.1:7002"}]
    assert platform.entry_url() == "http://127.0.0.1:9000"
    assert platform.database_url().endswith("127.0.0.1:5432/postgres")


def test_nodes_and_metrics_targets(tmp_path: Path) -> None:
    write_lab(tmp_path)
    platform = LocalPlatform(str(tmp_path))
    assert [(n.name, n.roles) for n in platform.nodes()] == [
        ("node-1", ("gateway", "worker")), ("node-2", ("gateway",))]
    assert platform.metrics_targets() == {"gateway-node-1": "http://127.0.0.1:1/metrics",
                                          "worker-node-1": "http://127.0.0.1:2/metrics",
                                          "gateway-node-2": "http://127.0.0.1:3/metrics"}
    assert set(platform.metrics_targets(exclude_node="node-1")) == {"gateway-node-2"}


def test_the_lab_knows_no_roles_of_the_stack_it_runs_and_names_missing_processes(
        tmp_path: Path) -> None:
    write_lab(tmp_path)
    platform = LocalPlatform(str(tmp_path))
    assert not isinstance(platform, Roles)  # roles are the system's declarations
    assert "process gateway-node-1 is not running" in " ".join(platform.node_residue("node-1"))
    with pytest.raises(PlatformError, match="no node 'node-7'"):
        platform.kill_node("node-7")


def test_preflight_names_a_missing_lab(tmp_path: Path) -> None:
    problems = asyncio.run(LocalPlatform(str(tmp_path / "none")).preflight())
    assert len(problems) == 1 and "lab up" in problems[0]


def sleeper(tmp_path: Path, marker: str) -> tuple[int, int]:
    env = {**os.environ, state.MARKER_ENV: marker}
    return processes.spawn([sys.executable, "-c", "import time; time.sleep(30)"], env,
                           tmp_path / "sleep.log")


def test_processes_are_recognised_by_pid_and_start_time(tmp_path: Path) -> None:
    pid, started = sleeper(tmp_path, "unit-test-marker-1")
    try:
        assert processes.alive(pid, started)
        assert not processes.alive(pid, started + 1)  # a reused pid is not our process
        deadline = time.monotonic() + 5  # /proc shows the new environment once exec is done
        while processes.marked("unit-test-marker-1") != [pid] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert processes.marked("unit-test-marker-1") == [pid]
        assert processes.marked("unit-test-marker-2") == []
    finally:
        assert processes.kill_all([pid], grace=1.0) == []
    assert not processes.alive(pid, started)


def test_stopped_processes_are_seen_as_stopped(tmp_path: Path) -> None:
    import signal
    pid, started = sleeper(tmp_path, "unit-test-marker-3")
    try:
        processes.signal_group(pid, started, signal.SIGSTOP)
        deadline = 50
        while not processes.stopped(pid) and deadline:
            deadline -= 1
            asyncio.run(asyncio.sleep(0.02))
        assert processes.stopped(pid)
        processes.signal_group(pid, started, signal.SIGCONT)
    finally:
        processes.kill_all([pid], grace=1.0)


def test_isolate_is_only_supported_on_netns_nodes(tmp_path: Path) -> None:
    write_lab(tmp_path)
    platform = LocalPlatform(str(tmp_path))
    modes = platform.node_loss_modes()
    assert modes["kill"] is None and modes["freeze"] is None
    assert "needs netns nodes" in str(modes["isolate"])
