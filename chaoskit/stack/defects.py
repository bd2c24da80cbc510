"""The stack's deliberate defects (`CHAOSKIT_BROKEN=name,...`): realistic bugs a payment engineer
could ship, planted one at a time to prove that chaoskit's verdicts catch them.

Each is switched on in the one place it lives (`config.is_broken(name)`); the healthy stack is
the default. `make mutants` runs every one against the gate experiments (tests/mutants).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Defect:
    """A defect: where it lives and what it does wrong."""

    name: str
    component: str  # gateway, worker, scheduler, ledger, bank-client
    description: str


CATALOGUE = (
    # the three the stack shipped with
    Defect("no-takeover", "worker", "workers never take over an expired lease"),
    Defect("no-standby", "scheduler", "the standby scheduler never leads"),
    Defect("no-idempotency", "gateway", "the gateway ignores the Idempotency-Key"),
    # gateway
    Defect("idempotency-check-then-insert", "gateway",
           "the key is looked up first and stored after the work, outside its transaction: a "
           "resend that arrives while the first attempt is in flight moves the money again"),
    Defect("refund-filed-as-charge", "gateway",
           "the refund endpoint files the request as a final payment (a copy of the handler "
           "above it): the customer is charged instead of refunded"),
    Defect("deposit-unbooked", "gateway",
           "a pre-sale order's deposit is captured without its ledger entries"),
    # worker
    Defect("refund-unbooked", "worker",
           "every tenth refund completes (the bank paid it) with no ledger entries"),
    Defect("timeout-as-declined", "worker",
           "a bank call that timed out fails the flow, though the bank may have executed it"),
    # scheduler
    Defect("windows-open-late", "scheduler",
           "the leader opens a final-payment window five minutes (scenario) after its time"),
    Defect("late-orders-never-charged", "scheduler",
           "automatic charges fire once, for the orders placed before the window opened; "
           "orders placed while it is open are never charged"),
    # ledger
    Defect("refund-legs-reversed", "ledger",
           "a refund's legs are posted the wrong way round: the customer pays again"),
    Defect("final-payment-to-clearing", "ledger",
           "final payments are credited to the platform's clearing account, not the merchant"),
    Defect("legs-rounded", "ledger",
           "ledger legs are rounded to whole units (both legs, so the books still balance)"),
    # bank client
    Defect("fresh-bank-key", "bank-client",
           "every attempt sends the bank a fresh idempotency key, so a retry after the bank "
           "executed executes it again"),
    Defect("refund-sent-as-charge", "bank-client",
           "refunds are sent to the bank's charge operation"),
    Defect("amount-in-cents", "bank-client",
           "amounts are sent to the bank in cents, which takes them in whole currency units"),
)
DEFECTS = {d.name: d for d in CATALOGUE}
# the realistic defects written for mutation testing (the first three predate them)
MUTANTS = tuple(d for d in CATALOGUE if d.name not in
                ("no-takeover", "no-standby", "no-idempotency"))
