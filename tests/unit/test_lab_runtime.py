"""Unit tests of the lab's runtime seam: which runtime a lab has, what `lab up` checks before
making anything, LocalPlatform going through the runtime, container records, the supervisor."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from chaoskit.errors import PlatformError
from chaoskit.lab import addresses, lifecycle, state, status
from chaoskit.lab.containers import engine, network, node
from chaoskit.lab.containers.runtime import ContainerRuntime
from chaoskit.lab.process_runtime import ProcessRuntime
from chaoskit.lab.runtime import runtime_of
from chaoskit.lab.state import LabState, NodeRecord, ProcessRecord
from chaoskit.lab.topology import LabOptions
from chaoskit.platforms.abilities import OfflineWork
from chaoskit.platforms.local import platform as local
from chaoskit.platforms.local.platform import LocalPlatform
from tests.fixtures.waiting import wait_for


def container_lab(directory: Path) -> LabState:
    lab = LabState(name="c", dir=str(directory), lab_id="abcde", mode="container",
                   runtime="containers", status="up", engine="unix:///nowhere.sock",
                   image="img", network="chaoskit-lab-abcde", subnet="198.19.0.0/24",
                   host_ip="198.19.0.1", entry_url="http://127.0.0.1:9")
    lab.nodes = [NodeRecord("node-1", "198.19.0.2", roles=["gateway"],
                            container="chaoskit-lab-abcde-node-1")]
    lab.processes = [ProcessRecord("gateway-node-1", "gateway", "node-1", [], {"A": "1"},
                                   str(directory / "g.log"))]
    directory.mkdir(parents=True, exist_ok=True)
    state.save(lab)
    return lab


def test_the_state_file_names_the_runtime() -> None:
    lab = LabState(name="t", dir="/x", lab_id="abcde", mode="netns")
    assert lab.runtime == "processes" and isinstance(runtime_of(lab), ProcessRuntime)
    lab.runtime = "containers"
    assert isinstance(runtime_of(lab), ContainerRuntime)
    lab.runtime = "vm"
    with pytest.raises(PlatformError, match="unknown runtime 'vm'"):
        runtime_of(lab)
    old = {k: v for k, v in lab.to_dict().items() if k not in ("runtime", "engine", "image",
                                                                 "network")}
    assert LabState.from_dict(old).runtime == "processes"  # a state file from before


@pytest.mark.parametrize(("options", "words"), [
    (LabOptions(runtime="vm"), "unknown runtime"),
    (LabOptions(runtime="processes", image="x"), "--runtime containers"),
    (LabOptions(runtime="containers", mode="netns"), "processes runtime"),
])
def test_lab_up_refuses_flags_that_do_not_go_together(options: LabOptions, words: str,
                                                     tmp_path: Path) -> None:
    options.name = str(tmp_path / "lab")
    with pytest.raises(PlatformError) as err:
        lifecycle.up(options)
    assert words in err.value.message + err.value.hint
    assert not (tmp_path / "lab").exists()  # refused before anything was made


def test_an_engine_that_does_not_answer_stops_lab_up_before_it_makes_anything(
        tmp_path: Path) -> None:
    options = LabOptions(name=str(tmp_path / "lab"), runtime="containers",
                         engine=f"unix://{tmp_path / 'no-engine.sock'}")
    with pytest.raises(PlatformError) as err:
        lifecycle.up(options)
    assert "no container engine answers" in err.value.message
    assert "podman system service" in err.value.hint
    assert not (tmp_path / "lab").exists()


def test_a_missing_image_names_make_image(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "_connected", lambda url: object())
    monkeypatch.setattr(engine, "stack_image_ref", lambda: "localhost/stack:abc")
    monkeypatch.setattr(engine, "has_image", lambda client, ref: False)
    with pytest.raises(PlatformError) as err:
        engine.prepare("unix:///e.sock", None)
    assert "localhost/stack:abc is not in the engine at unix:///e.sock" in err.value.message
    assert "make image" in err.value.hint and "--image" in err.value.hint
    monkeypatch.setattr(engine, "has_image", lambda client, ref: ref == "mine:1")
    assert engine.prepare("unix:///e.sock", "mine:1") == ("unix:///e.sock", "mine:1")


def test_container_records_listen_inside_on_a_port_per_service() -> None:
    at = NodeRecord("node-2", "198.19.0.3")
    record = ProcessRecord("worker-node-2", "worker", "node-2", ["x"],
                           {"CHAOSKIT_LISTEN": "198.19.0.3:4444"}, "w.log")
    node.place(at, record)
    assert record.listen == "198.19.0.3:8081" and record.health.endswith(":8081/healthz")
    assert record.env["CHAOSKIT_LISTEN"] == "0.0.0.0:8081"
    assert json.loads(node.services([record]))[0]["service"] == "worker"
    with pytest.raises(PlatformError, match="not offline") as err:
        node.place(at, ProcessRecord("offline-node-2", "offline", "node-2", [], {}, "o.log"))
    assert "batch container" in err.value.hint


def test_container_labs_take_subnets_apart_from_netns_labs() -> None:
    first = addresses.pick_subnet([], first=network.FIRST)
    assert first == ipaddress.IPv4Network("198.19.0.0/24")
    taken = [ipaddress.IPv4Network("198.19.0.0/24")]
    assert addresses.pick_subnet(taken, first=network.FIRST) == ipaddress.IPv4Network(
        "198.19.1.0/24")
    assert addresses.pick_subnet([]) == ipaddress.IPv4Network("198.18.1.0/24")


class FakeRuntime:
    """Records what LocalPlatform asks of the runtime."""

    name = "containers"

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def __getattr__(self, method: str) -> Any:
        def call(lab: LabState, *args: Any) -> Any:
            self.calls.append((method, *args))
            return {"node_loss_modes": {"kill": None, "freeze": None, "isolate": None},
                    "add_node": NodeRecord(str(args[0]) if args else "", ""),
                    "residue": [], "offline_isolation": "weights", "lose": {"done": 1},
                    "restore": {}, "start_offline": "batch-1", "dead": []}.get(method)
        return call


def test_local_platform_asks_the_labs_runtime(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    container_lab(tmp_path)
    fake = FakeRuntime()
    monkeypatch.setattr(local, "runtime_of", lambda lab: fake)
    platform = LocalPlatform(str(tmp_path))
    assert platform.node_loss_modes() == {"kill": None, "freeze": None, "isolate": None}
    assert platform.lose_node("node-1", "freeze") == {"done": 1}
    platform.restore_node("node-1", "freeze")
    assert platform.node_residue("node-1") == []
    assert platform.add_node() == "node-2"
    work = OfflineWork("burner", True, 60.0)
    assert platform.start_offline("node-1", "tag", work) == "batch-1"
    assert platform.offline_isolation() == "weights"
    assert [c[0] for c in fake.calls] == ["node_loss_modes", "lose", "restore", "residue",
                                          "add_node", "start_offline", "offline_isolation"]
    with pytest.raises(PlatformError, match="cannot drain a node"):
        platform.lose_node("node-1", "drain")
    with pytest.raises(PlatformError, match="no node 'node-9'"):
        platform.lose_node("node-9", "kill")
    with pytest.raises(PlatformError, match="containers") as err:
        platform.start_service("node-1", "offline")
    assert "colocate" in err.value.hint
    assert platform.nodes()[0].labels["runtime"] == "containers"


def test_status_names_the_runtime_engine_and_containers(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    lab = container_lab(tmp_path)
    lab.status = "down"
    snapshot = status.collect(lab)
    assert snapshot["runtime"] == "containers" and snapshot["image"] == "img"
    text = status.table(snapshot)
    assert "(containers runtime, container nodes, down)" in text
    assert "engine unix:///nowhere.sock" in text and "container chaoskit-lab-abcde-node-1" in text


# -- the supervisor, with real stack processes on this machine ---------------------------------
def supervise(tmp_path: Path, services: list[dict[str, Any]]) -> subprocess.Popen[bytes]:
    env = {**os.environ, node.SERVICES_ENV: json.dumps(services),
           node.LOG_DIR_ENV: str(tmp_path)}
    return subprocess.Popen([sys.executable, "-m", "chaoskit.lab.containers.supervisor"],
                            env=env, stderr=subprocess.PIPE)


def bank(ident: str) -> dict[str, Any]:
    port = addresses.free_port()
    return {"id": ident, "service": "bank",
            "env": {"CHAOSKIT_LISTEN": f"127.0.0.1:{port}", "CHAOSKIT_BANK_LATENCY": "1ms"}}


def listening(spec: dict[str, Any]) -> bool:
    host, _, port = spec["env"]["CHAOSKIT_LISTEN"].rpartition(":")
    with socket.socket() as sock:
        return sock.connect_ex((host, int(port))) == 0


def test_the_supervisor_passes_sigterm_on_and_logs_each_service(tmp_path: Path) -> None:
    services = [bank("bank-a"), bank("bank-b")]
    supervisor = supervise(tmp_path, services)
    try:
        wait_for(lambda: all(listening(s) for s in services), 30, "both banks")
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(15) == 0
    finally:
        supervisor.kill()
    assert not any(listening(s) for s in services)
    assert {p.name for p in tmp_path.iterdir()} == {"bank-a.log", "bank-b.log"}


def test_one_service_ending_ends_the_node(tmp_path: Path) -> None:
    survivor = bank("bank-a")
    broken = {"id": "gateway-x", "service": "gateway", "env": {"CHAOSKIT_BROKEN": "no-such"}}
    supervisor = supervise(tmp_path, [survivor, broken])
    try:
        code = supervisor.wait(30)
        err = (supervisor.stderr.read() if supervisor.stderr else b"").decode()
    finally:
        supervisor.kill()
    assert code != 0 and "gateway-x exited" in err, err
    assert "CHAOSKIT_BROKEN" in (tmp_path / "gateway-x.log").read_text()
    time.sleep(0.2)
    assert not listening(survivor)


def test_the_api_version_comes_from_the_ping_answer(tmp_path: Path) -> None:
    import threading

    from chaoskit.platforms.containers.engine import api_version

    path = tmp_path / "engine.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(2)
    answers = [b"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Length: 2\r\n\r\nOK",
               b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK"]

    def serve() -> None:
        for answer in answers:
            conn, _ = server.accept()
            with conn:
                conn.recv(1024)
                conn.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        assert api_version(f"unix://{path}") == "1.41"
        assert api_version(f"unix://{path}") is None  # no header: the client asks /version
    finally:
        thread.join(5)
        server.close()
    assert api_version(f"unix://{tmp_path / 'none.sock'}") is None
    assert api_version("tcp://127.0.0.1:2375") is None
