"""The otherpay worker: settles REQUESTED refunds and balances through the bank."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp
import psycopg
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from tests.otherpay import runtime
from tests.otherpay.config import Settings
from tests.otherpay.money import book, one
from tests.otherpay.schema import migrate

log = logging.getLogger("otherpay.worker")


@dataclass(frozen=True)
class Kind:
    """One kind of promised movement and how the worker claims and books it."""

    name: str
    table: str
    key: str
    bank_kind: str
    claim: str

    def lines(self, item: dict[str, Any]) -> list[tuple[str, int]]:
        cents = int(item["amount_cents"])
        if self.name == "refund":
            return [(f"merchant:{item['account']}", -cents), ("bank_payouts", cents)]
        return [("bank_collections", -cents), (f"presale:{item['account']}", cents)]


REFUND = Kind("refund", "op_refund_requests", "refund_ref", "payout", """
    SELECT r.refund_ref AS ref, r.amount_cents, r.ccy, r.tries, c.merchant AS account
    FROM op_refund_requests r JOIN op_charges c USING (charge_ref)
    WHERE r.state IN ('REQUESTED', 'IN_FLIGHT') AND r.next_try_at <= now()
    ORDER BY r.promised_by LIMIT 1 FOR UPDATE OF r SKIP LOCKED""")
BALANCE = Kind("balance", "op_balances", "balance_ref", "collect", """
    SELECT b.balance_ref AS ref, b.amount_cents, b.ccy, b.tries, b.order_no,
           o.sale_id AS account
    FROM op_balances b JOIN op_presale_orders o USING (order_no)
    WHERE b.state IN ('REQUESTED', 'IN_FLIGHT') AND b.next_try_at <= now()
    ORDER BY b.promised_by LIMIT 1 FOR UPDATE OF b SKIP LOCKED""")


class BankUnavailable(Exception):
    """No definite answer from the bank: retry later with the same idempotency key."""


class BankDeclined(Exception):
    """The bank said no: the movement is REJECTED."""


class Stopping(Exception):
    """SIGTERM arrived while holding an item: roll back, it stays REQUESTED."""


class Worker:
    def __init__(self, settings: Settings, pool: AsyncConnectionPool,
                 session: aiohttp.ClientSession, registry: CollectorRegistry) -> None:
        self.settings, self.pool, self.session = settings, pool, session
        self.completed = Counter("otherpay_worker_completed", "movements settled or rejected",
                                 ["kind", "outcome"], registry=registry)
        self.bank_failures = Counter("otherpay_worker_bank_failures",
                                     "bank calls without a definite answer", ["kind"],
                                     registry=registry)
        self.errors = Counter("otherpay_worker_errors", "polls that failed (database)",
                              registry=registry)

    def bank_key(self, item: dict[str, Any]) -> str:
        if "double-bank-charge" in self.settings.broken and item["tries"]:
            return f"{item['ref']}/retry-{item['tries']}"  # the defect: a fresh key per retry
        return str(item["ref"])

    async def call_bank(self, kind: Kind, item: dict[str, Any]) -> str:
        payload = {"idempotency_key": self.bank_key(item), "movement_ref": item["ref"],
                   "kind": kind.bank_kind, "amount_cents": item["amount_cents"],
                   "ccy": item["ccy"]}
        try:
            async with self.session.post(f"{self.settings.bank_url}/ops", json=payload) as resp:
                data = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise BankUnavailable(exc.__class__.__name__) from exc
        if resp.status == 200:
            return str(data["op"]["bank_op_ref"])
        if resp.status in (402, 422):
            raise BankDeclined(str(data.get("error", resp.status)))
        raise BankUnavailable(f"bank answered {resp.status}")

    async def settle_next(self, kind: Kind, stop: asyncio.Event) -> bool:
        """Claim the most urgent due item of `kind`, execute it at the bank, record the outcome,
        all in one transaction holding the row lock. False when nothing was due."""
        async with self.pool.connection() as conn, conn.transaction():
            item = await one(conn, kind.claim)
            if item is None:
                return False
            if "slow-worker" in self.settings.broken:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.settings.slow_delay)
                    raise Stopping
            await self.record(conn, kind, item)
        return True

    async def record(self, conn: psycopg.AsyncConnection, kind: Kind,
                     item: dict[str, Any]) -> None:
        where = f"WHERE {kind.key} = %s"
        try:
            bank_ref = await self.call_bank(kind, item)
        except BankUnavailable as exc:
            self.bank_failures.labels(kind.name).inc()
            log.warning("%s %s: bank unavailable (%s); retrying later", kind.name, item["ref"], exc)
            await conn.execute(f"UPDATE {kind.table} SET state = 'IN_FLIGHT', tries = tries + 1, "
                               "last_error = %s, next_try_at = clock_timestamp() "
                               f"+ make_interval(secs => %s) {where}",
                               (str(exc), self.settings.retry_backoff, item["ref"]))
            return
        except BankDeclined as exc:
            await conn.execute(f"UPDATE {kind.table} SET state = 'REJECTED', tries = tries + 1, "
                               f"last_error = %s {where}", (str(exc), item["ref"]))
            await self.mark_order(conn, kind, item, "BALANCE_REJECTED")
            self.completed.labels(kind.name, "rejected").inc()
            return
        await conn.execute(f"UPDATE {kind.table} SET state = 'SETTLED', "
                           "settled_at = clock_timestamp(), tries = tries + 1, "
                           f"bank_op_ref = %s, last_error = NULL {where}",
                           (bank_ref, item["ref"]))
        if not (kind is REFUND and "unbooked-refunds" in self.settings.broken):
            await book(conn, item["ref"], item["ccy"], kind.lines(item))
        await self.mark_order(conn, kind, item, "PAID_IN_FULL")
        self.completed.labels(kind.name, "settled").inc()

    @staticmethod
    async def mark_order(conn: psycopg.AsyncConnection, kind: Kind, item: dict[str, Any],
                         state: str) -> None:
        if kind is BALANCE:
            await conn.execute("UPDATE op_presale_orders SET state = %s WHERE order_no = %s",
                               (state, item["order_no"]))

    async def lane(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                busy = await self.settle_next(REFUND, stop) or await self.settle_next(BALANCE, stop)
            except Stopping:
                return
            except (psycopg.Error, PoolTimeout, OSError) as exc:
                self.errors.inc()
                log.warning("poll failed: %s", exc.__class__.__name__)
                busy = False
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.settings.poll_interval)

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(*(self.lane(stop) for _ in range(self.settings.concurrency)))


async def run(settings: Settings) -> None:
    pool = await runtime.open_pool(settings.database_url, settings.concurrency + 2,
                                   settings.startup_timeout, settings.db_timeout)
    async with pool.connection() as conn:
        await migrate(conn)
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=settings.bank_timeout))
    registry = CollectorRegistry()
    worker = Worker(settings, pool, session, registry)
    app = web.Application(middlewares=[runtime.count_requests(runtime.request_counter(registry))])

    async def health(_: web.Request) -> web.Response:
        ok = await runtime.database_answers(pool)
        return web.json_response({"status": "ok" if ok else "database unreachable",
                                  "service": "worker", "instance": settings.instance},
                                 status=200 if ok else 503)

    async def close() -> None:
        await session.close()
        await pool.close()

    app.router.add_get("/health", health)
    app.router.add_get("/metrics", runtime.metrics_handler(registry))
    await runtime.serve(settings, app, background=worker.run, on_stop=close)
