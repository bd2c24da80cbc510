"""The bank channel simulator: several banks, each charging and refunding idempotently by key.

It stands for external banks, so it keeps its own books in memory (not in our PostgreSQL): a
repeat of a key replays the first answer, also while the first call is still being served.
A simulated failure (CHAOSKIT_BANK_ERROR_RATE) is answered 503 *before* anything is booked, so
the caller's retry is what executes the operation.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from chaoskit.stack.config import StackConfig
from chaoskit.stack.metrics import StackMetrics
from chaoskit.stack.serving import ops_routes, timed

_BANK = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
OPERATIONS = ("charge", "refund")


@dataclass
class BankBooks:
    """Per (bank, key): the answer given; counters of what was executed, replayed, refused."""

    answers: dict[tuple[str, str], asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
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

    def __init__(self, config: StackConfig, rng: random.Random | None = None) -> None:
        self.latency = config.bank_latency
        self.error_rate = config.bank_error_rate
        self.books = BankBooks()
        self.rng = rng or random.Random()

    async def operate(self, request: Request) -> Response:
        bank, operation = request.path_params["bank"], request.path_params["operation"]
        key = request.headers.get("idempotency-key", "")
        if not _BANK.match(bank) or operation not in OPERATIONS or not key:
            return JSONResponse({"error": "unknown bank/operation or missing Idempotency-Key"},
                                status_code=400)
        payload = await request.json()
        await asyncio.sleep(self.latency)
        existing = self.books.answers.get((bank, key))
        if existing is not None:
            self.books.replayed[bank] += 1
            return JSONResponse({**await existing, "replayed": True})
        if self.rng.random() < self.error_rate:
            self.books.failed[bank] += 1
            return JSONResponse({"error": "bank temporarily unavailable"}, status_code=503)
        return JSONResponse(self.execute(bank, operation, key, payload))

    def execute(self, bank: str, operation: str, key: str, payload: Any) -> dict[str, Any]:
        # booked synchronously (no await between check and book), so one key executes once
        answer = {"bank": bank, "operation": operation, "reference": key,
                  "amount": str(payload.get("amount")) if isinstance(payload, dict) else None,
                  "status": "approved"}
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        future.set_result(answer)
        self.books.answers[(bank, key)] = future
        self.books.executed[(bank, operation)] += 1
        return answer

    async def stats(self, _: Request) -> Response:
        return JSONResponse({"banks": self.books.stats(),
                             "operations": sum(self.books.executed.values())})


def build_app(config: StackConfig) -> Starlette:
    metrics = StackMetrics(config.node)
    channel = BankChannel(config)
    route = "/v1/banks/{bank}/{operation}"
    routes = [Route(route, timed("bank", route, metrics, channel.operate), methods=["POST"]),
              Route("/v1/banks", channel.stats, methods=["GET"])]
    return Starlette(routes=routes + ops_routes("bank", config, metrics))
