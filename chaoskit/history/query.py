"""Reading the history: runs with their verdicts, an item's trend, the last passing run."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from chaoskit.history.schema import (
    VERDICT_FIELDS,
    RunRow,
    TrendPoint,
    VerdictRow,
    connect,
    database,
)


def _run_row(runs_dir: Path, row: sqlite3.Row, verdicts: tuple[VerdictRow, ...]) -> RunRow:
    journal = Path(row["journal"])
    return RunRow(row["run_id"], row["experiment"],
                  journal if journal.is_absolute() else runs_dir / journal, row["source"],
                  row["seed"], json.loads(row["parameters"]) if row["parameters"] else None,
                  row["started"], row["ended"], row["status"], row["exit_code"],
                  row["code_version"], row["platform"], verdicts)


def _verdicts(db: sqlite3.Connection, run_id: str) -> tuple[VerdictRow, ...]:
    rows = db.execute(f"SELECT {', '.join(VERDICT_FIELDS)} FROM verdicts WHERE run_id = ? "
                      "ORDER BY CASE phase WHEN 'before' THEN 0 WHEN 'during' THEN 1 "
                      "WHEN 'after' THEN 2 ELSE 3 END, item", (run_id,)).fetchall()
    return tuple(VerdictRow(r["item"], r["phase"], r["status"],
                            None if r["held"] is None else bool(r["held"]), r["observed"],
                            r["threshold"], r["baseline"], r["expect"], r["aggregate"],
                            r["samples"], r["note"], r["unit"]) for r in rows)


def runs(runs_dir: str | Path, experiment: str | None = None, limit: int | None = 20, *,
         run_id: str | None = None, status: str | None = None) -> list[RunRow]:
    """Indexed runs, newest first, with their verdicts ([] when nothing was indexed yet)."""
    runs_dir = Path(runs_dir)
    if not database(runs_dir).is_file():
        return []
    where = [(c, v) for c, v in (("experiment", experiment), ("run_id", run_id),
                                 ("status", status)) if v is not None]
    sql = "SELECT * FROM runs" + (" WHERE " + " AND ".join(f"{c} = ?" for c, _ in where)
                                  if where else "")
    sql += " ORDER BY started DESC, run_id DESC" + (f" LIMIT {int(limit)}" if limit else "")
    with connect(runs_dir) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute(sql, [v for _, v in where]).fetchall()
        return [_run_row(runs_dir, r, _verdicts(db, r["run_id"])) for r in rows]


def trends(runs_dir: str | Path, experiment: str, *, limit: int = 50,
           upto: str | None = None) -> dict[tuple[str, str], list[TrendPoint]]:
    """Each (item, phase) of the experiment over its last `limit` runs, oldest first; with
    `upto` (a run id) only that run and the runs started before it."""
    runs_dir = Path(runs_dir)
    if not database(runs_dir).is_file():
        return {}
    sql = ("SELECT r.run_id, r.started, r.code_version, v.item, v.phase, v.observed, "
           "v.threshold, v.status, v.unit FROM runs r JOIN verdicts v ON v.run_id = r.run_id "
           "WHERE r.run_id IN (SELECT run_id FROM runs WHERE experiment = ? "
           "AND (? IS NULL OR started <= (SELECT started FROM runs WHERE run_id = ?)) "
           "ORDER BY started DESC LIMIT ?) ORDER BY r.started, r.run_id")
    with connect(runs_dir) as db:
        rows = db.execute(sql, (experiment, upto, upto, limit)).fetchall()
    found: dict[tuple[str, str], list[TrendPoint]] = {}
    for run_id, started, code, item, phase, observed, threshold, status, unit in rows:
        found.setdefault((item, phase), []).append(
            TrendPoint(run_id, started, observed, threshold, status, code, unit))
    return found


def trend(runs_dir: str | Path, experiment: str, item: str, phase: str, *, limit: int = 50,
          upto: str | None = None) -> list[TrendPoint]:
    """One item's values in one phase over the experiment's runs, oldest first."""
    return trends(runs_dir, experiment, limit=limit, upto=upto).get((item, phase), [])


def last_passing(runs_dir: str | Path, experiment: str, *,
                 exclude: str | None = None) -> Path | None:
    """The journal of the experiment's newest run that held (and whose journal still exists),
    other than run `exclude`; None when there is none."""
    for row in runs(runs_dir, experiment, limit=None, status="held"):
        if row.run_id != exclude and row.journal.is_file():
            return row.journal
    return None
