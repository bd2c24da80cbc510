"""Bench: how fast containers are lost and given back, and how fast a lab of them comes up.

Run with `make bench` (or `.venv/bin/pytest tests/bench/bench_containers.py -s -q
-p no:cacheprovider -o python_files='bench_*.py'`). On real Podman:
- the containers platform: a stack container on an internal network (a neighbour keeps the
  bridge up), lost and restored ROUNDS times per mode through `ContainersPlatform.lose_node`/
  `restore_node`. Printed per mode, median over the rounds: the platform call (mark written +
  engine call), the engine call alone, the restore call, and the time until the container
  answers /healthz again after the restore;
- the local lab: `lab up` until healthy and `lab down`, container nodes against netns nodes
  (LAB_ROUNDS each, alternating), and the same node-loss figures through LocalPlatform on
  node-3 of a 3-node lab of each runtime (kill, freeze, isolate).
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
from docker.types import IPAMConfig, IPAMPool

from chaoskit.lab import lifecycle as lab_control
from chaoskit.platforms.containers.engine import ensure_podman_service, safe_ulimits
from chaoskit.platforms.containers.platform import ContainersConfig, ContainersPlatform
from chaoskit.platforms.local.platform import LocalPlatform
from tests.compose.project import free_subnet
from tests.fixtures.lab import require_lab_tools, start_lab
from tests.fixtures.podman import TEST_LABEL, remove_labelled

pytestmark = pytest.mark.integration

ROUNDS = 5
MODES = ("kill", "freeze", "isolate", "stop")
LABEL = "bench-containers"


def healthy(ip: str) -> bool:
    try:
        return httpx.get(f"http://{ip}:8080/healthz", timeout=0.5, trust_env=False).is_success
    except httpx.HTTPError:
        return False


def until(check: Any, timeout: float) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, "not in time"
        time.sleep(0.005)
    return (time.monotonic() - started) * 1e3


def run_node(client: docker.DockerClient, image: str, network: str, name: str) -> None:
    client.containers.run(image, ["bank"], detach=True, name=name, network=network,
                          environment={"CHAOSKIT_LISTEN": "0.0.0.0:8080",
                                       "CHAOSKIT_BANK_LATENCY": "1ms"},
                          labels={TEST_LABEL: LABEL}, ulimits=safe_ulimits())


@pytest.fixture(scope="module")
def bench_node(container_engine: docker.DockerClient, stack_image: str) -> Iterator[str]:
    subnet = free_subnet(container_engine)
    network = container_engine.networks.create(
        f"ck-bench-{uuid.uuid4().hex[:6]}", driver="bridge", internal=True,
        labels={TEST_LABEL: LABEL},
        ipam=IPAMConfig(pool_configs=[IPAMPool(subnet=str(subnet))]))
    name = f"{network.name}-node"
    try:
        run_node(container_engine, stack_image, network.name, f"{network.name}-neighbour")
        run_node(container_engine, stack_image, network.name, name)
        yield name
    finally:
        remove_labelled(container_engine, f"{TEST_LABEL}={LABEL}")


def test_activation_and_revert_times_per_mode(bench_node: str) -> None:
    config = ContainersConfig(engine=ensure_podman_service(), containers=[bench_node],
                              health={bench_node: "http://{address}:8080/healthz"})
    platform = ContainersPlatform(config, run=f"bench-{uuid.uuid4().hex[:6]}")
    ip = platform.inventory().node(bench_node).address
    until(lambda: healthy(ip), 30)
    rows = {}
    for mode in MODES:
        rounds: dict[str, list[float]] = {"apply": [], "engine": [], "revert": [], "back": []}
        for _ in range(ROUNDS):
            started = time.monotonic()
            facts = platform.lose_node(bench_node, mode)
            rounds["apply"].append((time.monotonic() - started) * 1e3)
            rounds["engine"].append(float(facts["engine_ms"]))
            assert not healthy(ip)
            started = time.monotonic()
            platform.restore_node(bench_node, mode)
            rounds["revert"].append((time.monotonic() - started) * 1e3)
            rounds["back"].append(until(lambda: healthy(ip), 30))
            assert platform.node_residue(bench_node) == []
        rows[mode] = {k: statistics.median(v) for k, v in rounds.items()}
    print(f"\ncontainers platform on Podman, median of {ROUNDS} rounds (ms):")
    print(f"{'mode':8} {'apply':>8} {'engine':>8} {'revert':>8} {'healthy after':>14}")
    for mode, row in rows.items():
        print(f"{mode:8} {row['apply']:8.1f} {row['engine']:8.1f} {row['revert']:8.1f} "
              f"{row['back']:14.1f}")


# -- the local lab: container nodes against netns nodes ----------------------------------------
LAB_ROUNDS = 3
LAB_MODES = ("kill", "freeze", "isolate")
RUNTIMES = {"netns nodes": "processes", "container nodes": "containers"}


def spread(values: list[float]) -> str:
    return (f"{statistics.median(values):6.2f} [{min(values):.2f}-{max(values):.2f}]"
            if values else "     -")


def test_lab_up_and_down_times_container_nodes_versus_netns_nodes(
        tmp_path: Path, container_engine: docker.DockerClient, stack_image: str) -> None:
    """`lab up` until healthy (HAProxy sees every gateway), then `lab down`, alternating."""
    require_lab_tools()
    up: dict[str, list[float]] = {label: [] for label in RUNTIMES}
    down: dict[str, list[float]] = {label: [] for label in RUNTIMES}
    for _ in range(LAB_ROUNDS):
        for label, runtime in RUNTIMES.items():
            running = start_lab(tmp_path, runtime=runtime,
                                image=stack_image if runtime == "containers" else None)
            up[label].append(running.up_seconds)
            started = time.monotonic()
            assert lab_control.down(running.dir) == []
            down[label].append(time.monotonic() - started)
    print(f"\nlocal lab, 3 nodes, median of {LAB_ROUNDS} [min-max] (s):")
    print(f"{'nodes':16} {'up (healthy)':>20} {'down':>20}")
    for label in RUNTIMES:
        print(f"{label:16} {spread(up[label]):>20} {spread(down[label]):>20}")


def node_healthy(platform: LocalPlatform, node: str) -> bool:
    urls = platform.node_health_urls(node).values()
    try:
        return all(httpx.get(u, timeout=0.3, trust_env=False).is_success for u in urls)
    except httpx.HTTPError:
        return False


def lab_rounds(platform: LocalPlatform, mode: str) -> dict[str, float]:
    """Median ms over ROUNDS of losing node-3 and giving it back (engine: containers only)."""
    rounds: dict[str, list[float]] = {"apply": [], "engine": [], "revert": [], "back": []}
    for _ in range(ROUNDS):
        started = time.monotonic()
        facts = platform.lose_node("node-3", mode)
        rounds["apply"].append((time.monotonic() - started) * 1e3)
        if "engine_ms" in facts:
            rounds["engine"].append(float(facts["engine_ms"]))
        assert not node_healthy(platform, "node-3")
        started = time.monotonic()
        platform.restore_node("node-3", mode)
        rounds["revert"].append((time.monotonic() - started) * 1e3)
        rounds["back"].append(until(lambda: node_healthy(platform, "node-3"), 30))
        assert platform.node_residue("node-3") == []
    return {k: statistics.median(v) if v else float("nan") for k, v in rounds.items()}


def test_lab_node_loss_activation_and_revert_times_per_runtime(
        tmp_path: Path, container_engine: docker.DockerClient, stack_image: str) -> None:
    """LocalPlatform.lose_node / restore_node on node-3 of a 3-node lab, ROUNDS per mode."""
    require_lab_tools()
    rows: dict[tuple[str, str], dict[str, float]] = {}
    for label, runtime in RUNTIMES.items():
        running = start_lab(tmp_path, runtime=runtime,
                            image=stack_image if runtime == "containers" else None)
        try:
            for mode in LAB_MODES:
                rows[(label, mode)] = lab_rounds(running.platform, mode)
        finally:
            assert lab_control.down(running.dir) == []
    print(f"\nlocal lab node loss (LocalPlatform), median of {ROUNDS} rounds (ms):")
    print(f"{'nodes':16} {'mode':8} {'apply':>8} {'engine':>8} {'revert':>8} "
          f"{'healthy after':>14}")
    for (label, mode), row in rows.items():
        print(f"{label:16} {mode:8} {row['apply']:8.1f} {row['engine']:8.1f} "
              f"{row['revert']:8.1f} {row['back']:14.1f}")
