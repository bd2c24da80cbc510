"""The otherpay bank: a counterparty that executes payouts and collections once per key."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import psycopg
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from tests.otherpay import runtime
from tests.otherpay.config import Settings
from tests.otherpay.money import view
from tests.otherpay.schema import BANK_LOCK, bank_statements, migrate

FIELDS = ("idempotency_key", "movement_ref", "kind", "amount_cents", "ccy")


class Bank:
    """Executed operations by idempotency key: kept in memory and, when it has a database,
    in `<schema>.op_bank_ledger` before it answers."""

    def __init__(self, settings: Settings, pool: AsyncConnectionPool | None,
                 registry: CollectorRegistry) -> None:
        self.settings, self.pool = settings, pool
        self.ops: dict[str, dict[str, Any]] = {}
        self.locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.executed = Counter("otherpay_bank_ops", "operations executed", ["kind"],
                                registry=registry)
        self.replays = Counter("otherpay_bank_replays", "repeats answered from the record",
                               registry=registry)
        self.declines = Counter("otherpay_bank_declines", "operations declined",
                                registry=registry)

    async def load(self) -> None:
        if self.pool is None:
            return
        async with self.pool.connection() as conn, conn.cursor(
                row_factory=psycopg.rows.dict_row) as cur:
            await cur.execute(f"SELECT * FROM {self.settings.bank_schema}.op_bank_ledger "
                              "ORDER BY executed_at")
            for row in await cur.fetchall():
                self.ops[row["idempotency_key"]] = view(row)

    async def execute(self, order: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if self.settings.bank_latency:
            await asyncio.sleep(self.settings.bank_latency)
        limit = self.settings.bank_decline_above
        if limit and order["amount_cents"] > limit:
            self.declines.inc()
            return 402, {"error": f"declined: over {limit} cents"}
        key = order["idempotency_key"]
        async with self.locks[key]:
            if key in self.ops:
                self.replays.inc()
                return 200, {"op": self.ops[key], "replayed": True}
            op = {"bank_op_ref": f"bk_{uuid.uuid4().hex[:16]}", **order,
                  "executed_at": datetime.now(UTC).isoformat()}
            await self.persist(op)
            self.ops[key] = op
        self.executed.labels(order["kind"]).inc()
        return 200, {"op": op, "replayed": False}

    async def persist(self, op: dict[str, Any]) -> None:
        if self.pool is None:
            return
        async with self.pool.connection() as conn:
            await conn.execute(
                f"INSERT INTO {self.settings.bank_schema}.op_bank_ledger (bank_op_ref, "
                "idempotency_key, movement_ref, kind, amount_cents, ccy, executed_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                tuple(op[name] for name in ("bank_op_ref", *FIELDS, "executed_at")))


def parse_order(body: Any) -> dict[str, Any] | None:
    if not isinstance(body, dict) or any(name not in body for name in FIELDS):
        return None
    amount = body["amount_cents"]
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        return None
    if body["kind"] not in ("payout", "collect"):
        return None
    return {name: body[name] for name in FIELDS}


def build_app(bank: Bank, registry: CollectorRegistry) -> web.Application:
    async def post_op(request: web.Request) -> web.Response:
        try:
            order = parse_order(await request.json())
        except ValueError:
            order = None
        if order is None:
            return web.json_response({"error": f"need {', '.join(FIELDS)}"}, status=400)
        try:
            status, body = await bank.execute(order)
        except (psycopg.Error, PoolTimeout, OSError) as exc:
            return web.json_response({"error": f"ledger unavailable: {exc.__class__.__name__}"},
                                     status=503)
        return web.json_response(body, status=status)

    async def list_ops(_: web.Request) -> web.Response:
        return web.json_response({"ops": list(bank.ops.values())})

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "service": "bank",
                                  "instance": bank.settings.instance, "ops": len(bank.ops)})

    app = web.Application(middlewares=[runtime.count_requests(runtime.request_counter(registry))])
    app.router.add_post("/ops", post_op)
    app.router.add_get("/ops", list_ops)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", runtime.metrics_handler(registry))
    return app


async def run(settings: Settings) -> None:
    pool = None
    if settings.bank_database_url:
        pool = await runtime.open_pool(settings.bank_database_url, 4, settings.startup_timeout)
        async with pool.connection() as conn:
            await migrate(conn, bank_statements(settings.bank_schema), BANK_LOCK)
    registry = CollectorRegistry()
    bank = Bank(settings, pool, registry)
    await bank.load()

    async def close() -> None:
        if pool is not None:
            await pool.close()

    await runtime.serve(settings, build_app(bank, registry), on_stop=close)
