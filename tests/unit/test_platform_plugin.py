"""A platform from outside chaoskit, added through the entry point only, runs an experiment
with the engine's real fault lifecycle; a fault it cannot carry out is named in preflight."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENT = """\
apiVersion: chaoskit/v1
kind: Experiment
metadata: {{name: toy-run}}
target:
  platform: toy
  state: {state}
  scope: {{nodes: [toy-*]}}
phases: {{baseline: 200ms, recover: 200ms}}
faults:
  - {{name: lose-one, type: node-loss, mode: {mode}, target: {{node: toy-2}}, start: 100ms,
     duration: 500ms, recovery_timeout: 1s}}
hypothesis:
  - {{name: nothing, probe: {{type: fake, signal: s, interval: 100ms}}, expect: "<= 1",
     no_evidence: held}}
"""


def _install_entry_point(site: Path) -> None:
    """What `pip install` of a package declaring the entry point leaves: its dist-info."""
    info = site / "toy_platform-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-platform\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[chaoskit.platforms]\ntoy = tests.toy_platform:ToyPlatform\n")


def _run(tmp_path: Path, mode: str) -> subprocess.CompletedProcess[str]:
    site = tmp_path / "site"
    if not site.exists():
        _install_entry_point(site)
    path = tmp_path / f"{mode}.yaml"
    path.write_text(EXPERIMENT.format(state=tmp_path / "toy.json", mode=mode))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]),
           "CHAOSKIT_CLAIMS": str(tmp_path / "claims"),
           "CHAOSKIT_FAKE_STATE": str(tmp_path / "fake")}
    return subprocess.run([sys.executable, "-m", "chaoskit.cli", "run", str(path),
                           "--display", "plain", "--no-report", "--out", str(tmp_path / "runs")],
                          capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)


def test_a_toy_platform_from_its_entry_point_runs_a_fault_through_the_engine(
        tmp_path: Path) -> None:
    done = _run(tmp_path, "freeze")
    assert done.returncode == 0, done.stdout + done.stderr
    (journal,) = (tmp_path / "runs").glob("*/journal.jsonl")
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    kinds = [r["kind"] for r in records]
    assert kinds.index("intent") < kinds.index("applied") < kinds.index("reverted")
    assert records[0]["platform"] == {"platform": "toy", "state": str(tmp_path / "toy.json")}
    state = json.loads((tmp_path / "toy.json").read_text())
    assert state["calls"] == [["lose", "toy-2", "freeze"], ["restore", "toy-2", "freeze"]]
    assert state["lost"] == {} and records[-1]["audit"]["clean"] is True


def test_a_mode_the_toy_platform_lacks_is_named_before_anything_runs(tmp_path: Path) -> None:
    done = _run(tmp_path, "drain")
    assert done.returncode == 4, done.stdout + done.stderr
    assert "the toy platform cannot drain a node" in done.stdout + done.stderr
    state = json.loads((tmp_path / "toy.json").read_text())
    assert state["calls"] == []
