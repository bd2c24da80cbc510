"""Double-entry bookkeeping: which accounts each flow moves money between, and the balance check."""

from __future__ import annotations

from collections.abc import Collection
from decimal import ROUND_HALF_UP, Decimal

import psycopg

PAYER = "payer:cards"
CLEARING = "platform:clearing"

INSERT_ENTRIES = """
INSERT INTO ledger_entries (flow_id, account, amount, currency)
VALUES (%(flow)s, %(debit)s, -%(amount)s::numeric, %(currency)s),
       (%(flow)s, %(credit)s, %(amount)s::numeric, %(currency)s)
"""


def merchant_account(merchant: str) -> str:
    return f"merchant:{merchant}"


def postings(kind: str, merchant: str, broken: Collection[str] = ()) -> tuple[str, str]:
    """(debited account, credited account) of a flow: refunds move money back to the payer.
    `broken`: the stack's deliberate defects (CHAOSKIT_BROKEN), for the ledger's own."""
    if kind == "refund":
        if "refund-legs-reversed" in broken:  # the deliberate defect: the customer pays again
            return PAYER, merchant_account(merchant)
        return merchant_account(merchant), PAYER
    if kind == "final_payment" and "final-payment-to-clearing" in broken:
        return PAYER, CLEARING  # the deliberate defect: the merchant is never credited
    if kind in ("payment", "final_payment"):
        return PAYER, merchant_account(merchant)
    raise ValueError(f"unknown flow kind {kind!r}")


def entry_params(flow_id: str, kind: str, merchant: str, amount: Decimal,
                 currency: str, broken: Collection[str] = ()) -> dict[str, object]:
    debit, credit = postings(kind, merchant, broken)
    if "legs-rounded" in broken:  # the deliberate defect: whole units, both legs alike
        amount = amount.quantize(Decimal(1), ROUND_HALF_UP)
    return {"flow": flow_id, "debit": debit, "credit": credit, "amount": amount,
            "currency": currency}


async def post_entries(conn: psycopg.AsyncConnection, flow_id: str, kind: str, merchant: str,
                       amount: Decimal, currency: str, broken: Collection[str] = ()) -> None:
    """Write both legs of a flow; call inside the transaction that completes the flow."""
    await conn.execute(INSERT_ENTRIES, entry_params(flow_id, kind, merchant, amount, currency,
                                                    broken))


IMBALANCE_QUERY = """
SELECT 'currency' AS scope, currency AS subject, sum(amount) AS total
  FROM ledger_entries GROUP BY currency HAVING sum(amount) <> 0
UNION ALL
SELECT 'flow', flow_id || ' ' || currency, sum(amount)
  FROM ledger_entries GROUP BY flow_id, currency HAVING sum(amount) <> 0
UNION ALL
SELECT 'duplicate', f.id, count(*)
  FROM flows f JOIN ledger_entries e ON e.flow_id = f.id GROUP BY f.id HAVING count(*) <> 2
UNION ALL
SELECT 'unbooked', f.id, 0 FROM flows f
 WHERE f.status = 'completed' AND NOT EXISTS (SELECT 1 FROM ledger_entries e WHERE e.flow_id = f.id)
"""


async def ledger_imbalances(conn: psycopg.AsyncConnection) -> list[tuple[str, str, Decimal]]:
    """Every way the books are wrong: a currency or flow not summing to zero, a flow booked
    other than exactly once, a completed flow with no entries. Empty means balanced."""
    cursor = await conn.execute(IMBALANCE_QUERY)
    return [(str(s), str(w), Decimal(t)) for s, w, t in await cursor.fetchall()]


# A flow still pending past its due time is a broken promise *now*, not when (if ever) it
# completes: mark it once so exactly one process counts it in payments_deadline_misses_total.
SWEEP_MISSES = """
UPDATE flows SET missed_at = now()
 WHERE status = 'pending' AND due_at < now() AND missed_at IS NULL
RETURNING kind
"""


async def sweep_misses(conn: psycopg.AsyncConnection) -> list[str]:
    """Kinds of the flows that just became overdue (one item per flow)."""
    cursor = await conn.execute(SWEEP_MISSES)
    return [str(kind) for (kind,) in await cursor.fetchall()]
