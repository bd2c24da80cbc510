"""Game days on the fake platform through the real CLI: steps in order and side by side, the
stop rule, holds, a stopped day reverts its running step, one plan journal and one report."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chaoskit.engine.day_rules import StepOutcome, day_exit, step_seeds, stop_reason
from chaoskit.history import runs
from chaoskit.spec.plan import GamePlan, StopRule
from chaoskit.spec.plan_loader import load_plan
from tests.fixtures.fake_runs import Lab


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    return Lab(tmp_path)


def plan(lab: Lab, steps: str, stop: str = "", name: str = "day") -> Path:
    path = lab.tmp / f"{name}.yaml"
    path.write_text(f"""apiVersion: chaoskit/v1
kind: GamePlan
metadata: {{name: {name}}}
{stop}
steps:
{steps}""")
    return path


def gameday(lab: Lab, path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "chaoskit.cli", "gameday", str(path),
                           "--display", "plain", "--out", str(lab.tmp / "runs"), *args],
                          capture_output=True, text=True, timeout=120, cwd=lab.tmp,
                          env=lab.env())


def plan_journal(lab: Lab) -> list[dict]:
    (path,) = (lab.tmp / "runs").glob("*/plan.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_steps_run_in_order_side_by_side_and_the_stop_rule_ends_the_day(lab: Lab) -> None:
    lab.write("a", value=0.3)
    lab.write("b1", value=0.7)  # fails errors-low
    other = Lab(lab.tmp / "other")  # side by side: a lab (and signals) of its own
    other.tmp.mkdir()
    other.write("b2", value=0.3)
    lab.write("c", value=0.3)
    path = plan(lab, """  - {name: first, experiment: a.yaml}
  - name: both
    together:
      - {name: fails, experiment: b1.yaml}
      - {name: holds, experiment: other/b2.yaml}
  - {name: last, experiment: c.yaml}
""", stop="stop_when: {failed: [errors-low]}")
    done = gameday(lab, path, "--seed", "5")
    assert done.returncode == 1, done.stdout + done.stderr
    records = plan_journal(lab)
    kinds = [r["kind"] for r in records]
    assert kinds[0] == "day" and kinds[-1] == "result"
    ended = {r["name"]: r for r in records if r["kind"] == "step-ended"}
    assert set(ended) == {"first", "fails", "holds"}  # `last` never ran
    assert ended["fails"]["failed_items"] == ["errors-low"] and ended["holds"]["status"] == "held"
    started = {r["name"]: r["ts"] for r in records if r["kind"] == "step-started"}
    assert started["first"] < started["fails"] == pytest.approx(started["holds"], abs=1.0)
    assert ended["first"]["ts"] <= started["fails"]  # one after another
    (stopped,) = [r for r in records if r["kind"] == "day-stopped"]
    assert stopped["skipped"] == ["last"] and "fails failed errors-low" in stopped["reason"]
    assert records[-1]["status"] == "failed" and records[-1]["exit_code"] == 1
    assert lab.applied() == [] and other.applied() == []
    day_dir = next((lab.tmp / "runs").glob("day-*"))
    report = (day_dir / "report.html").read_text()
    assert "<svg" in report and "errors-low" in report and "FAILED" in report
    assert report.count('href="steps/') == 3  # a link to each step's own report
    indexed = {row.experiment for row in runs(lab.tmp / "runs", limit=None)}
    assert indexed == {"a", "b1", "b2"}  # every step's run is in the history
    seeds = {r["name"]: r["seed"] for r in records if r["kind"] == "step-started"}
    again = load_plan(path).plan
    assert seeds == {k: v for k, v in step_seeds(again, 5).items() if k in seeds}


def test_a_guardrail_abort_stops_the_day_by_default(lab: Lab) -> None:
    lab.write("a", value=0.95)  # trips errors-high
    lab.write("c", value=0.3)
    path = plan(lab, "  - {name: first, experiment: a.yaml}\n"
                     "  - {name: last, experiment: c.yaml}\n")
    done = gameday(lab, path)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "aborted by a guardrail" in done.stdout and lab.applied() == []
    assert [r["name"] for r in plan_journal(lab) if r["kind"] == "step-ended"] == ["first"]


def test_stopping_the_day_reverts_the_running_step(lab: Lab) -> None:
    lab.write("long", value=0.3, duration="30s")
    path = plan(lab, "  - {name: long, experiment: long.yaml}\n"
                     "  - {name: next, experiment: long.yaml}\n")
    proc = subprocess.Popen([sys.executable, "-m", "chaoskit.cli", "gameday", str(path),
                             "--display", "plain", "--out", str(lab.tmp / "runs")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=lab.tmp, env=lab.env())
    lab.wait_applied(20)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert lab.applied() == []  # the step reverted before the day ended
    records = plan_journal(lab)
    (ended,) = [r for r in records if r["kind"] == "step-ended"]
    assert ended["exit_code"] == 130 and records[-1]["status"] == "interrupted"
    assert [r for r in records if r["kind"] == "day-stopped"][0]["skipped"] == ["next"]


def test_dry_run_prints_the_day_and_injects_nothing(lab: Lab) -> None:
    lab.write("a")
    lab.write("b")
    path = plan(lab, "  - {name: first, experiment: a.yaml}\n"
                     "  - {name: second, experiment: b.yaml, hold: look at the dashboards}\n")
    done = gameday(lab, path, "--dry-run", "--seed", "3")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "step 1 first" in done.stdout and "step 2 second" in done.stdout
    assert "HOLD: look at the dashboards" in done.stdout and "f1" in done.stdout
    assert "nothing was injected" in done.stdout
    assert lab.applied() == [] and not (lab.tmp / "runs").exists()


def test_a_hold_asks_in_a_terminal_and_no_stops_the_day(lab: Lab) -> None:
    lab.write("a")
    path = plan(lab, "  - {name: first, experiment: a.yaml, hold: the bank is slowed}\n")
    env = {k: v for k, v in lab.env().items() if k != "CI"}
    pid, fd = pty.fork()
    if pid == 0:  # the child: gameday with a terminal on stdin and stdout
        os.chdir(lab.tmp)
        os.execve(sys.executable, [sys.executable, "-m", "chaoskit.cli", "gameday", str(path),
                                   "--display", "plain", "--out", str(lab.tmp / "runs")], env)
    seen = b""
    deadline = time.monotonic() + 60
    while b"[y/N]" not in seen:
        assert time.monotonic() < deadline, seen.decode(errors="replace")
        seen += os.read(fd, 4096)
    assert b"HOLD before step first: the bank is slowed" in seen and b"f1" in seen
    os.write(fd, b"n\n")
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 130, seen.decode(errors="replace")
    assert lab.applied() == [] and not list((lab.tmp / "runs").glob("*/steps/*"))
    (hold,) = [r for r in plan_journal(lab) if r["kind"] == "hold"]
    assert hold["answer"] == "stop"


def test_in_ci_a_hold_is_shown_and_the_day_goes_on(lab: Lab) -> None:
    lab.write("a")
    path = plan(lab, "  - {name: first, experiment: a.yaml, hold: the bank is slowed}\n")
    done = gameday(lab, path)  # stdin is not a terminal
    assert done.returncode == 0, done.stdout + done.stderr
    assert "HOLD before step first: the bank is slowed" in done.stdout
    assert "going on" in done.stdout


def test_a_plan_is_validated_with_its_lines_and_its_experiments_with_theirs(lab: Lab) -> None:
    lab.write("a")
    bad = lab.tmp / "bad.yaml"
    bad.write_text(lab.write("b").read_text().replace("interval: 100ms", "interval: often", 1))
    path = plan(lab, "  - {name: first, experiment: a.yaml}\n"
                     "  - {name: second, experiment: missing.yaml}\n"
                     "  - {name: third, experiment: bad.yaml}\n")
    done = subprocess.run([sys.executable, "-m", "chaoskit.cli", "validate", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"{path}:7:" in done.stderr and "missing.yaml' not found" in done.stderr
    assert f"{bad}:" in done.stderr and "often" in done.stderr
    good = plan(lab, "  - {name: first, experiment: a.yaml}\n", name="good")
    ok = subprocess.run([sys.executable, "-m", "chaoskit.cli", "validate", str(good)],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "plan good: 1 steps, 1 experiments" in ok.stdout
    twice = plan(lab, "  - {name: x, experiment: a.yaml}\n  - {name: x, experiment: a.yaml}\n",
                 name="twice")
    refused = subprocess.run([sys.executable, "-m", "chaoskit.cli", "validate", str(twice)],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "x appears more than once" in refused.stderr


def outcome(name: str, code: int, failed: list[str] | None = None) -> StepOutcome:
    return StepOutcome("s", name, code, "?", failed or [])


def test_the_days_exit_code_is_its_worst_steps() -> None:
    assert day_exit([]) == 0 and day_exit([0, 0]) == 0
    assert day_exit([0, 5, 1]) == 1 and day_exit([1, 3]) == 3 and day_exit([3, 4]) == 4
    assert day_exit([4, 130]) == 130 and day_exit([0, 5]) == 5


def test_the_stop_rule() -> None:
    rule = StopRule(failed=["books"])
    assert stop_reason([outcome("a", 1, ["latency"])], rule) is None
    assert stop_reason([outcome("a", 1, ["books"])], rule) == "a failed books"
    assert stop_reason([outcome("a", 3)], rule) == "a was aborted by a guardrail"
    assert stop_reason([outcome("a", 3)], StopRule(aborted=False)) is None
    assert stop_reason([outcome("a", 1, ["x"])], StopRule(failed="any")) == "a failed x"
    assert "could not run" in str(stop_reason([outcome("a", 4)], rule))


def test_each_step_gets_its_own_seed_from_the_days() -> None:
    day = GamePlan.model_validate({
        "apiVersion": "chaoskit/v1", "kind": "GamePlan", "metadata": {"name": "d"},
        "steps": [{"name": "a", "experiment": "a.yaml"},
                  {"name": "b", "together": [{"name": "c", "experiment": "c.yaml"},
                                             {"name": "d", "experiment": "d.yaml"}]}]})
    seeds = step_seeds(day, 7)
    assert seeds == step_seeds(day, 7) and seeds != step_seeds(day, 8)
    assert set(seeds) == {"a", "c", "d"} and len(set(seeds.values())) == 3
