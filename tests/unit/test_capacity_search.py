"""The capacity search through its controller, with each step's process replaced by a fake
that writes the journal a step would (tests/integration runs real steps against real servers):
its journal, its commands, stopping early, the comparison, and `chaoskit report` of it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chaoskit.cli import main as chaoskit_main
from chaoskit.engine.capacity import CapacitySearch, SearchOptions
from chaoskit.journal import Kind, read_journal, result
from chaoskit.spec.loader import load_experiment_text
from chaoskit.spec.models import Experiment
from tests.fixtures.capacity_steps import FakeSystem, rate_of, step_records

EXPERIMENT = """\
apiVersion: chaoskit/v1
kind: Experiment
metadata: {name: cap}
target: {platform: fake, entry: "http://127.0.0.1:9"}
system: {flows: {pay: {request: {method: GET, path: /}}}}
phases: {baseline: 0s, recover: 0s}
load: {duration: 2s, profile: [{shape: constant, rate: 40/s}]}
faults: [{name: half, type: fake, duration: 2s, signal: capacity, value: 0.5}]
hypothesis:
  - name: fast
    probe: {type: load, measure: p99, window: 1s, interval: 500ms}
    expect: "<= 100ms"
    phases: [during]
capacity: {from: 50/s, to: 1600/s, resolution: 25/s, step: 2s, EXTRA}
"""


def experiment(extra: str = "search: bisect") -> Experiment:
    return load_experiment_text(EXPERIMENT.replace("EXTRA", extra), "cap.yaml")


def search(tmp_path: Path, fake: FakeSystem, extra: str = "search: bisect",
           compare: bool = False, sets: dict[str, str] | None = None
           ) -> tuple[CapacitySearch, Any, list[dict[str, Any]]]:
    lines: list[str] = []
    runner = CapacitySearch(experiment(extra), "cap.yaml",
                            SearchOptions(seed=11, out=tmp_path, compare=compare,
                                          sets=sets or {}), lines.append, launch=fake)
    outcome = runner.run()
    return runner, outcome, read_journal(outcome.journal, first=Kind.CAPACITY)


def test_the_search_brackets_the_capacity_and_journals_every_step(tmp_path: Path) -> None:
    fake = FakeSystem(capacity=310)
    runner, outcome, records = search(tmp_path, fake, sets={"entry": "x"})
    assert (outcome.status, outcome.exit_code) == ("held", 0)
    found = outcome.conclusions["with-faults"]
    assert found.held is not None and found.failed is not None
    assert found.held <= 310 < found.failed and found.failed - found.held <= 25
    kinds = [r["kind"] for r in records]
    assert kinds[0] == Kind.CAPACITY and kinds[-1] == Kind.RESULT
    started = [r for r in records if r["kind"] == Kind.RATE_STEP]
    ended = [r for r in records if r["kind"] == Kind.RATE_STEP_ENDED]
    assert len(started) == len(ended) == len(fake.commands) == runner.steps
    assert [r["rate"] for r in ended] == [rate_of(c) for c in fake.commands]
    assert all(r["evidence"]["verdicts"] and r["evidence"]["load"] for r in ended)
    # every step: the same file and seed, its own folder and history, every fault active
    for command, step in zip(fake.commands, started, strict=True):
        assert command[3:5] == ["run", "cap.yaml"] and "--without-faults" not in command
        assert command[command.index("--seed") + 1] == "11"
        assert command[command.index("--out") + 1] == step["out"]
        assert command[command.index("--history") + 1] == step["out"]
        assert command[command.index("--set") + 1] == "entry=x"
        assert Path(step["out"]).parent == outcome.dir / "steps"
    closing = result(records) or {}
    assert closing["searches"]["with-faults"]["held"] == found.held and closing["cost"] is None


def test_a_fault_that_halves_capacity_is_reported_as_costing_half(tmp_path: Path) -> None:
    fake = FakeSystem(capacity=800, with_faults=400)
    _, outcome, records = search(tmp_path, fake, compare=True)
    assert outcome.exit_code == 0
    with_faults = outcome.conclusions["with-faults"]
    without = outcome.conclusions["without-faults"]
    assert with_faults.held is not None and with_faults.held <= 400 < (with_faults.failed or 0)
    assert without.held is not None and without.held <= 800 < (without.failed or 0)
    # the comparison begins where the faults left off, and sends no fault
    comparison = [c for c in fake.commands if "--without-faults" in c]
    assert comparison and rate_of(comparison[0]) == with_faults.held
    assert outcome.cost is not None and outcome.cost.exact
    assert outcome.cost.ratio == pytest.approx(0.5, abs=0.04)
    assert outcome.cost.rate == pytest.approx(400, abs=25)
    assert (result(records) or {})["cost"]["ratio"] == outcome.cost.ratio


def test_a_guardrail_stops_the_search_there_with_no_comparison(tmp_path: Path) -> None:
    def trips(rate: float, faults: bool) -> list[dict[str, Any]] | None:
        if rate < 200:
            return None
        return step_records(rate, held=False, status="aborted", extra={
            "abort": {"by": "guardrail", "reason": "guardrail books-unbalanced: 3 > 0"}})

    fake = FakeSystem(capacity=5000, special=trips)
    _, outcome, records = search(tmp_path, fake, compare=True)
    assert (outcome.status, outcome.exit_code) == ("aborted", 3)
    assert [rate_of(c) for c in fake.commands] == [50, 100, 200]
    assert "without-faults" not in outcome.conclusions
    assert outcome.conclusions["with-faults"].stopped == "guardrail books-unbalanced: 3 > 0"
    assert outcome.conclusions["with-faults"].held == 100


def test_the_generators_limit_ends_the_search_inconclusive_above_it(tmp_path: Path) -> None:
    def short(rate: float, faults: bool) -> list[dict[str, Any]] | None:
        return step_records(rate, held=True, status="inconclusive", sent_ratio=0.6) \
            if rate >= 400 else None

    _, outcome, records = search(tmp_path, FakeSystem(5000, special=short))
    found = outcome.conclusions["with-faults"]
    assert (outcome.status, outcome.exit_code) == ("inconclusive", 5)
    assert found.held == 200 and found.failed is None and found.generator_limit == 400
    assert chaoskit_main(["report", str(outcome.journal), "--json"]) == 0


def test_a_step_that_was_not_steady_is_repeated_once(tmp_path: Path) -> None:
    seen: list[float] = []

    def backlog_once(rate: float, faults: bool) -> list[dict[str, Any]] | None:
        seen.append(rate)
        if rate == 100 and seen.count(100) == 1:
            return step_records(rate, held=False, before_failed=True)
        return None

    _, outcome, records = search(tmp_path, FakeSystem(310, special=backlog_once))
    assert seen[:3] == [50, 100, 100]
    ended = [r for r in records if r["kind"] == Kind.RATE_STEP_ENDED]
    assert ended[1]["verdict"] == "unsteady" and "not steady before the step" in ended[1]["reason"]
    assert outcome.exit_code == 0


def test_stopping_the_search_interrupts_the_running_step(tmp_path: Path) -> None:
    runner: CapacitySearch | None = None

    def interrupted(rate: float, faults: bool) -> list[dict[str, Any]] | None:
        if rate < 200:
            return None
        assert runner is not None
        runner.stopping = "interrupted by SIGTERM"
        return step_records(rate, held=True, status="interrupted")

    fake = FakeSystem(5000, special=interrupted)
    runner = CapacitySearch(experiment(), "cap.yaml", SearchOptions(seed=1, out=tmp_path,
                                                                    compare=True),
                            lambda line: None, launch=fake)
    outcome = runner.run()
    assert outcome.status == "interrupted" and outcome.exit_code == 130
    assert [rate_of(c) for c in fake.commands] == [50, 100, 200]  # nothing after it


def test_chaoskit_report_rebuilds_the_search_report(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    _, outcome, _ = search(tmp_path, FakeSystem(capacity=800, with_faults=400), compare=True)
    capsys.readouterr()
    assert chaoskit_main(["report", str(outcome.journal)]) == 0
    out = capsys.readouterr().out
    assert "with the faults: capacity 400/s" in out and "the faults cost 400/s" in out
    assert "fast [during]: 300 ms against <= 100ms: 200 ms over (3x the limit)" in out
    page = outcome.journal.with_name("report.html").read_text()
    data = json.loads(page.split('id="chaoskit-data">')[1].split("</script>")[0])
    (item, load) = data["plots"]
    assert item["section"] == "capacity" and item["xaxis"]["unit"] == "/s"
    assert item["x"] == sorted(item["x"]) and len(item["x"]) >= 8
    labels = [s["label"] for s in item["series"]]
    assert labels == ["with the faults [during]", "without the faults [during]", "limit"]
    assert item["unit"] == "ms" and set(item["series"][2]["values"]) == {100.0}
    assert load["series"][0]["values"] == item["x"]  # asked
    assert chaoskit_main(["report", str(outcome.journal), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["capacity"] == outcome.conclusions["with-faults"].held
    assert summary["cost"]["ratio"] == pytest.approx(0.5, abs=0.04)


def test_a_step_that_cannot_start_closes_the_search_journal_with_an_error(
        tmp_path: Path) -> None:
    def broken(command: list[str], out: Path) -> Any:
        raise OSError("no python here")

    runner = CapacitySearch(experiment(), "cap.yaml", SearchOptions(seed=1, out=tmp_path),
                            lambda line: None, launch=broken)
    with pytest.raises(OSError):
        runner.run()
    (journal,) = tmp_path.glob("*/search.jsonl")
    closing = result(read_journal(journal, first=Kind.CAPACITY)) or {}
    assert (closing["status"], closing["exit_code"]) == ("error", 4)
    assert closing["error"] == "no python here"
