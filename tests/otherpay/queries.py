"""The read-only SQL a chaoskit user writes against otherpay (tests run every one of them)."""

from __future__ import annotations

# (a) Promises: one row per refund / balance with its state word, due and completion times.
PROMISES = """
SELECT 'refund' AS flow, refund_ref AS id, state, promised_by AS due_at,
       settled_at AS completed_at, requested_at AS created_at
FROM op_refund_requests
UNION ALL
SELECT 'final_payment', balance_ref, state, promised_by, settled_at, requested_at
FROM op_balances
"""
# otherpay's state words mapped onto chaoskit's promise states.
PROMISE_STATES = {"REQUESTED": "pending", "IN_FLIGHT": "pending", "SETTLED": "completed",
                  "REJECTED": "failed"}

# (b) Money checks: each returns the violating rows (none when the books are right).
JOURNAL_UNBALANCED = """
SELECT ccy, sum(delta_cents) AS imbalance_cents
FROM op_journal GROUP BY ccy HAVING sum(delta_cents) <> 0
"""
MOVEMENT_UNBALANCED = """
SELECT movement_ref, ccy, sum(delta_cents) AS imbalance_cents
FROM op_journal GROUP BY movement_ref, ccy HAVING sum(delta_cents) <> 0
"""
SETTLED_REFUND_UNBOOKED = """
SELECT r.refund_ref, r.charge_ref, r.amount_cents, r.ccy, r.settled_at
FROM op_refund_requests r
WHERE r.state = 'SETTLED'
  AND NOT EXISTS (SELECT 1 FROM op_journal j WHERE j.movement_ref = r.refund_ref)
"""
REFUNDED_OVER_CHARGE = """
SELECT c.charge_ref, c.amount_cents AS charged_cents, sum(r.amount_cents) AS refunded_cents
FROM op_charges c JOIN op_refund_requests r ON r.charge_ref = c.charge_ref
WHERE r.state <> 'REJECTED'
GROUP BY c.charge_ref, c.amount_cents
HAVING sum(r.amount_cents) > c.amount_cents
"""

# (c) Acknowledged request_ids (bound as a text[] %(acknowledged)s) against the books: an id the
# service never logged is lost; a captured/settled movement must have exactly its two journal
# lines, a pending one none.
ACKNOWLEDGED_NOT_BOOKED = """
WITH acked AS (SELECT DISTINCT unnest(%(acknowledged)s::text[]) AS request_id),
books AS (
  SELECT l.request_id, l.movement_ref,
         CASE WHEN r.refund_ref IS NOT NULL THEN 'refund'
              WHEN b.balance_ref IS NOT NULL THEN 'final_payment'
              WHEN o.order_no IS NOT NULL THEN 'deposit' ELSE 'charge' END AS kind,
         coalesce(r.state, b.state, 'SETTLED') AS state,
         (SELECT count(*) FROM op_journal j WHERE j.movement_ref = l.movement_ref) AS lines
  FROM op_request_log l
  LEFT JOIN op_refund_requests r ON r.refund_ref = l.movement_ref
  LEFT JOIN op_balances b ON b.balance_ref = l.movement_ref
  LEFT JOIN op_presale_orders o ON o.order_no = l.movement_ref
)
SELECT a.request_id, k.movement_ref, k.kind, k.state, k.lines
FROM acked a LEFT JOIN books k ON k.request_id = a.request_id
WHERE k.movement_ref IS NULL
   OR (k.state = 'SETTLED' AND k.lines <> 2)
   OR (k.state <> 'SETTLED' AND k.lines <> 0)
"""

# (d) The bank's record against the books, both ways (bank schema `opbank` by default).
_MOVEMENTS = """
movements AS (
  SELECT refund_ref AS ref, 'payout' AS kind, amount_cents, ccy, state, bank_op_ref
  FROM op_refund_requests
  UNION ALL
  SELECT balance_ref, 'collect', amount_cents, ccy, state, bank_op_ref FROM op_balances
)"""
BANK_NOT_IN_BOOKS = f"""
WITH {_MOVEMENTS}
SELECT k.bank_op_ref, k.movement_ref, k.kind, k.amount_cents, k.ccy,
       CASE WHEN m.ref IS NULL THEN 'unknown movement'
            WHEN m.state = 'REJECTED' THEN 'executed but rejected in the books'
            WHEN m.bank_op_ref IS DISTINCT FROM k.bank_op_ref THEN 'executed more than once'
            ELSE 'amount or currency differs' END AS problem
FROM opbank.op_bank_ledger k LEFT JOIN movements m ON m.ref = k.movement_ref
WHERE m.ref IS NULL OR m.state = 'REJECTED'
   OR (m.state = 'SETTLED' AND (m.bank_op_ref IS DISTINCT FROM k.bank_op_ref
                                OR m.amount_cents <> k.amount_cents OR m.ccy <> k.ccy))
"""
BOOKS_NOT_AT_BANK = f"""
WITH {_MOVEMENTS}
SELECT m.ref, m.kind, m.amount_cents, m.ccy, m.bank_op_ref
FROM movements m LEFT JOIN opbank.op_bank_ledger k ON k.bank_op_ref = m.bank_op_ref
WHERE m.state = 'SETTLED' AND k.bank_op_ref IS NULL
"""

MONEY_CHECKS = {"journal_unbalanced": JOURNAL_UNBALANCED,
                "movement_unbalanced": MOVEMENT_UNBALANCED,
                "settled_refund_unbooked": SETTLED_REFUND_UNBOOKED,
                "refunded_over_charge": REFUNDED_OVER_CHARGE,
                "bank_not_in_books": BANK_NOT_IN_BOOKS,
                "books_not_at_bank": BOOKS_NOT_AT_BANK}
