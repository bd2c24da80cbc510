"""Without root (loopback nodes, no cgroups), isolation is nice 19 against the online nice 0."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaoskit.faults.colocate import Colocate, ColocateConfig
from chaoskit.lab import processes
from tests.fixtures.lab import RunningLab, require_lab_tools, start_lab, stop_lab

pytestmark = pytest.mark.integration


def nice_of(pid: int) -> int:
    """The nice value of a process (/proc/<pid>/stat, field 19)."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


@pytest.fixture(scope="module")
def loopback_lab(lab_root: Path) -> Iterator[RunningLab]:
    require_lab_tools()
    running = start_lab(lab_root, nodes=2, mode="process")
    try:
        yield running
    finally:
        stop_lab(running)


@pytest.mark.parametrize("isolation, nice", [(True, 19), (False, 0)])
def test_isolation_on_loopback_nodes_is_niceness(loopback_lab: RunningLab, isolation: bool,
                                                 nice: int) -> None:
    platform, driver = loopback_lab.platform, Colocate(loopback_lab.platform)
    intent = driver.plan("colo", {"node": "node-1"},
                         ColocateConfig(work="burner", cpu=1, isolation=isolation,
                                        lifetime="30s"), random.Random(isolation))
    facts = asyncio.run(driver.inject(intent))
    try:
        record = platform.lab().process(facts["processes"][0])
        assert record is not None and record.pid
        gateway = next(p for p in platform.lab().processes_on("node-1")
                       if p.service == "gateway")
        time.sleep(0.3)
        assert nice_of(record.pid) == nice and nice_of(gateway.pid or 0) == 0
        assert facts["isolation"] == ("nice 19" if isolation else "none (same weight as online)")
    finally:
        asyncio.run(driver.revert(intent))
    assert not processes.alive(record.pid, record.started)
    assert asyncio.run(driver.verify_reverted(intent)) == []
