"""A running lab changes shape: a node joins and leaves, an extra process starts and stops."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from chaoskit.lab import haproxy, netns, processes
from tests.fixtures.lab import RunningLab
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.integration



def healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=0.5, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_node_joins_the_rotation_and_leaves_without_trace(lab: RunningLab) -> None:
    platform = lab.platform
    socket_path = platform.lab().haproxy_socket
    name = platform.add_node()
    try:
        joined = wait_for(lambda: haproxy.server_states(socket_path).get(name) == "UP", 30,
                          f"{name} in rotation")
        print(f"\n{name} joined HAProxy's rotation {joined:.2f}s after its processes started")
        assert name in [n.name for n in platform.nodes()]
        assert platform.node_residue(name) == []
        served = {httpx.get(f"{platform.entry_url()}/healthz", trust_env=False).json()["node"]
                  for _ in range(12)}
        assert name in served
    finally:
        added = platform.lab().node(name)
        platform.remove_node(name)
    assert name not in haproxy.server_states(socket_path)
    assert name not in [n.name for n in platform.nodes()]
    if added.netns:
        assert added.netns not in netns.netns_list() and not netns.link_exists(added.veth or "")
    assert healthy(f"{platform.entry_url()}/healthz")


def test_an_extra_process_runs_on_a_node_and_stops(lab: RunningLab) -> None:
    platform = lab.platform
    process_id = platform.start_service("node-1", "offline")
    record = platform.lab().process(process_id)
    assert record is not None and record.node == "node-1"
    wait_for(lambda: healthy(platform.process_health_url(process_id)), 30, "offline job")
    cgroup = platform.node_cgroup("node-1", "cpu")
    if cgroup is not None:
        assert str(record.pid) in Path(cgroup, "cgroup.procs").read_text().split()
    platform.stop_service(process_id)
    assert not processes.alive(record.pid, record.started)
    assert platform.lab().process(process_id) is None
