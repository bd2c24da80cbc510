"""The bank channel simulator: several banks, each charging and refunding idempotently by key.

It stands for external banks: a repeat of a key replays the first answer, also while the first
call is still being served. What it executed it writes to its own statement (`bank_operations`,
bank_record.py; in CHAOSKIT_BANK_DATABASE_URL, else CHAOSKIT_DATABASE_URL; kept in memory only
when neither is set), never in the ledger's transactions: reconciliation compares the two.
A simulated failure (CHAOSKIT_BANK_ERROR_RATE) is answered 503 *before* anything is booked, so
the caller's retry is what executes the operation; so is a statement that cannot be written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import psycopg
import psycopg_pool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from chaoskit.stack.bank_record import BankStatement
from chaoskit.stack.config import StackConfig
from chaoskit.stack.metrics import StackMetrics
from chaoskit.stack.serving import ops_routes, timed

log = logging.getLogger("chaoskit.stack.bank")
_BANK = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
OPERATIONS = ("charge", "refund")
UNAVAILABLE = {"error": "bank temporarily unavailable"}


@dataclass
class BankBooks:
    """Per (bank, key): the answer given; counters of what was executed, replayed, refused."""

    # None: the first attempt could not be recorded, so nothing was executed
    answers: dict[tuple[str, str], asyncio.Future[dict[str, Any] | None]] = field(
        default_factory=dict)
    executed: Counter[tuple[str, str]] = field(default_factory=Counter)
    replayed: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)

    def stats(self) -> dict[str, Any]:
        banks = {bank for bank, _ in self.executed} | set(self.replayed) | set(self.failed)
        return {bank: {"charges": self.executed[(bank, "charge")],
                       "refunds": self.executed[(bank, "refund")],
                       "replays": self.replayed[bank], "errors": self.failed[bank]}
                for bank in sorted(banks)}


class BankChannel:
    """Serves /v1/banks/{bank}/{charge|refund} with latency and error rate from the config."""

    def __init__(self, config: StackConfig, rng: random.Random | None = None,
                 statement: BankStatement | None = None) -> None:
        self.latency = config.bank_latency
        self.error_rate = config.bank_error_rate
        self.books = BankBooks()
        self.rng = rng or random.Random()
        self.statement = statement

    async def operate(self, request: Request) -> Response:
        bank, operation = request.path_params["bank"], request.path_params["operation"]
        key = request.headers.get("idempotency-key", "")
        if not _BANK.match(bank) or operation not in OPERATIONS or not key:
            return JSONResponse({"error": "unknown bank/operation or missing Idempotency-Key"},
                                status_code=400)
        payload = await request.json()
        if not isinstance(payload, dict):
            payload = {}
        await asyncio.sleep(self.latency)
        existing = self.books.answers.get((bank, key))
        if existing is not None:
            self.books.replayed[bank] += 1
            replayed = await existing
            if replayed is None:
                return JSONResponse(UNAVAILABLE, status_code=503)
            return JSONResponse({**replayed, "replayed": True})
        if self.rng.random() < self.error_rate:
            self.books.failed[bank] += 1
            return JSONResponse(UNAVAILABLE, status_code=503)
        return await self.execute(bank, operation, key, payload)

    async def execute(self, bank: str, operation: str, key: str,
                      payload: dict[str, Any]) -> Response:
        # claimed synchronously (no await between check and claim), so one key executes once;
        # concurrent repeats wait for this answer
        answer = {"bank": bank, "operation": operation,
                  "reference": str(payload.get("reference") or key),
                  "amount": str(payload.get("amount")), "status": "approved"}
        future: asyncio.Future[dict[str, Any] | None] = \
            asyncio.get_running_loop().create_future()
        self.books.answers[(bank, key)] = future
        try:
            fresh = await self._record(bank, operation, key, answer, payload)
        except (InvalidOperation, psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            del self.books.answers[(bank, key)]
            future.set_result(None)
            if isinstance(exc, InvalidOperation):
                return JSONResponse({"error": f"amount {answer['amount']!r} is not a number"},
                                    status_code=422)
            log.warning("could not write the statement: %s", exc)
            self.books.failed[bank] += 1
            return JSONResponse(UNAVAILABLE, status_code=503)
        future.set_result(answer)
        if not fresh:  # executed before this process started: the statement remembers
            self.books.replayed[bank] += 1
            return JSONResponse({**answer, "replayed": True})
        self.books.executed[(bank, operation)] += 1
        return JSONResponse(answer)

    async def _record(self, bank: str, operation: str, key: str, answer: dict[str, Any],
                      payload: dict[str, Any]) -> bool:
        if self.statement is None:
            return True
        amount = Decimal(answer["amount"])
        if not amount.is_finite():
            raise InvalidOperation(answer["amount"])
        return await self.statement.record(bank, operation, key, answer["reference"], amount,
                                           str(payload.get("currency") or ""))

    async def stats(self, _: Request) -> Response:
        return JSONResponse({"banks": self.books.stats(),
                             "operations": sum(self.books.executed.values())})


def build_app(config: StackConfig) -> Starlette:
    metrics = StackMetrics(config.node)
    statement = BankStatement(config.bank_database_url) if config.bank_database_url else None
    channel = BankChannel(config, statement=statement)
    route = "/v1/banks/{bank}/{operation}"
    routes = [Route(route, timed("bank", route, metrics, channel.operate), methods=["POST"]),
              Route("/v1/banks", channel.stats, methods=["GET"])]

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        if statement is not None:
            await statement.open()
        try:
            yield
        finally:
            if statement is not None:
                await statement.close()

    return Starlette(routes=routes + ops_routes("bank", config, metrics), lifespan=lifespan)
