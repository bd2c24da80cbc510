"""PostgreSQL access for stack processes: connection pools and start-up migrations."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from importlib import resources

import psycopg
from psycopg_pool import AsyncConnectionPool

from chaoskit.errors import PlatformError

log = logging.getLogger("chaoskit.stack")

# A fixed key so every service serialises its DDL on the same advisory lock.
MIGRATION_LOCK = 0x63686B_5354  # "chkST"


def schema_sql() -> str:
    return resources.files("chaoskit.stack").joinpath("schema.sql").read_text(encoding="utf-8")


def schema_version() -> str:
    return hashlib.sha256(schema_sql().encode()).hexdigest()[:16]


async def _current(conn: psycopg.AsyncConnection, version: str) -> bool:
    """Whether this schema is already applied: read without taking any lock."""
    cursor = await conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
    found = await cursor.fetchone()
    if not (found and found[0]):
        return False
    cursor = await conn.execute("SELECT 1 FROM schema_migrations WHERE version = %s",
                                (version,))
    return await cursor.fetchone() is not None


async def migrate(conn: psycopg.AsyncConnection) -> None:
    """Apply the schema once per version; idempotent, and safe when many services start at
    once. A service restarted while others run (a node coming back) finds it current and takes
    no lock: its DDL (ALTER TABLE takes an exclusive lock) would otherwise queue behind, and
    block, the live traffic's statements on the same tables."""
    version = schema_version()
    if await _current(conn, version):
        return
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version text PRIMARY "
                           "KEY, applied_at timestamptz NOT NULL DEFAULT now())")
        cursor = await conn.execute("SELECT 1 FROM schema_migrations WHERE version = %s",
                                    (version,))
        if await cursor.fetchone() is None:  # another service may have just applied it
            await conn.execute(schema_sql())  # type: ignore[arg-type]  # trusted, static SQL
            await conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)",
                               (version,))


async def connect_and_migrate(url: str, timeout: float = 60.0) -> None:
    """Wait for the database (it may start after us or sit behind a proxy), then migrate."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(url, connect_timeout=5) as conn:
                await migrate(conn)
                return
        except psycopg.OperationalError as exc:
            if time.monotonic() > deadline:
                raise PlatformError(f"PostgreSQL at CHAOSKIT_DATABASE_URL unreachable: {exc}",
                                    hint="start PostgreSQL (or its Toxiproxy proxy) first, "
                                         "or fix CHAOSKIT_DATABASE_URL") from None
            log.warning("database not ready (%s); retrying", exc)
            await asyncio.sleep(0.5)


async def open_pool(url: str, size: int, *, name: str,
                    lock_timeout: float = 5.0) -> AsyncConnectionPool:
    """An autocommit pool; statements that must be atomic open explicit transactions.
    lock_timeout bounds how long a statement waits behind another transaction's locks."""
    options = f"-c lock_timeout={int(lock_timeout * 1000)}"
    pool = AsyncConnectionPool(
        url, min_size=size, max_size=size, open=False, name=name,
        kwargs={"autocommit": True, "connect_timeout": 5, "options": options},
        # a connection broken by a network fault is replaced, not handed out again
        reconnect_timeout=3600, timeout=10,
    )
    await pool.open(wait=True, timeout=60)
    return pool
