"""The money movements the API performs, each inside the caller's transaction."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

Answer = tuple[int, dict[str, Any], str]  # status, body, the movement it created


class Refusal(Exception):
    """A request the service refuses; raised inside a transaction, so nothing is kept."""

    def __init__(self, status: int, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.details = status, code, details

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": str(self), **self.details}}


def new_ref(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


def view(row: dict[str, Any], hidden: tuple[str, ...] = ("next_try_at",)) -> dict[str, Any]:
    """A row as JSON: timestamps as ISO 8601, internal columns left out."""
    return {key: value.isoformat() if isinstance(value, datetime) else value
            for key, value in row.items() if key not in hidden}


async def one(conn: psycopg.AsyncConnection, sql: str, params: tuple[Any, ...] = ()
              ) -> dict[str, Any] | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, params)
        return await cur.fetchone()


async def book(conn: psycopg.AsyncConnection, movement_ref: str, ccy: str,
               lines: list[tuple[str, int]]) -> None:
    """Double-entry journal lines for one movement; they must sum to zero."""
    if sum(delta for _, delta in lines) != 0:
        raise ValueError(f"unbalanced booking for {movement_ref}: {lines}")
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO op_journal (movement_ref, book_account, delta_cents, ccy) "
            "VALUES (%s, %s, %s, %s)",
            [(movement_ref, account, delta, ccy) for account, delta in lines])


async def capture_charge(conn: psycopg.AsyncConnection, merchant: str, amount: int,
                         ccy: str) -> Answer:
    ref = new_ref("ch")
    row = await one(conn, "INSERT INTO op_charges (charge_ref, merchant, amount_cents, ccy) "
                          "VALUES (%s, %s, %s, %s) RETURNING *", (ref, merchant, amount, ccy))
    assert row is not None
    await book(conn, ref, ccy, [("card_clearing", -amount), (f"merchant:{merchant}", amount)])
    return 200, {"charge": view(row)}, ref


async def request_refund(conn: psycopg.AsyncConnection, charge_ref: str, amount: int,
                         sla: float) -> Answer:
    charge = await one(conn, "SELECT amount_cents, ccy FROM op_charges WHERE charge_ref = %s "
                             "FOR UPDATE", (charge_ref,))
    if charge is None:
        raise Refusal(404, "unknown_charge", f"no charge {charge_ref}")
    taken = await one(conn, "SELECT coalesce(sum(amount_cents), 0) AS cents "
                            "FROM op_refund_requests WHERE charge_ref = %s "
                            "AND state <> 'REJECTED'", (charge_ref,))
    left = int(charge["amount_cents"]) - int(taken["cents"] if taken else 0)
    if amount > left:
        raise Refusal(422, "refund_exceeds_charge",
                      f"refund of {amount} but only {left} left on {charge_ref}",
                      refundable_cents=left)
    ref = new_ref("rf")
    row = await one(conn, "INSERT INTO op_refund_requests (refund_ref, charge_ref, amount_cents, "
                          "ccy, promised_by) VALUES (%s, %s, %s, %s, "
                          "now() + make_interval(secs => %s)) RETURNING *",
                    (ref, charge_ref, amount, charge["ccy"], sla))
    assert row is not None
    return 202, {"refund": view(row)}, ref


async def place_order(conn: psycopg.AsyncConnection, sale_id: str, deposit: int, balance: int,
                      ccy: str) -> Answer:
    order_no = new_ref("po")
    row = await one(conn, "INSERT INTO op_presale_orders (order_no, sale_id, deposit_cents, "
                          "balance_cents, ccy) VALUES (%s, %s, %s, %s, %s) RETURNING *",
                    (order_no, sale_id, deposit, balance, ccy))
    assert row is not None
    await book(conn, order_no, ccy, [("card_clearing", -deposit), (f"presale:{sale_id}", deposit)])
    return 201, {"order": view(row)}, order_no


async def request_balance(conn: psycopg.AsyncConnection, order_no: str, sla: float) -> Answer:
    order = await one(conn, "SELECT balance_cents, ccy FROM op_presale_orders "
                            "WHERE order_no = %s FOR UPDATE", (order_no,))
    if order is None:
        raise Refusal(404, "unknown_order", f"no pre-sale order {order_no}")
    earlier = await one(conn, "SELECT balance_ref FROM op_balances WHERE order_no = %s",
                        (order_no,))
    if earlier is not None:
        raise Refusal(409, "balance_already_requested", f"order {order_no} has its balance",
                      balance_ref=earlier["balance_ref"])
    ref = new_ref("bl")
    row = await one(conn, "INSERT INTO op_balances (balance_ref, order_no, amount_cents, ccy, "
                          "promised_by) VALUES (%s, %s, %s, %s, "
                          "now() + make_interval(secs => %s)) RETURNING *",
                    (ref, order_no, order["balance_cents"], order["ccy"], sla))
    assert row is not None
    await conn.execute("UPDATE op_presale_orders SET state = 'BALANCE_REQUESTED' "
                       "WHERE order_no = %s", (order_no,))
    return 202, {"balance": view(row)}, ref
