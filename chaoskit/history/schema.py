"""The history database: its schema (versioned by SQLite's user_version), connections, rows."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaoskit.errors import JournalError

HISTORY_FILE = "history.sqlite"
SCHEMA_VERSION = 1
BUSY_SECONDS = 30.0
SCHEMA = ("""
CREATE TABLE runs (
    run_id       TEXT PRIMARY KEY,
    experiment   TEXT NOT NULL,
    journal      TEXT NOT NULL,  -- relative to the output folder when inside it
    source       TEXT,
    seed         INTEGER,
    parameters   TEXT,           -- JSON object, or NULL
    started      REAL,           -- wall-clock epoch seconds (the header's ts)
    ended        REAL,           -- the result's ts; NULL while unfinished
    status       TEXT NOT NULL,  -- held, failed, ... (the result's), or unfinished
    exit_code    INTEGER,
    code_version TEXT,
    platform     TEXT,
    indexed      REAL NOT NULL
)""", "CREATE INDEX runs_by_experiment ON runs (experiment, started)", """
CREATE TABLE verdicts (
    run_id    TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    item      TEXT NOT NULL,
    phase     TEXT NOT NULL,
    status    TEXT,
    held      INTEGER,
    observed  REAL,
    threshold REAL,
    baseline  REAL,
    expect    TEXT,
    aggregate TEXT,
    samples   INTEGER,
    note      TEXT,
    unit      TEXT,           -- of observed, threshold and baseline ('s', 'ratio', 'rows', ...)
    PRIMARY KEY (run_id, item, phase)
)""")
VERDICT_FIELDS = ("item", "phase", "status", "held", "observed", "threshold", "baseline",
                  "expect", "aggregate", "samples", "note", "unit")

@dataclass(frozen=True)
class VerdictRow:
    item: str
    phase: str
    status: str | None
    held: bool | None
    observed: float | None
    threshold: float | None
    baseline: float | None
    expect: str | None
    aggregate: str | None
    samples: int | None
    note: str | None
    unit: str | None = None


@dataclass(frozen=True)
class RunRow:
    run_id: str
    experiment: str
    journal: Path
    source: str | None
    seed: int | None
    parameters: dict[str, Any] | None
    started: float | None
    ended: float | None
    status: str
    exit_code: int | None
    code_version: str | None
    platform: str | None
    verdicts: tuple[VerdictRow, ...] = ()


@dataclass(frozen=True)
class TrendPoint:
    """One earlier run's value of one item in one phase (observed None: no evidence)."""

    run_id: str
    started: float | None
    observed: float | None
    threshold: float | None
    status: str | None
    code_version: str | None
    unit: str | None = None


def database(runs_dir: str | Path) -> Path:
    return Path(runs_dir) / HISTORY_FILE


def _failure(path: Path, exc: Exception) -> JournalError:
    return JournalError(f"the run history {path} cannot be used: {exc}",
                        hint="check the output folder is writable; the journals are intact, and "
                             "`reindex` rebuilds the history from them")


@contextmanager
def writing(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version == SCHEMA_VERSION:
        return
    if version > SCHEMA_VERSION:
        raise JournalError(f"the run history {path} has schema {version}, newer than this "
                           f"chaoskit's {SCHEMA_VERSION}",
                           hint="upgrade chaoskit, or use another output folder (--out)")
    with writing(db):
        if db.execute("PRAGMA user_version").fetchone()[0] == 0:  # or another process did it
            for statement in SCHEMA:
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _wal(db: sqlite3.Connection) -> None:
    """WAL (persistent in the file). Switching takes an exclusive lock for which SQLite does not
    wait when another connection is creating the database too: retried here."""
    deadline = time.monotonic() + BUSY_SECONDS
    while db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return  # WAL, or what the file system allows (the busy timeout still applies)
        except sqlite3.OperationalError as exc:
            if time.monotonic() > deadline or "locked" not in str(exc).lower():
                raise  # only a lock held by another writer is worth waiting for (not a full disk)
            time.sleep(0.05)


@contextmanager
def connect(runs_dir: str | Path) -> Iterator[sqlite3.Connection]:
    """An open, current-schema connection (autocommit; write inside `writing`)."""
    path = database(runs_dir)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(path, timeout=BUSY_SECONDS, isolation_level=None)) as db:
            db.execute(f"PRAGMA busy_timeout = {int(BUSY_SECONDS * 1000)}")
            _wal(db)
            db.execute("PRAGMA foreign_keys = ON")
            _migrate(db, path)
            yield db
    except (sqlite3.Error, OSError) as exc:
        raise _failure(path, exc) from exc
