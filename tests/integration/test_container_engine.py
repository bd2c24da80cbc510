"""Podman's Docker API as the lab needs it: stack containers on a 198.18.0.0/15 bridge, reached
from the host and reaching it, paused, cut off, killed, stopped, and removed without residue."""

from __future__ import annotations

import http.server
import ipaddress
import json
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import docker
import pytest
from docker.models.containers import Container
from docker.models.networks import Network
from docker.types import IPAMConfig, IPAMPool

from chaoskit.lab.addresses import LAB_RANGE, networks_in_use
from chaoskit.platforms.containers.engine import safe_ulimits, stable_mac
from tests.fixtures.podman import TEST_LABEL, podman, remove_labelled
from tests.fixtures.waiting import eventually, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.root]

LABEL_VALUE = "container-engine"


def free_subnet(client: docker.DockerClient) -> ipaddress.IPv4Network:
    """A /24 of 198.18.0.0/15 used by no interface, route or engine network (an engine network
    has no bridge until a container joins). From the top: the lab picks from the bottom."""
    used: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = [*networks_in_use()]
    for network in client.networks.list():
        for pool in (network.attrs.get("IPAM") or {}).get("Config") or []:
            if pool.get("Subnet"):
                used.append(ipaddress.ip_network(pool["Subnet"], strict=False))
    for candidate in reversed(list(LAB_RANGE.subnets(new_prefix=24))[1:]):
        if not any(candidate.overlaps(net) for net in used if net.version == 4):
            return candidate
    raise AssertionError("no free /24 in 198.18.0.0/15")


def health(ip: str, timeout: float = 1.0) -> int | None:
    """Status of GET /healthz on port 8080, or None when nothing answers in time."""
    try:
        with urllib.request.urlopen(f"http://{ip}:8080/healthz", timeout=timeout) as response:
            return int(response.status)
    except OSError:
        return None


def address(container: Container, network: Network) -> str | None:
    container.reload()
    settings = container.attrs["NetworkSettings"]["Networks"].get(network.name) or {}
    return settings.get("IPAddress") or None


def route_device(ip: str) -> str:
    routes = json.loads(subprocess.run(["ip", "-j", "route", "get", ip], capture_output=True,
                                       text=True, check=True).stdout)
    return str(routes[0]["dev"])


@pytest.fixture(scope="module")
def lab(container_engine: docker.DockerClient, stack_image: str) -> Iterator[dict[str, Any]]:
    """A labelled bridge network and a neighbour node on it, which keeps the bridge (and so the
    route to the subnet) up while the node under test is cut off or dead."""
    subnet = free_subnet(container_engine)
    gateway = str(subnet.network_address + 1)
    # internal: no default route and no NAT in the nodes; the host and the nodes still meet on
    # the bridge (the gateway address is the host's), and names resolve (aardvark-dns).
    network = container_engine.networks.create(
        f"ck-test-{uuid.uuid4().hex[:8]}", driver="bridge", internal=True,
        labels={TEST_LABEL: LABEL_VALUE},
        ipam=IPAMConfig(pool_configs=[IPAMPool(subnet=str(subnet), gateway=gateway)]))
    lab = {"client": container_engine, "image": stack_image, "network": network,
           "subnet": subnet, "gateway": gateway, "label": LABEL_VALUE}
    neighbour = run_node(lab, "neighbour", 3)
    eventually(lambda: health(str(subnet.network_address + 3), 0.5) == 200, 30, "neighbour up",
               interval=0.05)
    try:
        yield {**lab, "neighbour": neighbour}
    finally:
        remove_labelled(container_engine, f"{TEST_LABEL}={LABEL_VALUE}")


def run_node(lab: dict[str, Any], name: str, host: int, service: str = "bank") -> Container:
    """A stack container as a lab node: fixed IP and MAC, safe ulimits, CPU weight and set."""
    client: docker.DockerClient = lab["client"]
    ip = str(lab["subnet"].network_address + host)
    endpoint = client.api.create_endpoint_config(ipv4_address=ip, mac_address=stable_mac(ip))
    return client.containers.run(
        lab["image"], [service], detach=True, name=f"{lab['network'].name}-{name}",
        environment={"CHAOSKIT_LISTEN": "0.0.0.0:8080", "CHAOSKIT_NODE": name,
                     "CHAOSKIT_INSTANCE": f"{name}-0", "CHAOSKIT_BANK_LATENCY": "1ms"},
        labels={TEST_LABEL: lab["label"], "io.chaoskit.node": name},
        ulimits=safe_ulimits(), cpu_shares=512, cpuset_cpus="0",
        network=lab["network"].name, networking_config={lab["network"].name: endpoint})


@pytest.fixture
def node(lab: dict[str, Any]) -> Iterator[tuple[Container, str]]:
    """The node under test, healthy, at .10; removed after the test."""
    container = run_node(lab, f"node-{uuid.uuid4().hex[:6]}", 10)
    ip = str(lab["subnet"].network_address + 10)
    wait_for(lambda: health(ip, 0.5) == 200, 30, "node healthy")
    yield container, ip
    container.remove(force=True)


def test_the_engine_is_podman_running_containers_with_runc(container_engine: Any) -> None:
    names = [part["Name"] for part in container_engine.version()["Components"]]
    assert "Podman Engine" in names
    assert "OCI Runtime (runc)" in names


def test_a_node_is_reachable_from_the_host_with_its_limits(node: Any) -> None:
    container, ip = node
    assert health(ip) == 200
    host_config = container.attrs["HostConfig"]
    assert (host_config["CpuShares"], host_config["CpusetCpus"]) == (512, "0")
    limits = container.exec_run(["cat", "/proc/1/limits"]).output.decode()
    for ulimit in safe_ulimits():
        row = "Max open files" if ulimit.name == "nofile" else "Max processes"
        line = next(text for text in limits.splitlines() if text.startswith(row))
        assert line.split()[-3:-1] == [str(ulimit.soft), str(ulimit.hard)], line
    assert container.exec_run(["id", "-u"]).output.decode().strip() == "10001"


def test_a_node_reaches_a_server_on_the_host_at_the_gateway(lab: Any, node: Any) -> None:
    container, _ip = node
    server = http.server.ThreadingHTTPServer((lab["gateway"], 0),
                                             http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://{lab['gateway']}:{server.server_address[1]}/"
        code = f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=5).status)"
        result = container.exec_run(["/opt/chaoskit/bin/python", "-c", code])
    finally:
        server.shutdown()
        server.server_close()
    assert (result.exit_code, result.output.decode().strip()) == (0, "200")


def test_nodes_reach_each_other_by_address_and_by_name(lab: Any, node: Any) -> None:
    container, ip = node
    for target in (ip, container.name):
        code = ("import urllib.request; "
                f"print(urllib.request.urlopen('http://{target}:8080/healthz', timeout=5).status)")
        result = lab["neighbour"].exec_run(["/opt/chaoskit/bin/python", "-c", code])
        assert (result.exit_code, result.output.decode().strip()) == (0, "200"), target


def test_nodes_of_an_internal_network_cannot_leave_it(node: Any) -> None:
    container, _ip = node
    code = ("import socket; s = socket.socket(); s.settimeout(3); "
            "print(s.connect_ex(('203.0.113.1', 80)))")  # TEST-NET-3: no route, nothing sent
    result = container.exec_run(["/opt/chaoskit/bin/python", "-c", code])
    assert result.output.decode().strip() == "101"  # ENETUNREACH


def test_pause_blocks_the_health_check_until_unpause(node: Any) -> None:
    container, ip = node
    container.pause()
    container.reload()
    assert container.status == "paused"
    assert health(ip, timeout=1.0) is None
    container.unpause()
    assert wait_for(lambda: health(ip, 0.5) == 200, 5, "healthy after unpause") < 5


def test_disconnect_cuts_the_node_off_and_connect_brings_it_back_at_its_address(
        lab: Any, node: Any) -> None:
    container, ip = node
    network = lab["network"]
    network.disconnect(container)
    assert address(container, network) is None
    # The bridge stays up (the neighbour is on it): the probe cannot leave the machine.
    assert route_device(ip) == route_device(str(lab["subnet"].network_address + 3))
    assert health(ip, timeout=1.0) is None
    network.connect(container, ipv4_address=ip, mac_address=stable_mac(ip))
    assert address(container, network) == ip
    assert wait_for(lambda: health(ip, 0.5) == 200, 5, "healthy after connect") < 5


def test_kill_then_start_brings_the_node_back_at_its_address(lab: Any, node: Any) -> None:
    container, ip = node
    container.kill()
    container.reload()
    assert (container.status, container.attrs["State"]["ExitCode"]) == ("exited", 137)
    assert health(ip, timeout=1.0) is None
    container.start()
    assert address(container, lab["network"]) == ip
    wait_for(lambda: health(ip, 0.5) == 200, 15, "healthy after kill and start")


def test_stop_with_a_timeout_is_a_graceful_sigterm(node: Any) -> None:
    container, ip = node
    started = time.monotonic()
    container.stop(timeout=5)
    container.reload()
    assert time.monotonic() - started < 5, "SIGTERM ignored: stop waited for its SIGKILL"
    assert (container.status, container.attrs["State"]["ExitCode"]) == ("exited", 0)
    assert health(ip, timeout=1.0) is None


def test_six_nodes_start_like_a_lab(lab: Any) -> None:
    started = time.monotonic()
    nodes = [run_node(lab, f"lab-{index}", 20 + index) for index in range(6)]
    ips = [str(lab["subnet"].network_address + 20 + index) for index in range(6)]
    eventually(lambda: all(health(ip, 0.5) == 200 for ip in ips), 60, "six nodes healthy",
               interval=0.05)
    elapsed = time.monotonic() - started
    for container in nodes:
        container.remove(force=True)
    assert elapsed < 30, f"six nodes took {elapsed:.1f}s"


def test_removing_containers_and_network_leaves_nothing(container_engine: Any,
                                                        stack_image: str) -> None:
    value = f"cleanup-{uuid.uuid4().hex[:8]}"
    label = f"{TEST_LABEL}={value}"
    scratch = {"client": container_engine, "image": stack_image, "label": value,
               "subnet": free_subnet(container_engine)}
    scratch["network"] = container_engine.networks.create(
        f"ck-test-{value}", driver="bridge", internal=True, labels={TEST_LABEL: value},
        ipam=IPAMConfig(pool_configs=[IPAMPool(subnet=str(scratch["subnet"]))]))
    container = run_node(scratch, "scratch", 2)
    container.reload()
    bridge = podman("network", "inspect", scratch["network"].name,
                    "--format", "{{.NetworkInterface}}").strip()
    assert bridge and _link_exists(bridge)
    remove_labelled(container_engine, label)
    for listing in (["ps", "-a"], ["network", "ls"], ["pod", "ls"], ["volume", "ls"]):
        assert podman(*listing, "--filter", f"label={label}", "--quiet").strip() == "", listing
    assert value not in podman("network", "ls", "--format", "{{.Name}}")
    assert not _link_exists(bridge)
    rules = "".join(subprocess.run(["iptables", "-t", table, "-S"], capture_output=True,
                                   text=True, check=True).stdout for table in ("filter", "nat"))
    assert bridge not in rules and str(scratch["subnet"]) not in rules


def _link_exists(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", name], capture_output=True).returncode == 0
