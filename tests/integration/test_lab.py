"""The local lab for real: up healthy, a smoke through HAProxy, status, logs, down after a crash."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from chaoskit.errors import PlatformError
from chaoskit.lab import cgroups, haproxy, state, status
from chaoskit.lab import lifecycle as lab_module
from tests.fixtures.lab import RunningLab, leftovers, require_lab_tools, start_lab, stop_lab
from tests.fixtures.systems import role_node

pytestmark = pytest.mark.integration
ROOT = os.geteuid() == 0


def post(http: httpx.Client, path: str, body: dict[str, str]) -> dict[str, str]:
    response = http.post(path, json=body, headers={"Idempotency-Key": uuid.uuid4().hex})
    assert response.status_code in (201, 202), response.text
    return dict(response.json())


def wait_completed(http: httpx.Client, flow_ids: list[str], timeout: float) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        flows = [http.get(f"/v1/flows/{fid}").json() for fid in flow_ids]
        if all(f["status"] != "pending" for f in flows) or time.monotonic() > deadline:
            return flows
        time.sleep(0.2)


def test_lab_comes_up_healthy_on_its_nodes(lab: RunningLab) -> None:
    snapshot = status.collect(state.load(Path(lab.dir)))
    # `up` itself fails when the lab is not healthy within 30 s; the figure is reported only.
    print(f"\nlab up took {lab.up_seconds:.2f}s")
    assert all(p["alive"] for p in snapshot["processes"]), snapshot["processes"]
    assert all(p["healthy"] for p in snapshot["processes"] if p["service"] != "postgres"
               and p["service"] != "toxiproxy")
    assert set(snapshot["haproxy"].values()) == {"UP"} and len(snapshot["haproxy"]) == 3
    services = [(p["service"], p["node"]) for p in snapshot["processes"]]
    schedulers = [n for s, n in services if s == "scheduler"]
    assert len(schedulers) == 2 and len(set(schedulers)) == 2
    assert {n for s, n in services if s == "worker"} == {"node-1", "node-2", "node-3"}
    if snapshot["mode"] == "netns":
        subnet = ipaddress.ip_network(snapshot["subnet"])
        assert subnet.subnet_of(ipaddress.ip_network("198.18.0.0/15"))
        assert all(ipaddress.ip_address(n["address"]) in subnet for n in snapshot["nodes"])
        lab_state = state.load(Path(lab.dir))
        for node in lab_state.nodes:
            members = cgroups.members(cgroups.freezer(lab_state.lab_id, node.name))
            assert {p.pid for p in lab_state.processes_on(node.name)} <= set(members)


def test_smoke_pay_refund_final_payment_complete_on_time(lab: RunningLab) -> None:
    with httpx.Client(base_url=lab.platform.entry_url(), trust_env=False, timeout=5) as http:
        payment = post(http, "/v1/payments", {"amount": "30.00", "currency": "CNY",
                                              "merchant": "m-smoke"})
        assert payment["status"] == "completed"
        refund = post(http, "/v1/refunds", {"payment_id": payment["id"], "amount": "10.00"})
        final = post(http, "/v1/final-payments", {"amount": "70.00", "currency": "CNY",
                                                  "merchant": "m-smoke"})
        flows = wait_completed(http, [refund["id"], final["id"]], 30)
    for flow in flows:
        assert flow["status"] == "completed", flow
        assert flow["completed_at"] <= flow["due_at"], flow


def run_cli(*argv: str) -> tuple[int, str]:
    done = subprocess.run([sys.executable, "-m", "chaoskit.lab.commands", *argv],
                          check=False, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
    return done.returncode, done.stdout + done.stderr


def test_status_json_reports_nodes_processes_proxies(lab: RunningLab) -> None:
    code, out = run_cli("status", "--name", lab.dir, "--json")
    assert code == 0, out
    snapshot = json.loads(out)
    assert snapshot["toxiproxy_api"].startswith("http://127.0.0.1:")
    assert {p["name"] for p in snapshot["proxies"]} == {
        "postgres", "bank-alpha", "bank-beta", "bank-gamma"}
    assert all(p["present"] and p["enabled"] for p in snapshot["proxies"])
    assert [n["name"] for n in snapshot["nodes"]] == ["node-1", "node-2", "node-3"]
    for proc in snapshot["processes"]:
        assert {"id", "service", "node", "pid", "alive", "listen", "healthy", "log"} <= set(proc)
    assert snapshot["entry_url"] == lab.platform.entry_url()


def test_logs_shows_each_process_log(lab: RunningLab) -> None:
    code, out = run_cli("logs", "scheduler", "--name", lab.dir)
    assert code == 0, out
    assert "==> scheduler-node-1" in out and "==> scheduler-node-2" in out
    assert "became leader" in out
    code, out = run_cli("logs", "no-such-thing", "--name", lab.dir)
    assert code == 4 and "known:" in out


def test_second_lab_runs_side_by_side(lab: RunningLab, lab_root: Path) -> None:
    other = start_lab(lab_root, nodes=2)
    try:
        first, second = state.load(Path(lab.dir)), other.state
        assert first.lab_id != second.lab_id
        if first.mode == "netns":
            assert first.subnet != second.subnet and first.bridge != second.bridge
        ports = {p.listen for p in first.processes} & {p.listen for p in second.processes}
        assert not ports
        with httpx.Client(trust_env=False, timeout=2) as http:
            assert http.get(f"{other.platform.entry_url()}/healthz").status_code == 200
            assert http.get(f"{lab.platform.entry_url()}/healthz").status_code == 200
        assert haproxy.server_states(second.haproxy_socket) == {"node-1": "UP", "node-2": "UP"}
    finally:
        stop_lab(other)


def test_down_cleans_up_after_lab_up_was_sigkilled(lab_root: Path) -> None:
    require_lab_tools()
    directory = lab_root / f"crash-{uuid.uuid4().hex[:6]}"
    child = subprocess.Popen([sys.executable, "-m", "chaoskit.lab.commands", "up",
                              "--name", str(directory), "--nodes", "2"],
                             env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # kill it midway: some processes started, not healthy
        if state.exists(directory) and sum(
                1 for p in state.load(directory).processes if p.pid) >= 4:
            break
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    crashed = state.load(directory)
    assert crashed.status == "creating"
    assert leftovers(crashed), "the crash should have left something running to clean up"
    assert lab_module.down(str(directory)) == []
    assert leftovers(state.load(directory)) == []


def test_lab_with_process_nodes_and_what_needs_root(lab_root: Path) -> None:
    require_lab_tools()
    running = start_lab(lab_root, nodes=2, mode="process")
    try:
        assert running.state.mode == "process"
        assert all(n.address == "127.0.0.1" for n in running.state.nodes)
        running.platform.freeze_node("node-2")
        assert running.platform.node_residue("node-2") == ["node node-2 is frozen"]
        running.platform.thaw_node("node-2")
        assert running.platform.node_residue("node-2") == []
        with pytest.raises(Exception, match="needs a network namespace") as err:
            running.platform.isolate_node("node-1")
        assert type(err.value).__name__ == "PermissionMissing"
    finally:
        stop_lab(running)


def test_cli_up_refuses_a_lab_that_is_already_up(lab: RunningLab) -> None:
    code, out = run_cli("up", "--name", lab.dir)
    assert code == 4 and "already up" in out and "lab down" in out



@pytest.mark.root
@pytest.mark.skipif(not ROOT, reason="netns nodes need root")
def test_a_failed_up_never_removes_kernel_objects_it_did_not_make(lab_root: Path) -> None:
    from chaoskit.lab import netns
    from chaoskit.lab.topology import LabOptions

    directory = lab_root / f"clash-{uuid.uuid4().hex[:6]}"
    bridge = f"ck{state.lab_id(directory.resolve())}"
    netns.ip("link", "add", bridge, "type", "bridge")  # a stale lab's bridge, say
    try:
        with pytest.raises(PlatformError, match="already exist") as err:
            lab_module.up(LabOptions(name=str(directory), nodes=2))
        assert "lab down" in err.value.hint
        assert netns.link_exists(bridge)
        failed = state.load(directory)
        assert failed.bridge == "" and failed.status == "down"  # never claimed, nothing left
    finally:
        netns.delete_link(bridge)


def test_platform_preflight_is_clean_on_a_healthy_lab(lab: RunningLab) -> None:
    import asyncio

    assert asyncio.run(lab.platform.preflight()) == []
    assert role_node(lab.platform, "gateway") in {"node-1", "node-2", "node-3"}
    assert set(lab.platform.metrics_targets()) >= {"gateway-node-1", "worker-node-3", "bank"}
