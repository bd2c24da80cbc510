"""The system's books as probes read them: PostgreSQL or MySQL/MariaDB, read-only, bounded.

Every query a user declares runs in a read-only session (PostgreSQL's
`default_transaction_read_only`, MySQL's `SET SESSION TRANSACTION READ ONLY`) with a statement
time limit under the engine's sample timeout, so a slow database is a probe error with a reason,
never a hung run. A broken connection is reopened at the next sample: the database may sit
behind a faulty proxy during the run. Passwords never reach an error message.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg.rows import dict_row

from chaoskit.errors import ProbeError
from chaoskit.platforms.abilities import Database
from chaoskit.probes.base import waiting_on_the_system
from chaoskit.spec.system import SystemSpec

STATEMENT_TIMEOUT_MS = 8000  # under the engine's 10 s sample timeout, so we fail with a reason


@dataclass(frozen=True)
class Dialect:
    """What differs between the databases for the queries chaoskit wraps around users'."""

    name: str
    now: str
    seconds_between: str  # format with (later, earlier): seconds as a float
    keys_hint: str

    def lag(self, later: str, earlier: str) -> str:
        return self.seconds_between.format(later=later, earlier=earlier)


POSTGRES = Dialect("postgresql", "clock_timestamp()",
                   "extract(epoch FROM ({later}) - ({earlier}))::float8",
                   "= ANY(%(keys)s)")
MYSQL = Dialect("mysql", "NOW(6)",
                "TIMESTAMPDIFF(MICROSECOND, {earlier}, {later}) / 1000000.0",
                "IN %(keys)s")


def dialect_of(url: str) -> Dialect:
    scheme = urlsplit(url).scheme.split("+")[0]
    if scheme in ("postgresql", "postgres"):
        return POSTGRES
    if scheme in ("mysql", "mariadb"):
        return MYSQL
    raise ProbeError(f"no database driver for '{scheme}://' URLs",
                     hint="use postgresql://... or mysql://... (MariaDB too)")


def database_url(name: str | None, system: SystemSpec | None, platform: object) -> str:
    """The URL a declaration's `database:` names; the system's only database, or the
    platform's (target.database, the lab's) when it names none."""
    databases = system.databases if system else {}
    if name is not None:
        if name not in databases:
            raise ProbeError(f"no database named '{name}' in the system's `databases:`",
                             hint=f"declared: {', '.join(databases) or 'none'}")
        return databases[name].url
    if len(databases) == 1:
        return next(iter(databases.values())).url
    if isinstance(platform, Database):
        return platform.database_url()
    raise ProbeError("no database to read the books from",
                     hint="declare `databases:` in the system, set target.database, or point "
                          "the probe at one with `database:`")


def safe_url(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or 'localhost'}:{parts.port or ''}{parts.path}"


class Books:
    """One read-only connection to one database, reopened after a failure."""

    def __init__(self, url: str, connect_timeout: float = 5.0) -> None:
        self.url = url
        self.dialect = dialect_of(url)
        self.connect_timeout = connect_timeout
        self._pg: psycopg.AsyncConnection[dict[str, Any]] | None = None
        self._my: Any = None

    async def rows(self, query: str, params: dict[str, Any] | None = None,
                   limit: int | None = None) -> list[dict[str, Any]]:
        """The rows of a read-only query (at most `limit`)."""
        try:
            with waiting_on_the_system():
                if self.dialect is POSTGRES:
                    return await self._pg_rows(query, params, limit)
                return await asyncio.to_thread(self._my_rows, query, params, limit)
        except ProbeError:
            raise
        except Exception as exc:  # noqa: BLE001 - the drivers' errors, said plainly
            await self.close()
            raise self.failure(exc) from None

    async def row(self, query: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        found = await self.rows(query, params, limit=1)
        return found[0] if found else {}

    async def columns(self, query: str) -> list[str]:
        """The columns a query returns, without reading its rows (preflight)."""
        wrapped = f"SELECT * FROM ({query}) AS q WHERE 1 = 0"
        try:
            if self.dialect is POSTGRES:
                conn = await self._pg_connection()
                cursor = await conn.execute(wrapped)  # type: ignore[arg-type]
                return [c.name for c in cursor.description or []]
            return await asyncio.to_thread(self._my_columns, wrapped)
        except Exception as exc:  # noqa: BLE001 - the drivers' errors, said plainly
            await self.close()
            raise self.failure(exc) from None

    async def _pg_connection(self) -> psycopg.AsyncConnection[dict[str, Any]]:
        if self._pg is None or self._pg.closed:
            self._pg = await psycopg.AsyncConnection.connect(
                self.url, autocommit=True, row_factory=dict_row,
                connect_timeout=max(1, int(self.connect_timeout)),
                options=(f"-c statement_timeout={STATEMENT_TIMEOUT_MS} "
                         "-c default_transaction_read_only=on"))
        return self._pg

    async def _pg_rows(self, query: str, params: dict[str, Any] | None,
                       limit: int | None) -> list[dict[str, Any]]:
        conn = await self._pg_connection()
        cursor = await conn.execute(query, params)  # type: ignore[arg-type]  # declared SQL
        found = await (cursor.fetchmany(limit) if limit else cursor.fetchall())
        return [dict(r) for r in found]

    def _my_connection(self) -> Any:
        if self._my is None:
            import pymysql

            parts = urlsplit(self.url)
            self._my = pymysql.connect(
                host=parts.hostname or "127.0.0.1", port=parts.port or 3306,
                user=unquote(parts.username or ""), password=unquote(parts.password or ""),
                database=parts.path.lstrip("/") or None, connect_timeout=self.connect_timeout,
                read_timeout=STATEMENT_TIMEOUT_MS / 1000, autocommit=True,
                cursorclass=pymysql.cursors.DictCursor)
            with self._my.cursor() as cursor:
                cursor.execute("SET SESSION TRANSACTION READ ONLY")
        return self._my

    def _my_rows(self, query: str, params: dict[str, Any] | None,
                 limit: int | None) -> list[dict[str, Any]]:
        with self._my_connection().cursor() as cursor:
            cursor.execute(query, params)
            found = cursor.fetchmany(limit) if limit else cursor.fetchall()
        return [dict(r) for r in found]

    def _my_columns(self, query: str) -> list[str]:
        with self._my_connection().cursor() as cursor:
            cursor.execute(query)
            return [c[0] for c in cursor.description or []]

    def failure(self, exc: BaseException) -> ProbeError:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "read-only" in text or "READ ONLY" in text or "read only" in text:
            return ProbeError(f"the query tried to write at {safe_url(self.url)}: {text}",
                              hint="declared queries only read: write a SELECT")
        return ProbeError(f"cannot read the books at {safe_url(self.url)}: {text}",
                          hint="check the database runs, the URL and credentials, and that "
                               "the query's tables and columns exist")

    async def close(self) -> None:
        if self._pg is not None:
            await self._pg.close()
            self._pg = None
        if self._my is not None:
            my, self._my = self._my, None
            await asyncio.to_thread(my.close)
