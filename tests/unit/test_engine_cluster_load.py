"""Load from many machines: on a platform with a load Job, the engine hands it the schedule,
waits for every pod's report, journals the merged result, and removes the Job on abort."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chaoskit.engine import run as runner
from chaoskit.engine.run import RunOptions, run_experiment
from chaoskit.spec.models import Experiment
from chaoskit.testing import FakePlatform
from tests.fixtures.systems import simple_flows


class FakeCluster(FakePlatform):
    """A fake platform that can run load Jobs: pods 'report' one per poll."""

    def __init__(self, state_dir: str | Path, report: bool = True) -> None:
        super().__init__(state_dir)
        self.report = report
        self.calls: list[tuple[str, Any]] = []
        self.polls = 0

    def start_load_job(self, plan: Any, *, pods: int, start_at: float) -> str:
        self.calls.append(("start", (plan.run_seconds, pods)))
        return "chaoskit-load-1"

    def load_reports_ready(self, job: str) -> int:
        self.polls += 1
        return self.polls if self.report else 0

    def collect_load(self, job: str, pods: int, timeout: float) -> dict[str, Any]:
        self.calls.append(("collect", job))
        return {"intended": 300, "ok": 300, "errors": 0, "missing": []}

    def stop_load_job(self, job: str) -> None:
        self.calls.append(("stop", job))


def _experiment(fault: dict[str, Any] | None = None) -> Experiment:
    return Experiment.model_validate({
        "apiVersion": "chaoskit/v1", "kind": "Experiment", "metadata": {"name": "spread"},
        "target": {"platform": "fake", "entry": "http://127.0.0.1:9"},
        "system": {"flows": simple_flows()},
        "phases": {"baseline": "0s", "recover": "0s"},
        "load": {"duration": "2s", "pods": 3, "profile": [{"shape": "constant", "rate": 50}]},
        "faults": [fault or {"name": "f", "type": "noop", "duration": "1s"}]})


def _run(tmp_path: Path, cluster: FakeCluster, experiment: Experiment,
         monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    monkeypatch.setattr(runner, "platform_for", lambda target: cluster)
    monkeypatch.setattr(runner, "CLUSTER_LOAD_LEAD", 0.0)
    outcome = run_experiment(experiment, "x", RunOptions(seed=1, out_dir=tmp_path / "runs",
                                                         watchdog=False))
    return [json.loads(line) for line in outcome.journal.read_text().splitlines()]


def test_the_job_gets_the_schedule_and_its_merged_report_is_journaled(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = FakeCluster(tmp_path / "state")
    journal = _run(tmp_path, cluster, _experiment(), monkeypatch)
    assert cluster.calls[0] == ("start", (2.0, 3))
    assert ("collect", "chaoskit-load-1") in cluster.calls
    summary = next(r for r in journal if r["kind"] == "load-summary")
    assert summary["distributed"] and summary["intended"] == 300 and summary["phase"] == "inject"
    assert next(r for r in journal if r["kind"] == "load-job")["pods"] == 3


def test_an_aborted_run_removes_the_load_job(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = FakeCluster(tmp_path / "state", report=False)
    failing = {"name": "f", "type": "fake", "start": "500ms", "duration": "1s", "fail": "inject"}
    journal = _run(tmp_path, cluster, _experiment(failing), monkeypatch)
    assert ("stop", "chaoskit-load-1") in cluster.calls
    assert ("collect", "chaoskit-load-1") not in cluster.calls
    assert journal[-1]["status"] == "error"
