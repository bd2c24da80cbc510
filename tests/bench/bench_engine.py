"""Engine speed: guardrail reaction (condition true -> every fault reverted), watchdog revert,
and the heartbeat's margin (how old the lease gets while the runner's event loop is busy)."""

from __future__ import annotations

import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from chaoskit.engine import lease
from chaoskit.engine.lease import LEASE_TTL
from chaoskit.engine.run import RunOptions, run_experiment
from chaoskit.journal import read_journal
from chaoskit.spec.models import Experiment

PROBE_INTERVAL = 0.1
RUNS = 30
KILLS = 5
BUSY_SECONDS = 10.0

# A runner whose event loop does nothing but CPU-heavy work for a while (the bootstrap
# statistics a verdict runs, and fsynced journal writes), never yielding: its lease must still
# be beaten (from its thread) well within the TTL, or the watchdog would kill a healthy run.
BUSY_RUNNER = """
import asyncio, sys, time
from pathlib import Path
from chaoskit.engine.guard import RunGuard
from chaoskit.journal import JournalWriter, Kind
from chaoskit.report.statistics import bootstrap_pairs

async def main(lease, journal, seconds):
    guard = RunGuard(Path(journal), Path(lease), watchdog=False)
    guard.start()
    writer = JournalWriter(Path(journal))
    values = [float(i % 97) for i in range(400)]
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        bootstrap_pairs(values, values[::-1], "p99")
        writer.write(Kind.PHASE, phase="busy")
    writer.close()
    await guard.stop()

asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
"""


def _experiment(state: Path, start_ms: int, duration: str = "10s") -> Experiment:
    return Experiment.model_validate({
        "apiVersion": "chaoskit/v1", "kind": "Experiment", "metadata": {"name": "bench"},
        "target": {"platform": "fake", "lab": str(state)},
        "phases": {"baseline": "0s", "recover": "0s"},
        "faults": [
            {"name": "trigger", "type": "fake", "start": f"{start_ms}ms", "duration": duration,
             "signal": "err", "value": 1.0},
            {"name": "bystander", "type": "fake", "start": "0s", "duration": duration}],
        "guardrails": [{"name": "errors", "abort_when": "> 0.5",
                        "probe": {"type": "fake", "signal": "err",
                                  "interval": f"{int(PROBE_INTERVAL * 1000)}ms"}}]})


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def guardrail_reactions(tmp: Path) -> list[float]:
    """Seconds from the condition becoming true to the last fault reverted, per run."""
    reactions = []
    for i in range(RUNS):
        # Vary the trigger against the 100 ms sampling grid so the worst case is seen too.
        experiment = _experiment(tmp / f"s{i}", start_ms=200 + (i * 37) % 100)
        outcome = run_experiment(experiment, "bench", RunOptions(seed=i, out_dir=tmp / "runs",
                                                                 watchdog=False))
        assert outcome.exit_code == 3, outcome
        records = read_journal(outcome.journal)
        true_at = next(r["ts"] for r in records if r["kind"] == "applied"
                       and r["fault"] == "trigger")
        reverted_at = max(r["ts"] for r in records if r["kind"] == "reverted")
        reactions.append(reverted_at - true_at)
    return reactions


def watchdog_reverts(tmp: Path, how: signal.Signals) -> list[float]:
    """Seconds from killing (SIGKILL) or hanging (SIGSTOP) the runner to its faults reverted."""
    times = []
    for i in range(KILLS):
        state = tmp / f"{how.name}{i}"
        spec = tmp / f"{how.name}{i}.yaml"
        spec.write_text(_yaml(state))
        runner = subprocess.Popen([sys.executable, "-m", "chaoskit.cli", "run", str(spec),
                                   "--display", "quiet", "--no-report", "--out", str(tmp / "kr")])
        faults = state / "faults"
        while not (faults.exists() and any(faults.iterdir())):
            time.sleep(0.01)
        runner.send_signal(how)
        killed = time.monotonic()
        while any(faults.iterdir()) and time.monotonic() - killed < 30:
            time.sleep(0.01)
        times.append(time.monotonic() - killed)
        runner.kill()  # a hung runner is fenced by the watchdog already; this reaps it
        runner.wait()
    return times


def heartbeat_ages(tmp: Path) -> tuple[list[float], list[float]]:
    """The lease's beat age and loop age, read every 5 ms (as the watchdog reads them) while
    the runner's event loop is busy for BUSY_SECONDS."""
    lease_path = tmp / "busy" / "lease"
    lease_path.parent.mkdir()
    runner = subprocess.Popen([sys.executable, "-c", BUSY_RUNNER, str(lease_path),
                               str(lease_path.with_name("journal.jsonl")), str(BUSY_SECONDS)])
    beats: list[float] = []
    loops: list[float] = []
    while runner.poll() is None:
        state = lease.read(lease_path)
        if state is not None:
            beats.append(state.beat_age())
            loops.append(state.loop_age())
        time.sleep(0.005)
    assert runner.returncode == 0 and beats
    return beats, loops


def _yaml(state: Path) -> str:
    return (f"apiVersion: chaoskit/v1\nkind: Experiment\nmetadata: {{name: kill}}\n"
            f"target: {{platform: fake, lab: {state}}}\nphases: {{baseline: 0s, recover: 0s}}\n"
            f"faults: [{{name: f1, type: fake, duration: 60s}}]\n")


def test_engine_reaction_times(tmp_path: Path) -> None:
    reactions = guardrail_reactions(tmp_path)
    kills = watchdog_reverts(tmp_path, signal.SIGKILL)
    hangs = watchdog_reverts(tmp_path, signal.SIGSTOP)
    beats, loops = heartbeat_ages(tmp_path)
    goal = PROBE_INTERVAL + 0.100
    print(f"\nguardrail reaction (condition true -> all faults reverted), {RUNS} runs, "
          f"probe interval {PROBE_INTERVAL * 1000:.0f} ms:")
    print(f"  p50 {statistics.median(reactions) * 1000:7.1f} ms   p99 "
          f"{_pct(reactions, 0.99) * 1000:7.1f} ms   max {max(reactions) * 1000:7.1f} ms   "
          f"goal p99 < {goal * 1000:.0f} ms")
    print(f"watchdog revert after SIGKILL of the runner, {KILLS} kills, lease TTL "
          f"{LEASE_TTL:g} s:")
    print(f"  dead runner (SIGKILL, pid gone):   p50 {statistics.median(kills):6.2f} s   "
          f"max {max(kills):6.2f} s")
    print(f"  hung runner (SIGSTOP, lease lapses): p50 {statistics.median(hangs):6.2f} s   "
          f"max {max(hangs):6.2f} s")
    print(f"lease heartbeat (every {lease.HEARTBEAT_INTERVAL:g} s, from a thread) while the "
          f"event loop is busy {BUSY_SECONDS:g} s (bootstrap statistics, fsyncs), "
          f"{len(beats)} reads:")
    print(f"  beat age p50 {statistics.median(beats):5.2f} s   p99 {_pct(beats, 0.99):5.2f} s   "
          f"max {max(beats):5.2f} s   margin to the TTL ({LEASE_TTL:g} s): "
          f"{LEASE_TTL - max(beats):5.2f} s   (the loop itself stalled up to {max(loops):.2f} s)")
    assert max(kills + hangs) < LEASE_TTL + 5  # sanity: the watchdog did act
    assert max(beats) < LEASE_TTL  # a busy runner is never taken for a dead one
    assert max(loops) > 1.0  # ... and the loop really was busy
