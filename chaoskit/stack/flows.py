"""Creating and reading flows: payments (captured at once), refunds and final payments (pending)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from chaoskit.stack.idempotency import Outcome, Refusal
from chaoskit.stack.ledger import PAYER, merchant_account


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


@dataclass(frozen=True)
class Charge:
    """What a payment or final payment asks for."""

    amount: Decimal
    currency: str
    merchant: str
    order_id: str | None = None


# One statement, one round trip: claim the key, write the captured flow and both ledger legs.
# A repeat of a key still in flight blocks on the unique index until the first one commits.
PAYMENT = """
WITH k AS (
  INSERT INTO idempotency_keys (key, route, request_hash, response_status, response_body)
  VALUES (%(key)s, 'payments', %(hash)s, 201, %(body)s)
  ON CONFLICT (key) DO NOTHING RETURNING key
), f AS (
  INSERT INTO flows (id, kind, idempotency_key, status, amount, currency, merchant,
                     created_at, completed_at)
  SELECT %(id)s, 'payment', %(key)s, 'completed', %(amount)s, %(currency)s, %(merchant)s,
         now(), now() FROM k
  RETURNING id
), e AS (
  INSERT INTO ledger_entries (flow_id, account, amount, currency)
  SELECT f.id, leg.account, leg.amount, %(currency)s
    FROM f CROSS JOIN (VALUES (%(payer)s, -%(amount)s::numeric),
                              (%(payee)s, %(amount)s::numeric)) AS leg (account, amount)
)
SELECT count(*) FROM k
"""


async def capture_payment(conn: psycopg.AsyncConnection, key: str, rhash: str,
                          charge: Charge) -> Outcome | None:
    """Capture a payment under `key`; None when the key was already used (replay it)."""
    flow_id = new_id("pay")
    body = {"id": flow_id, "status": "completed"}
    params = {"key": key, "hash": rhash, "body": Jsonb(body), "id": flow_id,
              "amount": charge.amount, "currency": charge.currency,
              "merchant": charge.merchant, "payer": PAYER,
              "payee": merchant_account(charge.merchant)}
    cursor = await conn.execute(PAYMENT, params)
    row = await cursor.fetchone()
    return Outcome(201, body) if row and row[0] == 1 else None


INSERT_PENDING = """
INSERT INTO flows (id, kind, idempotency_key, status, amount, currency, merchant, payment_id,
                   order_id, created_at, due_at)
VALUES (%(id)s, %(kind)s, %(key)s, 'pending', %(amount)s, %(currency)s, %(merchant)s,
        %(payment_id)s, %(order_id)s, now(), coalesce(%(due_at)s, now() + %(due_in)s))
RETURNING id, due_at
"""


async def insert_pending(conn: psycopg.AsyncConnection, kind: str, key: str,
                         charge: Charge, *, payment_id: str | None = None,
                         due_at: datetime | None = None, due_in: float = 0.0) -> Outcome:
    params = {"id": new_id("ref" if kind == "refund" else "fin"), "kind": kind, "key": key,
              "amount": charge.amount, "currency": charge.currency,
              "merchant": charge.merchant, "payment_id": payment_id,
              "order_id": charge.order_id, "due_at": due_at,
              "due_in": timedelta(seconds=due_in)}
    cursor = await conn.execute(INSERT_PENDING, params)
    flow_id, due = await cursor.fetchone()  # type: ignore[misc]
    return Outcome(202, {"id": flow_id, "due_at": iso(due)})


PAYMENT_FOR_REFUND = """
SELECT amount, currency, merchant FROM flows
 WHERE id = %s AND kind = 'payment' AND status = 'completed' FOR UPDATE
"""
REFUNDED = """
SELECT coalesce(sum(amount), 0) FROM flows
 WHERE payment_id = %s AND kind = 'refund' AND status <> 'failed'
"""


async def create_refund(conn: psycopg.AsyncConnection, key: str, payment_id: str,
                        amount: Decimal, sla_real: float, kind: str = "refund") -> Outcome:
    """A pending refund due within the SLA; never more than what is left of the payment.
    (`kind` is for the deliberate defect refund-filed-as-charge only.)"""
    cursor = await conn.execute(PAYMENT_FOR_REFUND, (payment_id,))
    payment = await cursor.fetchone()
    if payment is None:
        raise Refusal(404, f"no completed payment {payment_id!r}",
                      "refund the id returned by POST /v1/payments")
    paid, currency, merchant = payment
    cursor = await conn.execute(REFUNDED, (payment_id,))
    (refunded,) = await cursor.fetchone()  # type: ignore[misc]
    if refunded + amount > paid:
        raise Refusal(409, f"refund of {amount} exceeds the {paid - refunded} left to refund",
                      "refund at most the remaining amount")
    charge = Charge(amount, currency, merchant)
    return await insert_pending(conn, kind, key, charge, payment_id=payment_id,
                                due_in=sla_real)


ORDER_FOR_FINAL = """
SELECT o.final_flow_id, o.balance, o.currency, o.merchant, w.closes_at
  FROM orders o JOIN windows w ON w.id = o.window_id WHERE o.id = %s FOR UPDATE OF o
"""


async def create_final_payment(conn: psycopg.AsyncConnection, key: str, charge: Charge,
                               window_real: float) -> Outcome:
    """A pending final payment: an order's is due at its window's close; one without an order
    within the final-payment window from now. (It no longer borrows the close of whichever
    window happens to be open: one made a moment before that close was due at once, late
    whatever the stack did.)"""
    if charge.order_id is not None:
        return await _final_for_order(conn, key, charge)
    return await insert_pending(conn, "final_payment", key, charge, due_in=window_real)


async def _final_for_order(conn: psycopg.AsyncConnection, key: str, charge: Charge) -> Outcome:
    cursor = await conn.execute(ORDER_FOR_FINAL, (charge.order_id,))
    row = await cursor.fetchone()
    if row is None:
        raise Refusal(404, f"no order {charge.order_id!r}", "create it with POST /v1/orders")
    final_flow_id, _balance, _currency, _merchant, closes_at = row
    if final_flow_id is not None:
        raise Refusal(409, f"order {charge.order_id!r} already has final payment "
                           f"{final_flow_id}", f"follow it with GET /v1/flows/{final_flow_id}")
    outcome = await insert_pending(conn, "final_payment", key, charge, due_at=closes_at)
    await conn.execute("UPDATE orders SET final_flow_id = %s WHERE id = %s",
                       (outcome.body["id"], charge.order_id))
    return outcome


FLOW = """
SELECT id, kind, status, amount, currency, created_at, due_at, completed_at, bank, attempts,
       takeovers FROM flows WHERE id = %s
"""


async def read_flow(conn: psycopg.AsyncConnection, flow_id: str) -> dict[str, Any] | None:
    cursor = await conn.execute(FLOW, (flow_id,))
    row = await cursor.fetchone()
    if row is None:
        return None
    fid, kind, status, amount, currency, created, due, completed, bank, attempts, takeovers = row
    return {"id": fid, "kind": kind, "status": status, "amount": str(amount),
            "currency": currency, "created_at": iso(created), "due_at": iso(due),
            "completed_at": iso(completed), "bank": bank, "attempts": attempts,
            "takeovers": takeovers}
