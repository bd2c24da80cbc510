"""The local lab with container nodes on real Podman: up healthy and fast, the stack served
through HAProxy, node loss, co-location and capacity on containers, down with nothing left on
the engine, and a missing image refused before anything is made."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import random
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from chaoskit.errors import PlatformError
from chaoskit.faults.node_loss import NodeLoss, NodeLossConfig
from chaoskit.lab import haproxy, state
from chaoskit.lab import lifecycle as lab_module
from chaoskit.lab.containers.engine import LAB
from chaoskit.lab.topology import LabOptions
from chaoskit.platforms.abilities import OfflineWork
from chaoskit.platforms.containers.colocation import all_cpus
from chaoskit.platforms.containers.engine import stable_mac
from tests.fixtures.container_lab import (
    engine_leftovers,
    start_container_lab,
    stop_container_lab,
)
from tests.fixtures.lab import RunningLab, leftovers
from tests.fixtures.systems import role_node
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.integration
HEALTHY_WITHIN = 10.0  # the promise once the image is built


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def inspect(client: docker.DockerClient, running: RunningLab, node: str) -> dict[str, Any]:
    name = running.platform.lab().node(node).container
    return dict(client.api.inspect_container(name))


def endpoint(attrs: dict[str, Any], network: str) -> dict[str, Any]:
    return dict((attrs["NetworkSettings"]["Networks"] or {}).get(network) or {})


def entry_states(running: RunningLab) -> dict[str, str]:
    return haproxy.server_states(running.platform.lab().haproxy_socket)


def pay(entry: str, count: int = 1) -> list[dict[str, Any]]:
    with httpx.Client(base_url=entry, trust_env=False, timeout=10) as http:
        answers = [http.post("/v1/payments", headers={"Idempotency-Key": uuid.uuid4().hex},
                             json={"amount": "12.00", "currency": "CNY", "merchant": "m-ct"})
                   for _ in range(count)]
    assert all(a.status_code == 201 for a in answers), [a.text for a in answers]
    return [a.json() for a in answers]


def test_container_lab_is_healthy_within_10s_on_its_own_network(
        container_lab: RunningLab, container_engine: docker.DockerClient) -> None:
    lab = container_lab.platform.lab()
    print(f"\ncontainer lab up in {container_lab.up_seconds:.2f}s")
    assert container_lab.up_seconds < HEALTHY_WITHIN
    assert (lab.runtime, lab.mode) == ("containers", "container")
    subnet = ipaddress.ip_network(lab.subnet)
    assert subnet.subnet_of(ipaddress.ip_network("198.18.0.0/15"))
    net = container_engine.api.inspect_network(lab.network)
    assert net["Internal"] is True and net["Labels"][LAB] == lab.lab_id
    for node in lab.nodes:
        attrs = inspect(container_engine, container_lab, node.name)
        assert attrs["State"]["Running"] and attrs["Config"]["Labels"][LAB] == lab.lab_id
        place = endpoint(attrs, lab.network)
        assert place["IPAddress"] == node.address and ipaddress.ip_address(node.address) in subnet
        assert place["MacAddress"] == stable_mac(node.address)
        assert list(attrs["NetworkSettings"]["Networks"]) == [lab.network]  # nothing else
    for proxy in lab.proxies.values():  # the stack reaches its dependencies through Toxiproxy
        assert proxy["listen"].startswith(f"{lab.host_ip}:")
    stack = [p for p in lab.processes if p.node]
    assert {p.env["CHAOSKIT_DATABASE_URL"].split("@")[-1].split("/")[0] for p in stack} == {
        lab.proxies["postgres"]["listen"]}
    assert set(entry_states(container_lab).values()) == {"UP"}
    assert container_lab.platform.node_loss_modes() == {"kill": None, "freeze": None,
                                                        "isolate": None}


def test_payments_refunds_and_final_payments_complete_through_haproxy(
        container_lab: RunningLab) -> None:
    entry = container_lab.platform.entry_url()
    payment = pay(entry)[0]
    assert payment["status"] == "completed"
    with httpx.Client(base_url=entry, trust_env=False, timeout=10) as http:
        refund = http.post("/v1/refunds", headers={"Idempotency-Key": uuid.uuid4().hex},
                           json={"payment_id": payment["id"], "amount": "2.00"}).json()
        served = {http.get("/healthz").json()["node"] for _ in range(12)}
        wait_for(lambda: http.get(f"/v1/flows/{refund['id']}").json()["status"] == "completed",
                 30, "the refund to complete")
    assert served == {"node-1", "node-2", "node-3"}


def run_cli(*argv: str) -> tuple[int, str]:
    done = subprocess.run([sys.executable, "-m", "chaoskit.lab.commands", *argv],
                          check=False, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
    return done.returncode, done.stdout + done.stderr


def test_status_shows_the_runtime_and_logs_come_from_the_containers(
        container_lab: RunningLab) -> None:
    code, out = run_cli("status", "--name", container_lab.dir, "--json")
    assert code == 0, out
    snapshot = json.loads(out)
    assert snapshot["runtime"] == "containers" and snapshot["image"]
    assert all(n["container"] and n["link_up"] for n in snapshot["nodes"])
    assert all(p["alive"] for p in snapshot["processes"])
    code, out = run_cli("status", "--name", container_lab.dir)
    assert "(containers runtime, container nodes, up)" in out, out
    code, out = run_cli("logs", "scheduler", "--name", container_lab.dir)
    assert code == 0 and "became leader" in out, out


# -- node loss on container nodes ------------------------------------------------------------
def test_killing_the_leaders_container_fails_over_and_revert_starts_it_again(
        container_lab: RunningLab, container_engine: docker.DockerClient) -> None:
    platform, driver = container_lab.platform, NodeLoss(container_lab.platform)
    victim = role_node(platform, "scheduler-leader")
    intent = driver.plan("kill-leader", {"node": victim}, NodeLossConfig(mode="kill"),
                         random.Random(0))
    before = inspect(container_engine, container_lab, victim)
    facts = run(driver.inject(intent))
    try:
        assert not inspect(container_engine, container_lab, victim)["State"]["Running"]
        effect = run(driver.measure_effect(intent))
        assert effect["recovered"] and effect["leader_s"] is not None, effect
        assert role_node(platform, "scheduler-leader") != victim
        pay(platform.entry_url(), 5)  # HAProxy routes around the dead node
    finally:
        reverted = run(driver.revert(intent))
    print(f"\nkill {victim}: engine {facts['engine_ms']} ms, recovered in "
          f"{effect['recovery_s']}s, healthy again {reverted['node_healthy_s']}s after revert")
    assert reverted["node_healthy"] and set(reverted["restarted"]) == set(facts["killed"])
    after = inspect(container_engine, container_lab, victim)
    lab = platform.lab()
    assert after["State"]["Running"] and after["Id"] == before["Id"]
    assert endpoint(after, lab.network)["IPAddress"] == lab.node(victim).address
    assert endpoint(after, lab.network)["MacAddress"] == stable_mac(lab.node(victim).address)
    assert run(driver.verify_reverted(intent)) == []
    assert run(driver.revert(intent))["restarted"] == []  # idempotent
    wait_for(lambda: entry_states(container_lab).get(victim) == "UP", 10, f"{victim} UP")


def test_a_frozen_container_is_paused_leaves_rotation_and_comes_back(
        container_lab: RunningLab, container_engine: docker.DockerClient) -> None:
    platform, driver = container_lab.platform, NodeLoss(container_lab.platform)
    intent = driver.plan("hang", {"node": "node-2"}, NodeLossConfig(mode="freeze"),
                         random.Random(0))
    run(driver.inject(intent))
    try:
        assert inspect(container_engine, container_lab, "node-2")["State"]["Paused"]
        assert "is paused" in " ".join(platform.node_residue("node-2"))
        wait_for(lambda: entry_states(container_lab).get("node-2") == "DOWN", 10,
                 "HAProxy to mark node-2 down")
        pay(platform.entry_url(), 5)
    finally:
        reverted = run(driver.revert(intent))
    assert reverted["node_healthy"] and run(driver.verify_reverted(intent)) == []
    assert not inspect(container_engine, container_lab, "node-2")["State"]["Paused"]
    wait_for(lambda: entry_states(container_lab).get("node-2") == "UP", 10, "node-2 UP")


def test_an_isolated_container_is_off_the_network_and_rejoins_at_its_address(
        container_lab: RunningLab, container_engine: docker.DockerClient) -> None:
    platform, driver = container_lab.platform, NodeLoss(container_lab.platform)
    lab = platform.lab()
    intent = driver.plan("cut", {"node": "node-3"}, NodeLossConfig(mode="isolate"),
                         random.Random(0))
    run(driver.inject(intent))
    try:
        assert endpoint(inspect(container_engine, container_lab, "node-3"), lab.network) == {}
        assert "disconnected" in " ".join(platform.node_residue("node-3"))
        took = wait_for(lambda: entry_states(container_lab).get("node-3") == "DOWN", 10,
                        "HAProxy to mark node-3 down")
        print(f"\nisolated node-3 marked down by HAProxy after {took:.2f}s")
        pay(platform.entry_url(), 5)
    finally:
        reverted = run(driver.revert(intent))
    assert reverted["node_healthy"] and run(driver.verify_reverted(intent)) == []
    place = endpoint(inspect(container_engine, container_lab, "node-3"), lab.network)
    assert (place["IPAddress"], place["MacAddress"]) == (lab.node("node-3").address,
                                                         stable_mac(lab.node("node-3").address))
    wait_for(lambda: entry_states(container_lab).get("node-3") == "UP", 10, "node-3 UP")


# -- co-location and capacity ------------------------------------------------------------------
def test_an_isolated_batch_container_shares_the_nodes_cpus_at_low_weight(
        container_lab: RunningLab, container_engine: docker.DockerClient) -> None:
    platform = container_lab.platform
    tag = f"batch-{uuid.uuid4().hex[:6]}"
    name = platform.start_offline("node-1", tag, OfflineWork("burner", True, 60.0, cpu=1))
    try:
        attrs = container_engine.api.inspect_container(name)
        online = inspect(container_engine, container_lab, "node-1")
        assert attrs["HostConfig"]["CpuShares"] == 2
        assert online["HostConfig"]["CpuShares"] == 1024
        assert attrs["HostConfig"]["CpusetCpus"] == (online["HostConfig"]["CpusetCpus"]
                                                      or all_cpus(container_engine))
        assert list(attrs["NetworkSettings"]["Networks"]) == [platform.lab().network]
        found = platform.offline_processes(tag)
        assert [(p.id, p.node, p.alive) for p in found] == [(name, "node-1", True)]
        assert "cpu.shares 2" in platform.offline_isolation()
        wait_for(lambda: platform.process_cpu_seconds(name) > 0.2, 20, "the burner burns")
    finally:
        assert platform.stop_offline(tag) == [name]
    assert platform.offline_residue(tag) == []


def test_a_node_container_joins_rotation_and_leaves_without_a_trace(
        container_lab: RunningLab, container_engine: docker.DockerClient) -> None:
    platform = container_lab.platform
    [name] = platform.next_node_names(1)
    assert platform.add_node(name) == name
    try:
        wait_for(lambda: platform.entry_states().get(name) == "UP", 20, f"{name} UP")
        assert inspect(container_engine, container_lab, name)["State"]["Running"]
        platform.drain_gateway(name, 2.0)
    finally:
        platform.remove_node(name)
    assert platform.departed_residue(name) == []
    assert name not in {n.name for n in platform.nodes()}
    assert set(platform.entry_states()) == {"node-1", "node-2", "node-3"}


def test_a_retired_node_container_stops_and_returns(container_lab: RunningLab,
                                                    container_engine: docker.DockerClient) -> None:
    platform = container_lab.platform
    stopped = platform.retire_node("node-3", 1.0)
    try:
        assert set(stopped) == {"gateway-node-3", "worker-node-3"}
        assert not inspect(container_engine, container_lab, "node-3")["State"]["Running"]
        assert platform.entry_states()["node-3"] == "MAINT"
    finally:
        platform.return_node("node-3")
    wait_for(lambda: platform.entry_states().get("node-3") == "UP", 20, "node-3 back UP")
    assert platform.node_residue("node-3") == []


# -- down, and bad input -------------------------------------------------------------------------
def test_down_removes_every_container_network_and_volume_even_with_faults_applied(
        lab_root: Path, container_engine: docker.DockerClient, stack_image: str) -> None:
    running = start_container_lab(lab_root, stack_image, nodes=2)
    platform = running.platform
    platform.lose_node("node-2", "freeze")  # a mark volume and a paused container
    platform.start_offline("node-1", "left-over", OfflineWork("burner", True, 60.0, cpu=1))
    assert engine_leftovers(container_engine, platform.lab())  # there is something to remove
    stop_container_lab(running, container_engine)  # asks the engine: nothing left


def test_a_missing_image_is_refused_before_anything_is_made(
        lab_root: Path, container_engine: docker.DockerClient) -> None:
    directory = lab_root / f"no-image-{uuid.uuid4().hex[:6]}"
    networks = {n.name for n in container_engine.networks.list()}
    with pytest.raises(PlatformError) as err:
        lab_module.up(LabOptions(name=str(directory), runtime="containers",
                                 image="localhost/chaoskit/payment-stack:never-built"))
    assert "never-built is not in the engine" in err.value.message
    assert "make image" in err.value.hint
    assert not state.exists(directory)
    assert {n.name for n in container_engine.networks.list()} == networks


def test_down_cleans_up_after_a_container_lab_up_was_sigkilled(
        lab_root: Path, container_engine: docker.DockerClient, stack_image: str) -> None:
    directory = lab_root / f"crash-{uuid.uuid4().hex[:6]}"
    child = subprocess.Popen([sys.executable, "-m", "chaoskit.lab.commands", "up", "--name",
                              str(directory), "--nodes", "2", "--runtime", "containers",
                              "--image", stack_image],
                             env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:  # killed midway: its network and some node containers exist, it is not healthy yet
        wait_for(lambda: state.exists(directory) and container_engine.containers.list(
            all=True, filters={"label": f"{LAB}={state.load(directory).lab_id}"}), 30,
            "a node container of the lab")
    finally:
        child.kill()
        child.wait(10)
    crashed = state.load(directory)
    assert crashed.status == "creating" and engine_leftovers(container_engine, crashed)
    assert lab_module.down(str(directory)) == []
    assert engine_leftovers(container_engine, state.load(directory)) == []
    assert leftovers(state.load(directory)) == []
