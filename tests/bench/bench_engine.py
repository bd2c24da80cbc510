"""Engine speed: guardrail reaction (condition true -> every fault reverted), watchdog revert."""

from __future__ import annotations

import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from chaoskit.engine.lease import LEASE_TTL
from chaoskit.engine.run import RunOptions, run_experiment
from chaoskit.journal import read_journal
from chaoskit.spec.models import Experiment

PROBE_INTERVAL = 0.1
RUNS = 30
KILLS = 5


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


def _yaml(state: Path) -> str:
    return (f"apiVersion: chaoskit/v1\nkind: Experiment\nmetadata: {{name: kill}}\n"
            f"target: {{platform: fake, lab: {state}}}\nphases: {{baseline: 0s, recover: 0s}}\n"
            f"faults: [{{name: f1, type: fake, duration: 60s}}]\n")


def test_engine_reaction_times(tmp_path: Path) -> None:
    reactions = guardrail_reactions(tmp_path)
    kills = watchdog_reverts(tmp_path, signal.SIGKILL)
    hangs = watchdog_reverts(tmp_path, signal.SIGSTOP)
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
    assert max(kills + hangs) < LEASE_TTL + 5  # sanity: the watchdog did act
