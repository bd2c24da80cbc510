"""The run history: runs indexed from real journals, idempotently, safely from two processes."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from chaoskit.errors import JournalError
from chaoskit.history import (
    HISTORY_FILE,
    SCHEMA_VERSION,
    code_version,
    database,
    index_run,
    last_passing,
    reindex,
    runs,
    trend,
    trends,
)
from chaoskit.journal import JournalWriter, Kind
from chaoskit.report.history import render_history

DAY = 86400.0
T0 = 1_790_000_000.0  # 2026-09-21


def write_run(runs_dir: Path, run_id: str, *, experiment: str = "bank-latency",
              status: str | None = "held", p99: float | None = 400.0, started: float = T0,
              seed: int = 7) -> Path:
    """A journal as the engine writes it: a header, samples, and (unless None) the result."""
    path = runs_dir / run_id / "journal.jsonl"
    writer = JournalWriter(path)
    writer.write(Kind.HEADER, run_id=run_id, experiment=experiment, source=f"{experiment}.yaml",
                 seed=seed, pid=1, spec={}, platform={"platform": "local"}, lease="", ts=started)
    writer.write(Kind.SAMPLE, name="p99", role="hypothesis", phase="inject", value=p99)
    if status is not None:
        verdicts = [
            {"item": "p99", "phase": "during", "expect": "< 500ms", "aggregate": "p99",
             "held": status == "held", "status": status, "observed": p99, "threshold": 500.0,
             "samples": 3, "note": ""},
            {"item": "refund-lag", "phase": "after", "expect": "<= 0s", "aggregate": "max",
             "held": True, "status": "held", "observed": -1.5, "threshold": 0.0, "samples": 2,
             "note": "", "unit": "s"}]
        writer.write(Kind.RESULT, status=status, exit_code=0 if status == "held" else 1,
                     seed=seed, verdicts=verdicts, audit={"clean": True, "residue": {},
                                                          "errors": {}}, ts=started + 60)
    writer.close()
    return path


def test_a_run_is_indexed_with_its_verdicts_as_numbers_and_units(tmp_path: Path) -> None:
    journal = write_run(tmp_path, "r1", p99=412.25)
    row = index_run(tmp_path, journal, parameters={"rate": "600/s"}, code_version="v1.4.0-3-gabc")
    assert (row.run_id, row.experiment, row.status, row.seed) == ("r1", "bank-latency", "held", 7)
    assert row.started == T0 and row.ended == T0 + 60 and row.exit_code == 0
    assert row.parameters == {"rate": "600/s"} and row.code_version == "v1.4.0-3-gabc"
    assert row.journal == journal and row.platform == "local"
    by_item = {(v.item, v.phase): v for v in row.verdicts}
    assert by_item[("p99", "during")].observed == 412.25
    assert by_item[("p99", "during")].held is True
    assert by_item[("refund-lag", "after")].observed == -1.5
    assert by_item[("refund-lag", "after")].unit == "s" and by_item[("p99", "during")].unit is None
    assert (tmp_path / HISTORY_FILE).is_file()


def test_indexing_is_idempotent_and_keeps_what_was_given_before(tmp_path: Path) -> None:
    journal = write_run(tmp_path, "r1")
    index_run(tmp_path, journal, parameters={"seed": 7}, code_version="abc123")
    again = index_run(tmp_path, journal)
    assert again.parameters == {"seed": 7} and again.code_version == "abc123"
    assert len(runs(tmp_path)) == 1 and len(again.verdicts) == 2
    with sqlite3.connect(database(tmp_path)) as db:
        assert db.execute("SELECT count(*) FROM verdicts").fetchone()[0] == 2


def test_an_unfinished_run_is_indexed_and_updated_when_its_result_comes(tmp_path: Path) -> None:
    journal = write_run(tmp_path, "r1", status=None)
    assert index_run(tmp_path, journal).status == "unfinished"
    writer = JournalWriter(journal)  # e.g. `chaoskit recover` closing it later
    writer.write(Kind.RESULT, status="crashed", exit_code=4, verdicts=[])
    writer.close()
    row = index_run(tmp_path, journal)
    assert row.status == "crashed" and row.verdicts == ()


def test_runs_are_listed_newest_first_by_experiment_with_a_limit(tmp_path: Path) -> None:
    for day in range(5):
        index_run(tmp_path, write_run(tmp_path, f"bank-{day}", started=T0 + day * DAY))
    index_run(tmp_path, write_run(tmp_path, "other-0", experiment="node-loss"))
    assert [r.run_id for r in runs(tmp_path, "bank-latency", limit=3)] == [
        "bank-4", "bank-3", "bank-2"]
    assert {r.experiment for r in runs(tmp_path, limit=None)} == {"bank-latency", "node-loss"}
    assert runs(tmp_path, "nothing-like-it") == []


def test_the_trend_of_an_item_is_oldest_first_up_to_a_run(tmp_path: Path) -> None:
    values = [400.0, 420.0, None, 610.0]
    for day, value in enumerate(values):
        status = "inconclusive" if value is None else "held" if value < 500 else "failed"
        index_run(tmp_path, write_run(tmp_path, f"bank-{day}", status=status, p99=value,
                                      started=T0 + day * DAY), code_version=f"v{day}")
    points = trend(tmp_path, "bank-latency", "p99", "during")
    assert [p.observed for p in points] == values
    assert [p.status for p in points] == ["held", "held", "inconclusive", "failed"]
    assert points[-1].code_version == "v3" and points[-1].threshold == 500.0
    assert [p.run_id for p in trend(tmp_path, "bank-latency", "p99", "during", upto="bank-1")] \
        == ["bank-0", "bank-1"]
    assert [p.run_id for p in trend(tmp_path, "bank-latency", "p99", "during", limit=2)] == [
        "bank-2", "bank-3"]
    assert set(trends(tmp_path, "bank-latency")) == {("p99", "during"), ("refund-lag", "after")}


def test_last_passing_is_the_newest_held_run_whose_journal_exists(tmp_path: Path) -> None:
    assert last_passing(tmp_path, "bank-latency") is None
    for day, status in enumerate(["held", "held", "failed"]):
        index_run(tmp_path, write_run(tmp_path, f"bank-{day}", status=status,
                                      started=T0 + day * DAY))
    assert last_passing(tmp_path, "bank-latency") == tmp_path / "bank-1" / "journal.jsonl"
    assert last_passing(tmp_path, "bank-latency", exclude="bank-1") == (
        tmp_path / "bank-0" / "journal.jsonl")
    shutil.rmtree(tmp_path / "bank-1")
    assert last_passing(tmp_path, "bank-latency") == tmp_path / "bank-0" / "journal.jsonl"
    assert last_passing(tmp_path, "node-loss") is None


def test_the_history_moves_with_its_folder(tmp_path: Path) -> None:
    index_run(tmp_path / "runs", write_run(tmp_path / "runs", "r1"))
    shutil.move(tmp_path / "runs", tmp_path / "moved")
    assert runs(tmp_path / "moved")[0].journal == tmp_path / "moved" / "r1" / "journal.jsonl"
    assert last_passing(tmp_path / "moved", "bank-latency") is not None


def _index_many(runs_dir: str, prefix: str) -> int:
    for number in range(15):
        index_run(runs_dir, write_run(Path(runs_dir), f"{prefix}-{number}",
                                      started=T0 + number), code_version=prefix)
    return 15


def test_two_processes_indexing_at_once_lose_nothing(tmp_path: Path) -> None:
    """Both start on a missing database: they race on the schema too."""
    with ProcessPoolExecutor(max_workers=2) as pool:
        done = list(pool.map(_index_many, [str(tmp_path)] * 2, ["a", "b"]))
    assert done == [15, 15]
    rows = runs(tmp_path, limit=None)
    assert len(rows) == 30 and all(len(r.verdicts) == 2 for r in rows)
    with sqlite3.connect(database(tmp_path)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_newer_schema_is_refused_with_what_to_do(tmp_path: Path) -> None:
    index_run(tmp_path, write_run(tmp_path, "r1"))
    with sqlite3.connect(database(tmp_path)) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(JournalError) as raised:
        runs(tmp_path)
    assert "newer than this chaoskit's" in raised.value.message and "upgrade" in raised.value.hint


def test_an_unusable_database_is_a_journal_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / HISTORY_FILE).write_text("not a database, just text " * 100)
    with pytest.raises(JournalError) as raised:
        index_run(tmp_path, write_run(tmp_path, "r1"))
    assert HISTORY_FILE in raised.value.message and "reindex" in raised.value.hint


def test_reading_a_folder_without_history_creates_nothing(tmp_path: Path) -> None:
    assert runs(tmp_path) == [] and trends(tmp_path, "x") == {}
    assert not (tmp_path / HISTORY_FILE).exists()


def test_reindex_rebuilds_the_history_from_the_journals(tmp_path: Path) -> None:
    write_run(tmp_path, "r1")
    write_run(tmp_path, "r2", status="failed", started=T0 + DAY)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "journal.jsonl").write_text("{}\n")  # not a chaoskit journal
    assert reindex(tmp_path) == 2
    assert [r.status for r in runs(tmp_path)] == ["failed", "held"]


def test_the_code_version_comes_from_the_environment_or_git(tmp_path: Path) -> None:
    assert code_version(tmp_path, env={"CHAOSKIT_CODE_VERSION": "build-42"}) == "build-42"
    assert code_version(None, env={}) is None
    assert code_version(tmp_path, env={}) is None  # not a repository
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    quiet = {"check": True, "capture_output": True}
    subprocess.run([git, "init", "-q", str(tmp_path)], **quiet)  # type: ignore[call-overload]
    (tmp_path / "f").write_text("x")
    subprocess.run([git, "-C", str(tmp_path), "add", "f"], **quiet)  # type: ignore[call-overload]
    subprocess.run([git, "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t",
                    "commit", "-qm", "x"], **quiet)  # type: ignore[call-overload]
    subprocess.run([git, "-C", str(tmp_path), "tag", "v9.9"], **quiet)  # type: ignore[call-overload]
    assert code_version(tmp_path, env={}) == "v9.9"
    (tmp_path / "f").write_text("changed")
    assert code_version(tmp_path, env={}) == "v9.9-dirty"


def test_render_history_shows_runs_and_their_verdicts(tmp_path: Path) -> None:
    index_run(tmp_path, write_run(tmp_path, "bank-0", p99=412.25), code_version="v1")
    index_run(tmp_path, write_run(tmp_path, "bank-1", status="failed", p99=612.5,
                                  started=T0 + DAY))
    lines = render_history(runs(tmp_path))
    assert lines[0].split() == ["started", "(UTC)", "run", "status", "seed", "code"]
    assert lines[1].split()[:4] == ["2026-09-22", "14:13:20", "bank-1", "failed"]
    assert "    p99 (during): failed, observed 612.5, expected < 500ms" in lines
    assert "    refund-lag (after): held, observed -1.5 s, expected <= 0s" in lines  # its unit
    assert any("bank-0" in line and line.rstrip().endswith("v1") for line in lines)
    assert render_history([])[0].startswith("no runs indexed yet")
