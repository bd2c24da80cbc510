"""The online gateway: payments, refunds and final payments, each under an idempotency key."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import psycopg
import psycopg_pool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from chaoskit.spec.units import parse_duration
from chaoskit.stack import flows, idempotency, orders
from chaoskit.stack.config import StackConfig
from chaoskit.stack.database import connect_and_migrate, open_pool
from chaoskit.stack.idempotency import Outcome, Refusal
from chaoskit.stack.metrics import StackMetrics
from chaoskit.stack.serving import Handler, ops_routes, timed

log = logging.getLogger("chaoskit.stack.gateway")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
WEDGED_AFTER = 5.0  # seconds without handing out a connection while requests wait


def parse_amount(value: Any, field: str = "amount") -> Decimal:
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise Refusal(422, f"{field} {value!r} is not a number", 'send e.g. "12.34"') from None
    if not amount.is_finite() or amount <= 0 or amount.as_tuple().exponent < -2:  # type: ignore[operator]
        raise Refusal(422, f"{field} {value!r} must be positive with at most 2 decimals",
                      'send e.g. "12.34"')
    return amount


def parse_charge(payload: dict[str, Any]) -> flows.Charge:
    currency, merchant = payload.get("currency"), payload.get("merchant")
    if not isinstance(currency, str) or not _CURRENCY.match(currency):
        raise Refusal(422, f"currency {currency!r} is not an ISO 4217 code", 'send e.g. "CNY"')
    if not isinstance(merchant, str) or not 0 < len(merchant) <= 64:
        raise Refusal(422, "merchant must be a non-empty string", 'send e.g. "m-1"')
    order_id = payload.get("order_id")
    if order_id is not None and not isinstance(order_id, str):
        raise Refusal(422, "order_id must be a string", "omit it or send an order id")
    return flows.Charge(parse_amount(payload.get("amount")), currency, merchant, order_id)


async def keyed_payload(request: Request) -> tuple[str, dict[str, Any]]:
    key = request.headers.get("idempotency-key", "").strip()
    if not key or len(key) > 200:
        raise Refusal(400, "the Idempotency-Key header is required (1-200 characters)",
                      "send a unique key per intended operation and reuse it on retries")
    try:
        payload = json.loads(await request.body())
    except ValueError:
        raise Refusal(400, "the body is not JSON", "send a JSON object") from None
    if not isinstance(payload, dict):
        raise Refusal(400, "the body must be a JSON object", "send a JSON object")
    return key, payload


def answer(outcome: Outcome) -> Response:
    headers = {"Retry-After": "1"} if outcome.status in (409, 503) else None
    return JSONResponse(outcome.body, status_code=outcome.status, headers=headers)


def guarded(handler: Handler, timeout: float) -> Handler:
    """Refusals become their answer; a database that cannot serve (in `timeout` s) becomes 503.
    The timeout matters when a network fault swallows replies: without it a request hangs."""

    async def wrapper(request: Request) -> Response:
        try:
            async with asyncio.timeout(timeout):
                return await handler(request)
        except Refusal as refusal:
            return answer(refusal.outcome)
        except psycopg.IntegrityError as exc:  # e.g. a client key equal to an internal one
            log.warning("integrity refusal: %s", exc)
            return answer(Outcome(409, {"error": "conflicts with an existing record",
                                        "hint": "use a fresh Idempotency-Key"}))
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout, TimeoutError) as exc:
            log.warning("database unavailable: %s", exc)
            return answer(Outcome(503, {"error": "database unavailable", "hint": "retry"}))

    return wrapper


class Gateway:
    """The gateway's handlers, bound to one pool and one configuration."""

    def __init__(self, config: StackConfig, metrics: StackMetrics) -> None:
        self.config = config
        self.metrics = metrics
        self.pool: psycopg_pool.AsyncConnectionPool | None = None
        self.last_checkout = time.monotonic()

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        assert self.pool is not None, "the gateway pool opens at start-up"
        async with self.pool.connection() as conn:
            self.last_checkout = time.monotonic()
            yield conn

    def wedged(self) -> str | None:
        """Why this gateway cannot serve: requests wait for a connection and none was handed
        out for a while (a slow database still hands them out; a wedged pool does not). The
        balancer's health check then sends the traffic to the other gateways."""
        if self.pool is None:
            return None
        waiting = int(self.pool.get_stats().get("requests_waiting", 0))
        idle = time.monotonic() - self.last_checkout
        if waiting and idle > WEDGED_AFTER:
            return (f"{waiting} requests wait for a database connection; none handed out for "
                    f"{idle:.0f}s")
        return None

    def effective_key(self, key: str) -> str:
        # the deliberate defect: every request looks new, so retries move money again
        if self.config.is_broken("no-idempotency"):
            return f"{key}#{uuid.uuid4().hex}"
        return key

    @property
    def checks_then_inserts(self) -> bool:
        return self.config.is_broken("idempotency-check-then-insert")

    def flow_key(self, key: str) -> str:
        """The key a flow row carries: the request's. With the deliberate defect
        idempotency-check-then-insert the key lives only in the key table, written after the
        work, and each attempt's flow carries a request id of its own."""
        return f"{key}#{uuid.uuid4().hex}" if self.checks_then_inserts else key

    async def once(self, key: str, route: str, payload: dict[str, Any],
                   action: idempotency.Action) -> Response:
        """Run a multi-statement action once per (effective) key, in one transaction."""
        rhash = idempotency.request_hash(route, payload)
        run = idempotency.check_then_insert if self.checks_then_inserts else \
            idempotency.run_once
        async with self.connection() as conn:
            outcome = await run(conn, key, route, rhash, action)
        return answer(outcome)

    async def payment(self, request: Request) -> Response:
        key, payload = await keyed_payload(request)
        charge = parse_charge(payload)
        key, rhash = self.effective_key(key), idempotency.request_hash("payments", payload)
        if self.checks_then_inserts:
            return await self.once(key, "payments", payload, lambda conn: self._capture(
                conn, self.flow_key(key), rhash, charge))
        async with self.connection() as conn:
            try:
                outcome = await flows.capture_payment(conn, key, rhash, charge)
            except psycopg.errors.LockNotAvailable:
                raise Refusal(409, "a request with this Idempotency-Key is still in flight",
                              "retry the same request in a moment") from None
            if outcome is None:
                outcome = await idempotency.replay(conn, key, "payments", rhash)
        return answer(outcome)

    async def _capture(self, conn: psycopg.AsyncConnection, key: str, rhash: str,
                       charge: flows.Charge) -> Outcome:
        outcome = await flows.capture_payment(conn, key, rhash, charge)
        if outcome is None:  # a fresh request id is never taken
            raise Refusal(409, "a request with this Idempotency-Key is still in flight",
                          "retry the same request in a moment")
        return outcome

    async def refund(self, request: Request) -> Response:
        key, payload = await keyed_payload(request)
        key = self.effective_key(key)
        payment_id = payload.get("payment_id")
        if not isinstance(payment_id, str):
            raise Refusal(422, "payment_id is required", "send the id of a payment")
        amount = parse_amount(payload.get("amount"))
        sla = self.config.real(self.config.refund_sla)
        # the deliberate defect refund-filed-as-charge: the kind copied from the handler below
        kind = "final_payment" if self.config.is_broken("refund-filed-as-charge") else "refund"
        return await self.once(key, "refunds", payload, lambda conn: flows.create_refund(
            conn, self.flow_key(key), payment_id, amount, sla, kind))

    async def final_payment(self, request: Request) -> Response:
        key, payload = await keyed_payload(request)
        key = self.effective_key(key)
        charge = parse_charge(payload)
        window = self.config.real(self.config.final_window)
        return await self.once(key, "final-payments", payload,
                               lambda conn: flows.create_final_payment(conn, self.flow_key(key),
                                                                       charge, window))

    async def window(self, request: Request) -> Response:
        key, payload = await keyed_payload(request)
        key = self.effective_key(key)
        opens_at = _timestamp(payload.get("opens_at"))
        opens_in = self.config.real(_scenario_duration(payload.get("opens_in", "0s")))
        length = self.config.real(_scenario_duration(payload.get("length"))
                                  if "length" in payload else self.config.final_window)
        return await self.once(key, "windows", payload, lambda conn: orders.create_window(
            conn, payload.get("id"), opens_at, opens_in, length))

    async def order(self, request: Request) -> Response:
        key, payload = await keyed_payload(request)
        key = self.effective_key(key)
        deposit = parse_charge({**payload, "amount": payload.get("deposit")})
        balance = parse_amount(payload.get("balance"), "balance")
        window_id = str(payload.get("window_id", ""))
        return await self.once(key, "orders", payload, lambda conn: orders.create_order(
            conn, self.flow_key(key), window_id, deposit, balance, self.config.broken))

    async def show(self, request: Request) -> Response:
        kind, item_id = request.url.path.split("/")[2], request.path_params["id"]
        reader = {"flows": flows.read_flow, "windows": orders.read_window,
                  "orders": orders.read_order}[kind]
        async with self.connection() as conn:
            found = await reader(conn, item_id)
        if found is None:
            raise Refusal(404, f"no {kind[:-1]} {item_id!r}", "check the id")
        return JSONResponse(found)


def _timestamp(value: Any) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        raise Refusal(422, f"opens_at {value!r} is not ISO 8601",
                      'send e.g. "2026-11-11T20:00:00+08:00"') from None


def _scenario_duration(value: Any) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise Refusal(422, str(exc), 'send e.g. "10m" (scenario time)') from None


def build_app(config: StackConfig) -> Starlette:
    metrics = StackMetrics(config.node)
    gateway = Gateway(config, metrics)
    routes = [("/v1/payments", gateway.payment, "POST"), ("/v1/refunds", gateway.refund, "POST"),
              ("/v1/final-payments", gateway.final_payment, "POST"),
              ("/v1/windows", gateway.window, "POST"), ("/v1/orders", gateway.order, "POST"),
              ("/v1/flows/{id}", gateway.show, "GET"), ("/v1/windows/{id}", gateway.show, "GET"),
              ("/v1/orders/{id}", gateway.show, "GET")]

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        url = config.require_database()
        await connect_and_migrate(url)
        gateway.pool = await open_pool(url, config.db_pool_size, name="gateway",
                                       lock_timeout=config.idempotency_wait)
        try:
            yield
        finally:
            await gateway.pool.close()

    http = [Route(path, timed("gateway", path, metrics, guarded(handler, config.db_timeout)),
                  methods=[method]) for path, handler, method in routes]
    return Starlette(routes=http + ops_routes("gateway", config, metrics,
                                              unready=gateway.wedged), lifespan=lifespan)
