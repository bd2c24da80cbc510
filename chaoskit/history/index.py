"""Indexing runs from their journals: idempotent, one IMMEDIATE transaction per run."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chaoskit.errors import JournalError
from chaoskit.history.query import runs
from chaoskit.history.schema import RunRow, connect, writing
from chaoskit.journal import Record, header, read_journal, result

CODE_VERSION_ENV = "CHAOSKIT_CODE_VERSION"
UNFINISHED = "unfinished"  # a journal without a result: the run died or is still going


def _stored_path(runs_dir: Path, journal: Path) -> str:
    journal = journal.resolve()
    try:
        return str(journal.relative_to(runs_dir.resolve()))
    except ValueError:
        return str(journal)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _verdict_values(run_id: str, verdict: Mapping[str, Any]) -> tuple[Any, ...]:
    held = verdict.get("held")
    return (run_id, str(verdict.get("item", "")), str(verdict.get("phase", "")),
            verdict.get("status"), None if held is None else int(bool(held)),
            _number(verdict.get("observed")), _number(verdict.get("threshold")),
            _number(verdict.get("baseline")), verdict.get("expect"), verdict.get("aggregate"),
            verdict.get("samples"), verdict.get("note"), verdict.get("unit") or None)


def index_run(runs_dir: str | Path, journal_path: str | Path,
              parameters: Mapping[str, Any] | None = None,
              code_version: str | None = None) -> RunRow:
    """Index (or re-index) one run from its journal. Parameters and code version given before
    are kept when these are None. Raises JournalError (unreadable journal, unusable database)."""
    return _store(Path(runs_dir), Path(journal_path), read_journal(journal_path), parameters,
                  code_version)


def _store(runs_dir: Path, journal_path: Path, records: list[Record],
           parameters: Mapping[str, Any] | None, code_version: str | None) -> RunRow:
    head, closing_record = header(records), result(records) or {}
    run_id = str(head.get("run_id") or journal_path.parent.name)
    row = (run_id, str(head.get("experiment", "")), _stored_path(runs_dir, journal_path),
           head.get("source"), head.get("seed"),
           None if parameters is None else json.dumps(dict(parameters), sort_keys=True,
                                                      default=str),
           _number(head.get("ts")), _number(closing_record.get("ts")),
           str(closing_record.get("status") or UNFINISHED), closing_record.get("exit_code"),
           code_version, (head.get("platform") or {}).get("platform"), time.time())
    verdicts = [_verdict_values(run_id, v) for v in closing_record.get("verdicts") or []]
    with connect(runs_dir) as db, writing(db):
        db.execute(
            "INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (run_id) DO UPDATE "
            "SET experiment=excluded.experiment, journal=excluded.journal, "
            "source=excluded.source, seed=excluded.seed, "
            "parameters=COALESCE(excluded.parameters, runs.parameters), "
            "started=excluded.started, ended=excluded.ended, status=excluded.status, "
            "exit_code=excluded.exit_code, "
            "code_version=COALESCE(excluded.code_version, runs.code_version), "
            "platform=excluded.platform, indexed=excluded.indexed", row)
        db.execute("DELETE FROM verdicts WHERE run_id = ?", (run_id,))
        db.executemany("INSERT OR REPLACE INTO verdicts VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                       verdicts)
    found = runs(runs_dir, run_id=run_id)
    return found[0]


def reindex(runs_dir: str | Path) -> int:
    """Index every `<runs_dir>/*/journal.jsonl` (a history lost or made before this version)."""
    count = 0
    for journal in sorted(Path(runs_dir).glob("*/journal.jsonl")):
        try:
            records = read_journal(journal)
        except JournalError:
            continue  # not a chaoskit journal, or damaged: nothing to index
        _store(Path(runs_dir), journal, records, None, None)
        count += 1
    return count


def code_version(path: str | Path | None = None,
                 env: Mapping[str, str] | None = None) -> str | None:
    """The code under test: $CHAOSKIT_CODE_VERSION, else `git describe` of `path` (None when
    neither says)."""
    given = (os.environ if env is None else env).get(CODE_VERSION_ENV, "").strip()
    if given or path is None:
        return given or None
    try:
        described = subprocess.run(["git", "-C", str(path), "describe", "--tags", "--always",
                                    "--dirty"], capture_output=True, text=True, timeout=10,
                                   check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if described.returncode != 0:
        return None
    return described.stdout.strip() or None
