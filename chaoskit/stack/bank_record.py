"""The bank's own record of what it executed: its statement, which reconciliation compares with
the books (experiments/systems/reference-stack.yaml, `reconciliations:`).

The bank stands for an external party: this table is written by the bank alone, one row per
operation it executed, in its own transactions, never in the ledger's. A row is written before
the bank answers, so an approval the caller never received is still on the statement, as at a
real bank. Its primary key (bank, idempotency key) also makes the bank's idempotency survive a
restart of the bank.
"""

from __future__ import annotations

import asyncio
import logging
import time
from decimal import Decimal

import psycopg
from psycopg_pool import AsyncConnectionPool

log = logging.getLogger("chaoskit.stack.bank")
SCHEMA_LOCK = 0x63686B_42414E  # "chkBAN": the bank's DDL, apart from the stack's own lock
SCHEMA = """
CREATE TABLE IF NOT EXISTS bank_operations (
    bank             text NOT NULL,
    idempotency_key  text NOT NULL,
    operation        text NOT NULL,
    reference        text NOT NULL,
    amount           numeric NOT NULL,
    currency         text NOT NULL,
    executed_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (bank, idempotency_key)
)
"""
RECORD = """
INSERT INTO bank_operations (bank, idempotency_key, operation, reference, amount, currency)
VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (bank, idempotency_key) DO NOTHING RETURNING 1
"""


class BankStatement:
    """The table of executed operations, written through a small pool of its own."""

    def __init__(self, url: str, size: int = 8) -> None:
        self.url = url
        self.size = size
        self.pool: AsyncConnectionPool | None = None

    async def open(self, timeout: float = 60.0) -> None:
        """Wait for the database (it may start after the bank), create the table, open the
        pool."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                await self._create()
                break
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise
                log.warning("the bank's database is not ready (%s); retrying", exc)
                await asyncio.sleep(0.5)
        self.pool = AsyncConnectionPool(self.url, min_size=self.size, max_size=self.size,
                                        open=False, name="bank",
                                        kwargs={"autocommit": True, "connect_timeout": 5},
                                        reconnect_timeout=3600, timeout=10)
        await self.pool.open(wait=True, timeout=timeout)

    async def _create(self) -> None:
        async with await psycopg.AsyncConnection.connect(self.url, connect_timeout=5) as conn, \
                conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            await conn.execute(SCHEMA)

    async def record(self, bank: str, operation: str, key: str, reference: str,
                     amount: Decimal, currency: str) -> bool:
        """Write the executed operation; False when the key was executed before (a replay)."""
        assert self.pool is not None, "open() the statement first"
        async with self.pool.connection() as conn:
            cursor = await conn.execute(RECORD, (bank, key, operation, reference, amount,
                                                 currency))
            return await cursor.fetchone() is not None

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()
