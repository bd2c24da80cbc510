"""Declarations checked against the real books before anything is injected: a promise query
without its columns or with a state word it does not map is refused with the file and line
(exit 2, nothing applied), on PostgreSQL and on MariaDB; a PromQL promise reads Prometheus."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.fixtures.mariadb import run_sql

pytestmark = pytest.mark.integration

SYSTEM = """apiVersion: chaoskit/v1
kind: System
metadata: {{name: books}}
databases:
  books: {{url: "{url}"}}
promises:
  payout:
    query: {query}
    states: {{completed: [PAID], pending: [QUEUED]}}
"""

EXPERIMENT = """apiVersion: chaoskit/v1
kind: Experiment
metadata: {{name: declared}}
system: system.yaml
target: {{platform: fake, lab: {state}}}
phases: {{baseline: 200ms, recover: 200ms}}
faults:
  - {{name: f1, type: fake, start: 100ms, duration: 300ms, signal: err, value: 0.1}}
hypothesis:
  - name: payouts-on-time
    probe: {{type: schedule, promise: payout, interval: 100ms}}
    expect: ">= 0%"
    no_evidence: held
"""

GOOD = "SELECT status AS state, due AS due_at, done AS completed_at FROM payouts"
NO_DUE = "SELECT status AS state, done AS completed_at FROM payouts"


def run(tmp: Path, url: str, query: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    (tmp / "system.yaml").write_text(SYSTEM.format(url=url, query=json.dumps(query)))
    path = tmp / "declared.yaml"
    path.write_text(EXPERIMENT.format(state=tmp / "state"))
    done = subprocess.run([sys.executable, "-m", "chaoskit.cli", "run", str(path), "--display",
                           "plain", "--no-report", "--out", str(tmp / "runs")],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "CHAOSKIT_CLAIMS": str(tmp / "claims")})
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout,
                                       ""), tmp / "state" / "faults"


def injected(faults: Path) -> bool:
    return faults.exists() and any(faults.iterdir())


def test_postgres_a_missing_column_and_an_unmapped_word_are_refused_before_injecting(
        database_url: str, tmp_path: Path) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE payouts (id int, status text, due timestamptz, "
                     "done timestamptz)")
        conn.execute("INSERT INTO payouts VALUES (1, 'PAID', now(), now()), "
                     "(2, 'QUEUED', now(), NULL)")
    done, faults = run(tmp_path, database_url, NO_DUE)
    assert done.returncode == 2, done.stdout
    assert f"{tmp_path / 'system.yaml'}:8:" in done.stdout  # the promise's query line
    assert "returns no column due_at" in done.stdout and "AS due_at" in done.stdout
    assert not injected(faults)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO payouts VALUES (3, 'REVERSED', now(), now())")
    done, faults = run(tmp_path, database_url, GOOD)
    assert done.returncode == 2, done.stdout
    assert f"{tmp_path / 'system.yaml'}:9:" in done.stdout  # the states line
    assert "['REVERSED']" in done.stdout and not injected(faults)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM payouts WHERE status = 'REVERSED'")
    done, _ = run(tmp_path, database_url, GOOD)
    assert done.returncode == 0, done.stdout


def test_mariadb_a_query_that_fails_is_refused_with_its_line(mariadb_database: str,
                                                              tmp_path: Path) -> None:
    run_sql(mariadb_database, "CREATE TABLE payouts (id INT, status VARCHAR(16), "
                              "due DATETIME(6), done DATETIME(6))")
    run_sql(mariadb_database, "INSERT INTO payouts VALUES (1, 'PAID', NOW(6), NOW(6))")
    done, faults = run(tmp_path, mariadb_database, GOOD.replace("payouts", "payoutz"))
    assert done.returncode == 2, done.stdout
    assert f"{tmp_path / 'system.yaml'}:8:" in done.stdout and "payoutz" in done.stdout
    assert not injected(faults)
    done, _ = run(tmp_path, mariadb_database, GOOD)
    assert done.returncode == 0, done.stdout
