"""A long game day in miniature: what makes hours of run possible, held for a few minutes.

The flagship's shape against the lab for 2.5 minutes at 200 requests/s, in `make test` (the
bench, tests/bench/bench_long_run.py, runs it for 30 minutes at 2,000/s and prints the
figures).
Watched from outside as an operator would: the runner's memory does not grow with the run, the
journal grows by a bounded number of bytes a minute whatever the rate (one load record per
second, samples at their periods), acknowledgements cost a few bytes each, and chaoskit's own
work in each probe sample does not grow as the run goes on (the time spent waiting on the
system, its database's answers to the queries it declares and its /metrics, is journaled
apart: a query that scans a growing table grows with it). The margins are wide enough for a
shared 2-core machine and narrow enough to catch what grew before: every acknowledged key
kept three times in the acknowledged probe (~7 MB over the measured 2 minutes at 200/s), one
journal record per 100 ms (~300 kB a minute), ~100 bytes of JSON per acknowledgement; a load
worker's captured values kept without bound (13 MB in 45 s at 2,000/s). At this length the
3 MB margin does not catch each 100 ms window kept twice in the runner (~20 kB/s: 2.4 MB over
the measured stretch); the 30-minute bench shows that growth (`make bench`).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import pytest

from chaoskit.lab import processes
from chaoskit.load.drive import drive
from chaoskit.spec.load import LoadSpec
from tests.fixtures.lab import RunningLab
from tests.fixtures.long_run import (
    children,
    command,
    experiment_file,
    journal_growth,
    memory_growth,
    probe_times,
    rss_bytes,
    run_long,
)
from tests.fixtures.nginx import NginxStatic
from tests.fixtures.systems import simple_flows

pytestmark = [pytest.mark.integration, pytest.mark.root, pytest.mark.timeout(600)]

MINUTES = 2.5
RATE = 200
RUNNER_GROWTH_MB = 3.0      # RSS from the first fifth of inject to its end
WORKERS_GROWTH_MB = 3.0     # a worker's RSS between 45 s and 90 s of capturing at 2,000/s
JOURNAL_KB_PER_MINUTE = 120  # load ~40 kB/min (1 record/s), samples ~35 kB/min (8 probes)
BYTES_PER_ACK = 20


def test_a_long_run_keeps_memory_journal_and_probe_time_flat(lab: RunningLab,
                                                              tmp_path: Path) -> None:
    experiment = experiment_file(tmp_path / "long.yaml", lab.dir, minutes=MINUTES, rate=RATE)
    run = run_long(experiment, tmp_path / "runs", every=2.0, limit=MINUTES * 60 + 240,
                   lab=processes.marked(lab.state.marker))
    summary = run.summary()
    # the whole inject phase ran (no guardrail or error cut it short), whatever the lab answered
    assert abs(summary["intended"] - MINUTES * 60 * RATE) <= 1, (summary["intended"],
                                                                  run.result().get("abort"))

    memory = memory_growth(run)  # the workers' memory follows the lab's in-flight requests
    journal = journal_growth(run)
    times = probe_times(run, share=0.2)
    print(f"\nrunner RSS {memory['runner_early_mb']:.1f} -> {memory['runner_end_mb']:.1f} MB, "
          f"journal {journal['journal_mb_per_hour'] * 1000 / 60:.0f} kB/min, "
          f"{journal['bytes_per_ack'] or 0:.1f} bytes/ack, probe ms {times}")
    assert memory["runner_end_mb"] - memory["runner_early_mb"] <= RUNNER_GROWTH_MB, memory

    assert journal["journal_mb_per_hour"] * 1000 / 60 <= JOURNAL_KB_PER_MINUTE, journal
    loads = [r for r in run.records if r["kind"] == "load"]
    assert all(r["width"] <= 1.0 for r in loads)
    # one a second, and a phase's in-flight requests drain for up to its timeout (5 s)
    assert len(loads) <= MINUTES * 60 + 2 * 10 + 3 * (5 + 1), len(loads)
    assert journal["acknowledged"] >= 1000, "the lab answered too few requests to measure"
    assert journal["bytes_per_ack"] <= BYTES_PER_ACK, journal

    assert len(times) == 8, times  # every item and guardrail sampled in the inject phase
    for name, took in times.items():
        # chaoskit's own part of a sample may take longer when the machine is busier, never by
        # the run's length; the system's declared queries scan what they scan, its /metrics
        # answer as fast as it can (that time is journaled apart, and shown by the bench)
        assert took["own_end_ms"] <= 3 * took["own_start_ms"] + 50, (name, took)


@pytest.mark.long
def test_a_load_worker_keeps_its_memory_while_values_are_captured_for_minutes(
        nginx_static: NginxStatic) -> None:
    """Every answer captures an id no later flow uses up: the worker keeps the most recent
    ones, and its memory is the same after 45 s as after 90 s (2,000/s)."""
    spec = LoadSpec.model_validate({"duration": "90s", "workers": 1,
                                    "profile": [{"shape": "constant", "rate": "2000/s"}]})
    seen: list[tuple[float, int]] = []
    done = threading.Event()

    def watch() -> None:
        begin = time.monotonic()
        while not done.wait(2.0):
            workers = [c for c in children(os.getpid())
                       if "chaoskit.load.worker_process" in command(c)]
            seen.append((time.monotonic() - begin, sum(rss_bytes(w) for w in workers)))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        summary = asyncio.run(drive(spec, nginx_static.url, simple_flows(capture="/id"),
                                    seed=3, stop=asyncio.Event(), on_window=lambda _: None,
                                    ack_path=None, keep_series=False))
    finally:
        done.set()
        watcher.join()
    assert summary.ok >= 0.99 * summary.intended and summary.series == []
    middle = max(rss for at, rss in seen if 40 <= at <= 50)
    end = max(rss for at, rss in seen if 80 <= at <= 92)
    assert end - middle <= WORKERS_GROWTH_MB * 1e6, (middle, end)
