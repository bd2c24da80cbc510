"""Bench: how fast the containers platform loses a container and gives it back, per mode.

Run with `make bench` (or `.venv/bin/pytest tests/bench/bench_containers.py -s -q
-p no:cacheprovider -o python_files='bench_*.py'`). On real Podman: a stack container on an
internal network (a neighbour keeps the bridge up), lost and restored ROUNDS times per mode
through `ContainersPlatform.lose_node`/`restore_node`. Printed per mode, median over the rounds:
the platform call (mark written + engine call), the engine call alone, the restore call, and
the time until the container answers /healthz again after the restore.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Iterator
from typing import Any

import docker
import httpx
import pytest
from docker.types import IPAMConfig, IPAMPool

from chaoskit.platforms.containers.engine import ensure_podman_service, safe_ulimits
from chaoskit.platforms.containers.platform import ContainersConfig, ContainersPlatform
from tests.compose.project import free_subnet
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
