"""The acknowledged probe over a long run: each sample does a bounded amount of work and the
probe keeps a bounded amount of state, however many requests were acknowledged (the books are
faked here; tests/integration/test_probe_books.py reads real ones)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from chaoskit.load.recorder import AckLog
from chaoskit.probes import acknowledged
from chaoskit.probes.acknowledged import AcknowledgedProbe, AcknowledgedProbeConfig
from chaoskit.probes.base import ProbeContext
from chaoskit.testing import FakePlatform
from tests.fixtures.systems import reference


class FakeBooks:
    """Holds every key it is asked about but those in `lost`; counts what it was asked."""

    def __init__(self, lost: set[str]) -> None:
        self.lost = lost
        self.asked = 0
        self.dialect = None

    async def rows(self, query: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        self.asked += len(params["keys"])
        return [{"key": k, "n": 1, "moved": None if k.endswith("7") else "-1.00",
                 "amount": "1.00"} for k in params["keys"] if k not in self.lost]

    async def close(self) -> None:
        return None


def probe(path: Path, books: FakeBooks, measure: str = "missing") -> AcknowledgedProbe:
    platform = FakePlatform()
    platform.set_address("database", "postgresql://127.0.0.1:1/books")
    built = AcknowledgedProbe(AcknowledgedProbeConfig(measure=measure, grace="1ms"),
                              ProbeContext(platform, "/tmp", str(path), system=reference()))
    built.books = books  # type: ignore[assignment]
    return built


def test_samples_stay_bounded_and_state_stays_flat_over_many_acknowledgements(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(acknowledged, "RECHECKED", 500)
    monkeypatch.setattr(acknowledged, "JUDGED_KEPT", 100)
    path = tmp_path / "acknowledged.jsonl"
    log = AckLog(str(path), nonce="n", flows=["pay"], captures=[])
    books = FakeBooks(lost={"n-13", "n-14"})
    checking = probe(path, books)
    per_sample = []

    async def run() -> list[float | None]:
        values = []
        for second in range(24):  # 24 samples of 2,500 new acknowledgements each
            for k in range(second * 2500, (second + 1) * 2500):
                log.add(k, "pay", {}, 201)
            log.flush()
            before = books.asked
            values.append(await checking.sample())
            per_sample.append(books.asked - before)
            await asyncio.sleep(0.002)  # past the grace
        return values
    values = asyncio.run(run())
    log.close()
    assert values[-1] == 2.0                     # the two lost ones, and only them
    assert max(per_sample) <= 11 * acknowledged.BATCH  # new + in flight + re-check: bounded
    assert len(checking.found) <= 2 * 500         # the most recent, for the re-check
    assert len(checking.found) == len(checking.found_at)
    assert len(checking.judged) <= 100 < checking.judged_count
    assert len(checking.flow_of) <= len(checking.pending) + len(checking.in_flight)
    assert checking.detail() == {"examples": ["n-13", "n-14"]}


def test_found_keys_are_rechecked_for_a_minute_then_forgotten(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(acknowledged.time, "monotonic", lambda: clock[0])
    path = tmp_path / "acknowledged.jsonl"
    log = AckLog(str(path), nonce="n", flows=["pay"], captures=[])
    checking = probe(path, FakeBooks(lost=set()))

    async def run() -> None:
        for second in range(0, 200, 2):  # 100 acknowledgements every 2 s for 200 s
            for k in range(second * 50, (second + 2) * 50):
                log.add(k, "pay", {}, 201)
            log.flush()
            await checking.sample()
            clock[0] += 2.0
    asyncio.run(run())
    log.close()
    # the last minute's ~3,000 found keys, give or take one trimming batch: not all 10,000
    assert 3_000 <= len(checking.found) <= 3_000 + acknowledged.BATCH + 100
    assert checking.found[-1] == "n-9999"
