"""The MariaDB fixture serves a real server that answers through PyMySQL with a password."""

from __future__ import annotations

from urllib.parse import urlsplit

import pymysql
import pytest

from tests.fixtures.mariadb import connect, run_sql

pytestmark = pytest.mark.integration


def test_server_answers_a_query_as_the_password_user(mariadb_url: str) -> None:
    assert urlsplit(mariadb_url).password
    (version,), = run_sql(mariadb_url, "SELECT VERSION()")
    assert "MariaDB" in version
    assert run_sql(mariadb_url, "SELECT CURRENT_USER()") == [("chaoskit@127.0.0.1",)]


def test_a_wrong_password_is_refused(mariadb_url: str) -> None:
    parts = urlsplit(mariadb_url)
    wrong = mariadb_url.replace(f":{parts.password}@", ":not-the-password@")
    with pytest.raises(pymysql.err.OperationalError):
        run_sql(wrong, "SELECT 1")


def test_fresh_database_keeps_rows_in_transactions(mariadb_database: str) -> None:
    run_sql(mariadb_database, "CREATE TABLE promises (id VARCHAR(40) PRIMARY KEY, "
                              "due_at DATETIME(6) NOT NULL, amount_cents BIGINT NOT NULL)")
    with connect(mariadb_database, autocommit=False) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO promises VALUES (%s, NOW(6), %s)", ("rf_1", 500))
        conn.rollback()
        cur.execute("INSERT INTO promises VALUES (%s, NOW(6), %s)", ("rf_2", 700))
        conn.commit()
    assert run_sql(mariadb_database, "SELECT id, amount_cents FROM promises") == [("rf_2", 700)]
