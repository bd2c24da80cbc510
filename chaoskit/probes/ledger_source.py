"""The ledger database as the schedule and ledger probes read it: URL, connection, plain errors."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

from chaoskit.errors import ProbeError
from chaoskit.platforms.abilities import Database

STATEMENT_TIMEOUT_MS = 8000  # under the engine's 10 s sample timeout, so we fail with a reason


def database_url(configured: str | None, platform: object) -> str:
    """The probe's `database_url:`, else the platform's ledger URL."""
    if configured:
        return configured
    url = platform.database_url() if isinstance(platform, Database) else None
    if not url:
        raise ProbeError("no ledger database URL for the probe",
                         hint="set `database_url:` (postgresql://...) on the probe, or "
                              "`target.database` so the platform knows it")
    return str(url)


class LedgerSource:
    """One autocommit connection, reopened after a failure (the database may sit behind a
    faulty proxy during the run: a broken connection must not break every later sample)."""

    def __init__(self, url: str, connect_timeout: float) -> None:
        self.url = url
        self.connect_timeout = connect_timeout
        self._conn: psycopg.AsyncConnection[dict[str, Any]] | None = None

    async def _connection(self) -> psycopg.AsyncConnection[dict[str, Any]]:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(
                self.url, autocommit=True, row_factory=dict_row,
                connect_timeout=max(1, int(self.connect_timeout)),
                options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}")
        return self._conn

    async def row(self, query: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """The first row of a read-only query."""
        try:
            conn = await self._connection()
            cursor = await conn.execute(query, params)  # type: ignore[arg-type]  # static SQL
            return dict(await cursor.fetchone() or {})
        except psycopg.Error as exc:
            await self.close()
            raise self.failure(exc) from None

    def failure(self, exc: psycopg.Error) -> ProbeError:
        if isinstance(exc, psycopg.errors.UndefinedTable):
            return ProbeError(f"the ledger tables are missing at {self._safe_url()}: {exc}",
                              hint="point `database_url:` at the stack's database (its "
                                   "services create the tables at start)")
        return ProbeError(f"cannot read the ledger at {self._safe_url()}: "
                          f"{str(exc).strip() or type(exc).__name__}",
                          hint="check that PostgreSQL runs and the URL and credentials are right")

    def _safe_url(self) -> str:
        # never print a password into the journal
        info = psycopg.conninfo.conninfo_to_dict(self.url)
        return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def connection(self) -> psycopg.AsyncConnection[dict[str, Any]]:
        """For multi-statement reads (temporary tables); errors via `failure`."""
        try:
            return await self._connection()
        except psycopg.Error as exc:
            raise self.failure(exc) from None
