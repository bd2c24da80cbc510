"""Verdicts do not flap: the same fake-platform experiment, run again and again, is judged alike.

The 'during' phase holds a spike (a 60 ms 'GC pause') that an 'every sample' rule fails on
whenever a sample lands on it (it did in 10 of 10 runs measured); judged against the baseline on
the median (the items say `aggregate: p50`: the declared aggregate decides), the healthy
experiment must hold every time, and a 2x degraded one fail every time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from chaoskit.engine.run import RunOptions, run_experiment
from chaoskit.journal import read_journal, result
from chaoskit.spec.models import Experiment

pytestmark = pytest.mark.integration

RUNS = 10
EXPERIMENT = """
apiVersion: chaoskit/v1
kind: Experiment
metadata: {{name: refund-lag-repeat}}
target: {{platform: fake, lab: {lab}}}
phases: {{baseline: 0.8s, recover: 0.6s}}
faults:
  - {{name: bank-latency, type: fake, start: 0s, duration: 1s, signal: lag, value: {lag}}}
  - {{name: gc-pause, type: fake, start: 0.45s, duration: 60ms, signal: pause, value: 0.4}}
hypothesis:
  - {{name: refund-lag, probe: {{type: fake, signal: lag, default: 0.1, interval: 100ms}},
      expect: "<= baseline * 1.5", aggregate: p50}}
  - {{name: pause, probe: {{type: fake, signal: pause, default: 0.1, interval: 100ms}},
      expect: "<= baseline * 1.5", phases: [during], aggregate: p50}}
"""


def run_once(tmp_path: Path, index: int, lag: float) -> dict[str, Any]:
    lab = tmp_path / f"lab-{index}"
    spec = YAML(typ="safe").load(EXPERIMENT.format(lab=lab, lag=lag))
    outcome = run_experiment(Experiment.model_validate(spec), "repeat.yaml",
                             RunOptions(seed=7, out_dir=tmp_path / "runs", watchdog=False))
    closing = result(read_journal(outcome.journal))
    assert closing is not None
    return closing


def verdict_key(closing: dict[str, Any]) -> tuple[Any, ...]:
    return (closing["status"], tuple((v["item"], v["phase"], v["held"])
                                     for v in closing["verdicts"]))


def test_a_healthy_experiment_gets_the_same_verdict_every_run(tmp_path: Path) -> None:
    closings = [run_once(tmp_path, i, lag=0.12) for i in range(RUNS)]
    keys = {verdict_key(c) for c in closings}
    assert len(keys) == 1, f"verdicts flapped across {RUNS} runs: {keys}"
    assert closings[0]["status"] == "held"
    for closing in closings:
        during = {v["item"]: v for v in closing["verdicts"] if v["phase"] == "during"}
        assert during["refund-lag"]["stats"]["conclusive"] is True
        assert during["pause"]["stats"]["statistic"] == "median"


def test_a_degraded_experiment_fails_every_run_naming_the_item(tmp_path: Path) -> None:
    closings = [run_once(tmp_path, i, lag=0.3) for i in range(3)]  # 2x over the 1.5x limit
    for closing in closings:
        assert closing["status"] == "failed" and closing["exit_code"] == 1
        failing = [(v["item"], v["phase"]) for v in closing["verdicts"] if not v["held"]]
        assert failing == [("refund-lag", "during")]
