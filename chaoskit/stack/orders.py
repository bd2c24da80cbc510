"""Pre-sale model: final-payment windows and the orders (deposit paid, balance due) in them."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg

from chaoskit.stack.flows import Charge, iso, new_id
from chaoskit.stack.idempotency import Outcome, Refusal
from chaoskit.stack.ledger import post_entries

INSERT_WINDOW = """
INSERT INTO windows (id, opens_at, closes_at)
VALUES (%(id)s, coalesce(%(opens_at)s, now() + %(opens_in)s),
        coalesce(%(opens_at)s, now() + %(opens_in)s) + %(length)s)
RETURNING id, opens_at, closes_at, status
"""


async def create_window(conn: psycopg.AsyncConnection, window_id: str | None,
                        opens_at: datetime | None, opens_in_real: float,
                        length_real: float) -> Outcome:
    """A window opening at `opens_at` (or in `opens_in_real` s), lasting `length_real` s."""
    params = {"id": window_id or new_id("win"), "opens_at": opens_at,
              "opens_in": timedelta(seconds=opens_in_real),
              "length": timedelta(seconds=length_real)}
    try:
        async with conn.transaction():
            cursor = await conn.execute(INSERT_WINDOW, params)
    except psycopg.errors.UniqueViolation:
        raise Refusal(409, f"window {window_id!r} exists", "choose another id") from None
    wid, opens, closes, status = await cursor.fetchone()  # type: ignore[misc]
    return Outcome(201, {"id": wid, "opens_at": iso(opens), "closes_at": iso(closes),
                         "status": status})


INSERT_DEPOSIT = """
INSERT INTO flows (id, kind, idempotency_key, status, amount, currency, merchant, order_id,
                   created_at, completed_at)
VALUES (%s, 'payment', %s, 'completed', %s, %s, %s, %s, now(), now())
"""
INSERT_ORDER = """
INSERT INTO orders (id, window_id, merchant, currency, deposit, balance, deposit_flow_id)
VALUES (%s, %s, %s, %s, %s, %s, %s)
"""


async def create_order(conn: psycopg.AsyncConnection, key: str, window_id: str,
                       deposit: Charge, balance: Decimal,
                       broken: Collection[str] = ()) -> Outcome:
    """Capture the deposit (a payment) and record the balance owed in the window.
    `broken`: the stack's deliberate defects (CHAOSKIT_BROKEN)."""
    cursor = await conn.execute("SELECT status FROM windows WHERE id = %s", (window_id,))
    window = await cursor.fetchone()
    if window is None:
        raise Refusal(404, f"no window {window_id!r}", "create it with POST /v1/windows")
    if window[0] == "closed":
        raise Refusal(409, f"window {window_id!r} is closed", "use a window not yet closed")
    order_id, flow_id = new_id("ord"), new_id("pay")
    await conn.execute(INSERT_DEPOSIT, (flow_id, f"deposit:{key}", deposit.amount,
                                        deposit.currency, deposit.merchant, order_id))
    if "deposit-unbooked" not in broken:  # the deliberate defect: captured, never booked
        await post_entries(conn, flow_id, "payment", deposit.merchant, deposit.amount,
                           deposit.currency, broken)
    await conn.execute(INSERT_ORDER, (order_id, window_id, deposit.merchant, deposit.currency,
                                      deposit.amount, balance, flow_id))
    return Outcome(201, {"id": order_id, "window_id": window_id, "deposit_payment_id": flow_id})


async def read_window(conn: psycopg.AsyncConnection, window_id: str) -> dict[str, Any] | None:
    cursor = await conn.execute(
        "SELECT id, opens_at, closes_at, status, opened_at, opened_by,"
        " (SELECT count(*) FROM orders o WHERE o.window_id = w.id),"
        " (SELECT count(*) FROM orders o WHERE o.window_id = w.id AND o.final_flow_id IS NULL)"
        " FROM windows w WHERE id = %s", (window_id,))
    row = await cursor.fetchone()
    if row is None:
        return None
    wid, opens, closes, status, opened, opened_by, orders, unpaid = row
    return {"id": wid, "opens_at": iso(opens), "closes_at": iso(closes), "status": status,
            "opened_at": iso(opened), "opened_by": opened_by, "orders": orders,
            "orders_without_final_payment": unpaid}


async def read_order(conn: psycopg.AsyncConnection, order_id: str) -> dict[str, Any] | None:
    cursor = await conn.execute(
        "SELECT id, window_id, merchant, currency, deposit, balance, deposit_flow_id,"
        " final_flow_id FROM orders WHERE id = %s", (order_id,))
    row = await cursor.fetchone()
    if row is None:
        return None
    oid, wid, merchant, currency, deposit, balance, deposit_flow, final_flow = row
    return {"id": oid, "window_id": wid, "merchant": merchant, "currency": currency,
            "deposit": str(deposit), "balance": str(balance),
            "deposit_payment_id": deposit_flow, "final_payment_id": final_flow}
