"""Idempotency keys: the first request with a key decides the answer; repeats replay it.

Chosen design: the key row is inserted in the SAME transaction that moves the money and holds
the final response. A concurrent repeat's `INSERT ... ON CONFLICT DO NOTHING` blocks on the
unique index until the first transaction ends, so the repeat *waits* for the first result
(bounded by CHAOSKIT_IDEMPOTENCY_WAIT via lock_timeout; past it the client gets 409 with
Retry-After and its retry replays the result). If the first request dies mid-way its transaction
rolls back, the key is free again and the repeat does the work: money moves exactly once. A lost
response is replayed from the row. Refusals (404, 409, 422) are not stored: nothing was done.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb


@dataclass(frozen=True)
class Outcome:
    """An HTTP answer (status and JSON body) as stored under a key."""

    status: int
    body: dict[str, Any]


class Refusal(Exception):
    """A request that cannot be served; raising it rolls the transaction (and key) back."""

    def __init__(self, status: int, error: str, hint: str = "") -> None:
        super().__init__(error)
        self.outcome = Outcome(status, {"error": error, "hint": hint} if hint else
                               {"error": error})


def request_hash(route: str, payload: dict[str, Any]) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{route}\n{canonical}".encode()).hexdigest()


CLAIM = """
INSERT INTO idempotency_keys (key, route, request_hash, response_status, response_body)
VALUES (%s, %s, %s, 0, '{}') ON CONFLICT (key) DO NOTHING RETURNING key
"""
STORE = "UPDATE idempotency_keys SET response_status = %s, response_body = %s WHERE key = %s"
STORE_AFTER = """
INSERT INTO idempotency_keys (key, route, request_hash, response_status, response_body)
VALUES (%s, %s, %s, %s, %s) ON CONFLICT (key) DO NOTHING
"""
FETCH = "SELECT route, request_hash, response_status, response_body FROM idempotency_keys " \
        "WHERE key = %s"


async def replay(conn: psycopg.AsyncConnection, key: str, route: str, rhash: str) -> Outcome:
    """The stored answer of a key already used; refuse reuse for a different request."""
    cursor = await conn.execute(FETCH, (key,))
    row = await cursor.fetchone()
    if row is None:  # the first request rolled back between our conflict and this read
        raise Refusal(409, "a request with this Idempotency-Key is still in flight",
                      "retry the same request in a moment")
    stored_route, stored_hash, status, body = row
    if stored_route != route or stored_hash != rhash:
        raise Refusal(422, "Idempotency-Key reused for a different request",
                      "use a fresh key for every distinct request")
    return Outcome(status, body)


Action = Callable[[psycopg.AsyncConnection], Awaitable[Outcome]]


async def run_once(conn: psycopg.AsyncConnection, key: str, route: str, rhash: str,
                   action: Action) -> Outcome:
    """Run `action` at most once per key, atomically with storing its answer."""
    try:
        async with conn.transaction():
            cursor = await conn.execute(CLAIM, (key, route, rhash))
            if await cursor.fetchone() is None:
                return await replay(conn, key, route, rhash)
            outcome = await action(conn)
            await conn.execute(STORE, (outcome.status, Jsonb(outcome.body), key))
            return outcome
    except psycopg.errors.LockNotAvailable:
        raise Refusal(409, "a request with this Idempotency-Key is still in flight",
                      "retry the same request in a moment") from None


async def check_then_insert(conn: psycopg.AsyncConnection, key: str, route: str, rhash: str,
                            action: Action) -> Outcome:
    """The deliberate defect `idempotency-check-then-insert`: look the key up, do the work,
    then store the key. Sequential repeats replay; a repeat arriving while the first attempt
    is still in flight finds no key and does the work again."""
    cursor = await conn.execute(FETCH, (key,))
    if await cursor.fetchone() is not None:
        return await replay(conn, key, route, rhash)
    async with conn.transaction():
        outcome = await action(conn)
    await conn.execute(STORE_AFTER, (key, route, rhash, outcome.status, Jsonb(outcome.body)))
    return outcome
