"""The run history: every run's outcome indexed in SQLite in the output folder, read from journals.

`<out>/history.sqlite` holds one row per run (experiment, seed, parameters, start, status, the
code version under test) and one per verdict (item, phase, observed value and its unit). The
journal stays the source of truth: indexing is idempotent (a run indexed again, e.g. after a
recovery appended a newer result, replaces its rows), and the database can be rebuilt from the
journals with `reindex`. Two runs finishing at once are safe: WAL, a busy timeout, and each
write in one IMMEDIATE transaction. The schema's version is SQLite's `user_version`.
"""

from chaoskit.history.index import CODE_VERSION_ENV, UNFINISHED, code_version, index_run, reindex
from chaoskit.history.query import last_passing, runs, trend, trends
from chaoskit.history.schema import (
    HISTORY_FILE,
    SCHEMA_VERSION,
    RunRow,
    TrendPoint,
    VerdictRow,
    connect,
    database,
)

__all__ = ["CODE_VERSION_ENV", "HISTORY_FILE", "SCHEMA_VERSION", "UNFINISHED", "RunRow",
           "TrendPoint", "VerdictRow", "code_version", "connect", "database", "index_run",
           "last_passing", "reindex", "runs", "trend", "trends"]
