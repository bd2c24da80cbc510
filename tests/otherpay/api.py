"""The otherpay API (aiohttp): charges, refunds, pre-sale orders and their balances."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from aiohttp import web
from prometheus_client import CollectorRegistry
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from tests.otherpay import money, runtime
from tests.otherpay.config import Settings
from tests.otherpay.money import Answer, Refusal, one
from tests.otherpay.schema import migrate

POOL = web.AppKey("pool", AsyncConnectionPool)
SETTINGS = web.AppKey("settings", Settings)
Work = Callable[[psycopg.AsyncConnection], Awaitable[Answer]]
READABLE = {"refunds": ("op_refund_requests", "refund_ref", "refund"),
            "balances": ("op_balances", "balance_ref", "balance"),
            "charges": ("op_charges", "charge_ref", "charge"),
            "orders": ("op_presale_orders", "order_no", "order")}
MAX_CENTS = 10**12


async def read_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise Refusal(400, "bad_json", "the body is not JSON") from None
    if not isinstance(body, dict):
        raise Refusal(400, "bad_json", "the body must be a JSON object")
    rid = body.get("request_id")
    if not isinstance(rid, str) or not 0 < len(rid) <= 200:
        raise Refusal(400, "missing_request_id", "request_id (a string) is required in the body")
    return body


def cents(body: dict[str, Any], name: str) -> int:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_CENTS:
        raise Refusal(400, "bad_amount", f"{name} must be a positive integer of cents")
    return value


def currency(body: dict[str, Any]) -> str:
    ccy = body.get("ccy")
    if not isinstance(ccy, str) or not re.fullmatch(r"[A-Z]{3}", ccy):
        raise Refusal(400, "bad_ccy", "ccy must be an ISO 4217 code such as EUR")
    return ccy


async def once(pool: AsyncConnectionPool, body: dict[str, Any], route: str,
               work: Work) -> tuple[int, dict[str, Any], bool]:
    """Do `work` once per request_id: the log row and the money commit together; a repeat
    (even a concurrent one, which waits on the row's unique key) gets the first answer."""
    rid = body["request_id"]
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("SET LOCAL lock_timeout = '5s'")
        cur = await conn.execute(
            "INSERT INTO op_request_log (request_id, route, body_digest, status, answer) "
            "VALUES (%s, %s, %s, 0, '{}') ON CONFLICT (request_id) DO NOTHING",
            (rid, route, digest))
        if cur.rowcount == 0:
            first = await one(conn, "SELECT route, body_digest, status, answer "
                                    "FROM op_request_log WHERE request_id = %s", (rid,))
            assert first is not None
            if (first["route"], first["body_digest"]) != (route, digest):
                raise Refusal(422, "request_id_reused",
                              "this request_id was used for a different request")
            return int(first["status"]), dict(first["answer"]), True
        status, answer, movement_ref = await work(conn)
        await conn.execute("UPDATE op_request_log SET status = %s, answer = %s, "
                           "movement_ref = %s WHERE request_id = %s",
                           (status, Jsonb(answer), movement_ref, rid))
        return status, answer, False


def failure(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status,
                             headers={"Retry-After": "1"})


async def guarded(step: Callable[[], Awaitable[web.Response]]) -> web.Response:
    """Map refusals and database trouble to answers a client can act on."""
    try:
        return await step()
    except Refusal as exc:
        return web.json_response(exc.body(), status=exc.status)
    except psycopg.errors.LockNotAvailable:
        return failure(409, "request_in_progress", "the first request is still running")
    except (PoolTimeout, psycopg.Error, OSError) as exc:
        return failure(503, "database_unavailable", exc.__class__.__name__)


def moving(work: Callable[[web.Request, dict[str, Any], Settings], Work]
           ) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A POST handler: parse the body, run the movement once per request_id, answer."""

    async def handler(request: web.Request) -> web.Response:
        async def step() -> web.Response:
            body = await read_body(request)
            action = work(request, body, request.app[SETTINGS])
            status, answer, replayed = await once(request.app[POOL], body, request.path, action)
            headers = {"Otherpay-Replayed": "true"} if replayed else {}
            return web.json_response(answer, status=status, headers=headers)
        return await guarded(step)

    return handler


def charge(request: web.Request, body: dict[str, Any], _: Settings) -> Work:
    merchant = request.match_info["merchant"]
    amount, ccy = cents(body, "amount_cents"), currency(body)
    return lambda conn: money.capture_charge(conn, merchant, amount, ccy)


def refund(request: web.Request, body: dict[str, Any], settings: Settings) -> Work:
    ref, amount = request.match_info["charge_ref"], cents(body, "amount_cents")
    return lambda conn: money.request_refund(conn, ref, amount, settings.refund_sla)


def order(request: web.Request, body: dict[str, Any], _: Settings) -> Work:
    sale = request.match_info["sale_id"]
    deposit, balance = cents(body, "deposit_cents"), cents(body, "balance_cents")
    ccy = currency(body)
    return lambda conn: money.place_order(conn, sale, deposit, balance, ccy)


def balance(request: web.Request, _: dict[str, Any], settings: Settings) -> Work:
    order_no = request.match_info["order_no"]
    return lambda conn: money.request_balance(conn, order_no, settings.balance_sla)


async def read(request: web.Request) -> web.Response:
    table, key, name = READABLE[request.match_info["kind"]]

    async def step() -> web.Response:
        async with request.app[POOL].connection() as conn:
            row = await one(conn, f"SELECT * FROM {table} WHERE {key} = %s",
                            (request.match_info["ref"],))
        if row is None:
            raise Refusal(404, f"unknown_{name}", f"no {name} {request.match_info['ref']}")
        return web.json_response({name: money.view(row)})

    return await guarded(step)


async def health(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    ok = await runtime.database_answers(request.app[POOL])
    return web.json_response({"status": "ok" if ok else "database unreachable",
                              "service": "api", "instance": settings.instance},
                             status=200 if ok else 503)


def build_app(settings: Settings, pool: AsyncConnectionPool) -> web.Application:
    registry = CollectorRegistry()
    app = web.Application(middlewares=[runtime.count_requests(runtime.request_counter(registry))])
    app[POOL], app[SETTINGS] = pool, settings
    kinds = "|".join(READABLE)
    app.router.add_post("/api/v2/merchants/{merchant}/charges", moving(charge))
    app.router.add_post("/api/v2/charges/{charge_ref}/refunds", moving(refund))
    app.router.add_post("/api/v2/presales/{sale_id}/orders", moving(order))
    app.router.add_post("/api/v2/orders/{order_no}/balance", moving(balance))
    app.router.add_get("/api/v2/{kind:" + kinds + "}/{ref}", read)
    app.router.add_get("/api/v2/health", health)
    app.router.add_get("/api/v2/metrics", runtime.metrics_handler(registry))
    return app


async def run(settings: Settings) -> None:
    pool = await runtime.open_pool(settings.database_url, settings.pool_size,
                                   settings.startup_timeout, settings.db_timeout)
    async with pool.connection() as conn:
        await migrate(conn)
    await runtime.serve(settings, build_app(settings, pool), on_stop=pool.close)
