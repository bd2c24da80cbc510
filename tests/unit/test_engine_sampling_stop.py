"""Stopping the sampling loop always stops it, also when a probe's answer and the stop's
cancellation meet: asyncio.wait_for (Python 3.11) then returns the answer and the cancellation
is lost. A run hung in its rollback, sampling on, until the loop checked that it was stopped."""

from __future__ import annotations

import asyncio
import types
from pathlib import Path
from typing import Any

import pytest

from chaoskit.engine import sampling
from chaoskit.engine.sampling import Sampler, SamplingLoop
from chaoskit.journal import JournalWriter
from chaoskit.spec.models import ProbeRef


class Probe:
    type_name = "counting"
    samples = 0

    async def sample(self) -> float:
        self.samples += 1
        await asyncio.sleep(0.005)
        return 1.0

    def unit(self) -> str:
        return "count"

    async def close(self) -> None:
        return None


async def wait_for_that_loses_the_cancellation(awaitable: Any, timeout: float) -> Any:
    """3.11's wait_for when the probe is done at the moment the caller is cancelled."""
    task = asyncio.ensure_future(awaitable)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        return await task


def test_stop_ends_a_sampler_whose_cancellation_was_lost(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    racy = types.SimpleNamespace(**vars(asyncio))
    racy.wait_for = wait_for_that_loses_the_cancellation
    monkeypatch.setattr(sampling, "asyncio", racy)
    probe = Probe()
    sampler = Sampler("x", "hypothesis", ProbeRef(type="fake", interval="10ms"), probe)
    loop = SamplingLoop([sampler], JournalWriter(tmp_path / "journal.jsonl"), lambda: "inject",
                        lambda *_: None)

    async def run() -> int:
        loop.start()
        await asyncio.sleep(0.1)
        await asyncio.wait_for(loop.stop(), 2.0)  # hung for ever before
        stopped_at = probe.samples
        await asyncio.sleep(0.1)
        return probe.samples - stopped_at

    assert asyncio.run(run()) == 0
