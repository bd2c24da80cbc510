"""Bench: a long game day against the lab. The flagship's shape (its mix, faults on its
scenario timeline, hypothesis and guardrails, plus the acknowledged-requests check) for 30
minutes at 2,000 requests/s, watched from outside: the runner's memory over time, the journal's
size per hour, each probe's sample time at the start and at the end, and `chaoskit report` and
`compare` on the journal an hour of it leaves.

Run with `make bench`, or alone:
    PYTHONPATH=. .venv/bin/pytest tests/bench/bench_long_run.py -s -q -o python_files='bench_*.py'
CHAOSKIT_LONG_RUN_MINUTES and CHAOSKIT_LONG_RUN_RATE change the length (default 30) and the
rate (default 2000/s). It stops by itself (the experiment's length) and is killed past its
length + 10 minutes. What the lab could not answer at the asked rate is printed beside what
chaoskit sent, with the CPU each side used: the stack's capacity is not chaoskit's.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from chaoskit.lab import processes
from tests.fixtures.lab import RunningLab
from tests.fixtures.long_run import (
    LongRun,
    cpu_shares,
    experiment_file,
    journal_growth,
    memory_growth,
    one_hour_equivalent,
    probe_times,
    report_and_compare,
    run_long,
)

MINUTES = float(os.environ.get("CHAOSKIT_LONG_RUN_MINUTES", "30"))
RATE = float(os.environ.get("CHAOSKIT_LONG_RUN_RATE", "2000"))
COMMAND = ("PYTHONPATH=. .venv/bin/pytest tests/bench/bench_long_run.py -s -q "
           "-o python_files='bench_*.py'")

pytestmark = [pytest.mark.integration, pytest.mark.root,
              pytest.mark.timeout(int(MINUTES * 60 + 1200))]


def test_bench_long_game_day(lab: RunningLab, tmp_path: Path) -> None:
    experiment = experiment_file(tmp_path / "long-game-day.yaml", lab.dir, minutes=MINUTES,
                                 rate=RATE)
    stack = processes.marked(lab.state.marker)
    run = run_long(experiment, tmp_path / "runs", every=10.0, limit=MINUTES * 60 + 600,
                   lab=stack)
    assert any(r["kind"] == "result" for r in run.records), "the run did not close its journal"
    hour = one_hour_equivalent(run.journal, tmp_path / "hour" / "run" / "journal.jsonl")
    printed = report_and_compare(hour)
    print_figures(run, printed)
    stalls = run.run_dir / "stalls.log"
    # the lab may fail the hypothesis at this rate (exit 1); chaoskit must not crash (exit 4)
    assert run.result()["status"] != "crashed", (
        run.result(), stalls.read_text()[-6000:] if stalls.exists() else "no stalls.log")
    assert printed["report_rc"] == 0, printed["report_out"]


def print_figures(run: LongRun, tools: dict[str, Any]) -> None:
    summary = run.summary()  # a crashed run has its inject windows but not their summary
    seconds = float(summary.get("run_seconds") or 1.0)
    cpu = cpu_shares(run)
    memory = memory_growth(run)
    journal = journal_growth(run)
    engine = summary.get("engine") or {}
    latency = summary.get("latency_ms") or {}
    rows = [
        ("inject phase", f"{seconds / 60:.1f} min at {RATE:,.0f}/s asked (load average "
                         f"{cpu['load_start']:.1f} -> {cpu['load_end']:.1f} on "
                         f"{cpu['machine_cores']:.0f} cores, busy "
                         f"{cpu['machine_busy_cores']:.2f})"),
        ("  chaoskit sent / on time", f"{summary['sent'] / seconds:,.0f}/s; "
                                      f"{summary['behind']:,} of {summary['intended']:,} behind "
                                      "its schedule (its own shortfall)"),
        ("  the lab answered ok", f"{summary['ok'] / seconds:,.0f}/s; errors "
                                  f"{summary['errors']:,}, dropped (timeouts) "
                                  f"{summary['dropped']:,}; latency p50 {latency.get('p50')} "
                                  f"/ p99 {latency.get('p99')} ms"),
        ("  CPU: chaoskit (runner + workers) / the lab",
         f"{cpu['chaoskit_cores']:.2f} / {cpu['lab_cores']:.2f} cores"),
        ("  the load workers waited for a CPU",
         f"{engine.get('cpu_wait_s')} s; schedule lag p99 {summary['lag_ms'].get('p99')} ms"),
        ("runner memory (RSS) after 1/5 of inject -> end",
         f"{memory['runner_early_mb']:.1f} -> {memory['runner_end_mb']:.1f} MB "
         f"({memory['runner_growth_mb_per_hour']:+.1f} MB/h; peak "
         f"{memory['runner_peak_mb']:.1f} MB)"),
        ("load workers memory (RSS)", f"{memory['workers_early_mb']:.1f} -> "
                                      f"{memory['workers_end_mb']:.1f} MB "
                                      f"({memory['workers_growth_mb_per_hour']:+.1f} MB/h)"),
        ("journal.jsonl per hour of inject", f"{journal['journal_mb_per_hour']:.2f} MB"),
        ("  by kind (whole run, bytes)", ", ".join(f"{k} {v:,}" for k, v in
                                                   list(journal["by_kind"].items())[:5])),
        ("acknowledged.jsonl per hour", f"{journal['acks_mb_per_hour']:.1f} MB "
                                        f"({journal['bytes_per_ack'] or 0:.1f} bytes per "
                                        f"acknowledged request, {journal['acknowledged']:,})"),
    ]
    for name, times in sorted(probe_times(run).items()):
        rows.append((f"probe {name}: sample start -> end",
                     f"{times['start_ms']:.1f} -> {times['end_ms']:.1f} ms (chaoskit's own "
                     f"{times['own_start_ms']:.1f} -> {times['own_end_ms']:.1f}, waiting on the "
                     f"system {times['waited_start_ms']:.1f} -> {times['waited_end_ms']:.1f}; "
                     f"{times['samples']} samples)"))
    rows += [
        ("1-hour-equivalent journal", f"{tools['journal_bytes'] / 1e6:.1f} MB"),
        ("  `chaoskit report` on it", f"{tools['report_s']:.1f} s, report.html "
                                      f"{tools['html_bytes'] / 1e6:.2f} MB"),
        ("  `chaoskit compare` (it against itself)", f"{tools['compare_s']:.1f} s"),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"\n\nchaoskit long game day bench ({COMMAND}; CHAOSKIT_LONG_RUN_MINUTES={MINUTES:g}, "
          f"CHAOSKIT_LONG_RUN_RATE={RATE:g}); run {run.run_dir.name}, exit {run.exit_code}")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
