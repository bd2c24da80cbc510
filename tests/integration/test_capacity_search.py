"""The capacity search end to end: `chaoskit run --find-capacity`, every step a real `chaoskit
run --at-rate` driving the real load engine against a real HTTP server whose latency climbs
past a known rate (a fake fault halves that rate while applied), and real nginx for the load
engine's own limit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chaoskit.journal import Kind, read_journal, result
from tests.fixtures.capacity_server import CapacityServer, from_signal
from tests.fixtures.nginx import NginxStatic

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
pytest_plugins = ["tests.fixtures.nginx"]

EXPERIMENT = """\
apiVersion: chaoskit/v1
kind: Experiment
metadata: {{name: {name}, owner: sre, description: a server with a known capacity}}
target: {{platform: fake, lab: {state}, entry: "{entry}"}}
system: {{flows: {{pay: {{request: {{method: GET, path: /}}}}}}}}
phases: {{baseline: {baseline}, recover: 0s}}
load:
  duration: 2s
  timeout: 1s
  workers: 1
  shortfall_tolerance: 5%   # a 2 s step on a shared 2-core box: a few late sends are noise
  caps: {{rate: 400000}}
  profile: [{{shape: constant, rate: 30/s}}]
{faults}
hypothesis:
  - name: answers-fast
    probe: {{type: load, measure: p99, window: 1s, interval: 500ms}}
    expect: "<= 100ms"
    phases: [during]
capacity: {{{capacity}, step: 2s}}
"""
HALVES = ("faults:\n  - {name: half-capacity, type: fake, duration: 2s, "
          "signal: capacity_factor, value: 0.5}")


def find_capacity(tmp: Path, name: str, entry: str, capacity: str, faults: str = "",
                  *args: str, baseline: str = "0s"
                  ) -> tuple[subprocess.CompletedProcess[str], list[dict]]:
    path = tmp / f"{name}.yaml"
    path.write_text(EXPERIMENT.format(name=name, state=tmp / "state", entry=entry,
                                      capacity=capacity, faults=faults, baseline=baseline))
    env = {**os.environ, "CHAOSKIT_CLAIMS": str(tmp / "claims")}
    done = subprocess.run([sys.executable, "-m", "chaoskit.cli", "run", str(path),
                           "--find-capacity", "--seed", "5", "--out", str(tmp / "runs"), *args],
                          capture_output=True, text=True, timeout=230, env=env, cwd=tmp)
    (journal,) = (tmp / "runs").glob("*/search.jsonl")
    return done, read_journal(journal, first=Kind.CAPACITY)


def steps(records: list[dict], search: str | None = None) -> list[dict]:
    return [r for r in records if r["kind"] == Kind.RATE_STEP_ENDED
            and (search is None or r["search"] == search)]


def test_the_search_finds_a_known_capacity_within_one_step(tmp_path: Path) -> None:
    with CapacityServer(150) as server:
        done, records = find_capacity(tmp_path, "known", server.url,
                                      "from: 40/s, to: 320/s, resolution: 20/s",
                                      baseline="1s")
    assert done.returncode == 0, done.stdout + done.stderr
    found = (result(records) or {})["searches"]["with-faults"]
    assert found["answer"] == "found"
    assert found["held"] <= 150 < found["failed"] and found["failed"] - found["held"] <= 20
    # the evidence: what was sent at each rate, and the failing item past its limit
    for step in steps(records):
        load = step["evidence"]["load"]
        assert load["sent_rate"] == pytest.approx(step["rate"], rel=0.05)
        (verdict,) = step["evidence"]["verdicts"]
        assert verdict["status"] == step["verdict"]
        assert (verdict["observed"] <= 0.1) == (step["verdict"] == "held")
        # between steps, the steady baseline runs at the declared opening rate (30/s)
        steady = next(r for r in read_journal(step["journal"])
                      if r["kind"] == Kind.LOAD_SUMMARY and r["phase"] == "baseline")
        assert steady["intended"] / steady["run_seconds"] == pytest.approx(30, rel=0.2)
    assert "capacity search known: HELD" in done.stdout
    assert f"capacity {found['held']:g}/s: the highest rate that held" in done.stdout
    report = next((tmp_path / "runs").glob("*/report.html")).read_text()
    assert "Against the rate" in report and '"section":"capacity"' in report
    assert server.slowed > 0  # the failing steps really were answered slowly


def test_a_fault_that_halves_capacity_is_reported_as_halving_it(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with CapacityServer(from_signal(state, "capacity_factor", 220)) as server:
        done, records = find_capacity(tmp_path, "halved", server.url,
                                      "from: 40/s, to: 480/s, resolution: 20/s", HALVES,
                                      "--compare-without-faults")
    assert done.returncode == 0, done.stdout + done.stderr
    closing = result(records) or {}
    faulted, free = closing["searches"]["with-faults"], closing["searches"]["without-faults"]
    assert faulted["held"] <= 110 < faulted["failed"] <= faulted["held"] + 20
    assert free["held"] <= 220 < free["failed"] <= free["held"] + 20
    cost = closing["cost"]
    assert cost["exact"] and 0.4 <= cost["ratio"] <= 0.6
    assert cost["ratio_range"][0] <= 0.5 <= cost["ratio_range"][1]
    assert "the faults cost" in done.stdout
    # every faulted step applied the fault and reverted it; the comparison never applied it
    assert not list((state / "faults").iterdir())
    for step in steps(records):
        kinds = [r["kind"] for r in read_journal(step["journal"])]
        if step["search"] == "with-faults":
            assert kinds.count("applied") == 1 and kinds.count("reverted") == 1
        else:
            assert "intent" not in kinds
        assert (result(read_journal(step["journal"])) or {})["audit"]["clean"]


def test_the_load_engines_own_limit_is_inconclusive_not_capacity(
        tmp_path: Path, nginx_static: NginxStatic) -> None:
    # One load worker on a shared 2-core machine cannot send 100,000 requests a second.
    done, records = find_capacity(tmp_path, "generator", nginx_static.url,
                                  "from: 1000/s, to: 300000/s, resolution: 1000/s, growth: 100")
    assert done.returncode == 5, done.stdout + done.stderr
    closing = result(records) or {}
    found = closing["searches"]["with-faults"]
    assert (closing["status"], found["answer"]) == ("inconclusive", "partial")
    assert found["held"] == 1000 and found["failed"] is None
    assert found["generator_limit"] == 100000
    limited = steps(records)[1:]
    assert [s["rate"] for s in limited] == [100000, 100000]  # confirmed once: not a blip
    assert all(s["verdict"] == "inconclusive" and s["generator_limit"] for s in limited)
    assert "inconclusive above 1000/s: chaoskit could not send 100000/s" in done.stdout
    summary = subprocess.run([sys.executable, "-m", "chaoskit.cli", "report",
                              str(next((tmp_path / "runs").glob("*/search.jsonl"))), "--json"],
                             capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(summary.stdout)["capacity"] is None  # never chaoskit's limit
