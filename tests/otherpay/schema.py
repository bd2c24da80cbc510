"""otherpay's tables, created idempotently at start-up under an advisory lock."""

from __future__ import annotations

import psycopg

SCHEMA_LOCK = 0x6F746865  # "othe": one key for every otherpay process migrating one database
BANK_LOCK = 0x62616E6B  # "bank"

STATEMENTS = (
    """CREATE TABLE IF NOT EXISTS op_charges (
        charge_ref text PRIMARY KEY,
        merchant text NOT NULL,
        amount_cents bigint NOT NULL CHECK (amount_cents > 0),
        ccy char(3) NOT NULL,
        state text NOT NULL DEFAULT 'CAPTURED',
        captured_at timestamptz NOT NULL DEFAULT now())""",
    """CREATE TABLE IF NOT EXISTS op_refund_requests (
        refund_ref text PRIMARY KEY,
        charge_ref text NOT NULL REFERENCES op_charges (charge_ref),
        amount_cents bigint NOT NULL CHECK (amount_cents > 0),
        ccy char(3) NOT NULL,
        state text NOT NULL DEFAULT 'REQUESTED'
            CHECK (state IN ('REQUESTED', 'IN_FLIGHT', 'SETTLED', 'REJECTED')),
        requested_at timestamptz NOT NULL DEFAULT now(),
        promised_by timestamptz NOT NULL,
        settled_at timestamptz,
        next_try_at timestamptz NOT NULL DEFAULT now(),
        tries int NOT NULL DEFAULT 0,
        bank_op_ref text,
        last_error text)""",
    """CREATE INDEX IF NOT EXISTS op_refund_requests_due
        ON op_refund_requests (promised_by) WHERE state IN ('REQUESTED', 'IN_FLIGHT')""",
    """CREATE TABLE IF NOT EXISTS op_presale_orders (
        order_no text PRIMARY KEY,
        sale_id text NOT NULL,
        deposit_cents bigint NOT NULL CHECK (deposit_cents > 0),
        balance_cents bigint NOT NULL CHECK (balance_cents > 0),
        ccy char(3) NOT NULL,
        state text NOT NULL DEFAULT 'DEPOSIT_PAID',
        ordered_at timestamptz NOT NULL DEFAULT now())""",
    """CREATE TABLE IF NOT EXISTS op_balances (
        balance_ref text PRIMARY KEY,
        order_no text NOT NULL UNIQUE REFERENCES op_presale_orders (order_no),
        amount_cents bigint NOT NULL CHECK (amount_cents > 0),
        ccy char(3) NOT NULL,
        state text NOT NULL DEFAULT 'REQUESTED'
            CHECK (state IN ('REQUESTED', 'IN_FLIGHT', 'SETTLED', 'REJECTED')),
        requested_at timestamptz NOT NULL DEFAULT now(),
        promised_by timestamptz NOT NULL,
        settled_at timestamptz,
        next_try_at timestamptz NOT NULL DEFAULT now(),
        tries int NOT NULL DEFAULT 0,
        bank_op_ref text,
        last_error text)""",
    """CREATE TABLE IF NOT EXISTS op_journal (
        entry_id bigserial PRIMARY KEY,
        movement_ref text NOT NULL,
        book_account text NOT NULL,
        delta_cents bigint NOT NULL,
        ccy char(3) NOT NULL,
        booked_at timestamptz NOT NULL DEFAULT clock_timestamp())""",
    "CREATE INDEX IF NOT EXISTS op_journal_movement ON op_journal (movement_ref)",
    """CREATE TABLE IF NOT EXISTS op_request_log (
        request_id text PRIMARY KEY,
        route text NOT NULL,
        body_digest text NOT NULL,
        status int NOT NULL,
        answer jsonb NOT NULL,
        movement_ref text,
        logged_at timestamptz NOT NULL DEFAULT now())""",
)


def bank_statements(schema: str) -> tuple[str, ...]:
    """The bank's own record, in its own schema (it stands for another company)."""
    return (
        f'CREATE SCHEMA IF NOT EXISTS "{schema}"',
        f"""CREATE TABLE IF NOT EXISTS "{schema}".op_bank_ledger (
            bank_op_ref text PRIMARY KEY,
            idempotency_key text NOT NULL UNIQUE,
            movement_ref text NOT NULL,
            kind text NOT NULL CHECK (kind IN ('payout', 'collect')),
            amount_cents bigint NOT NULL,
            ccy char(3) NOT NULL,
            executed_at timestamptz NOT NULL DEFAULT now())""",
    )


async def migrate(conn: psycopg.AsyncConnection, statements: tuple[str, ...] = STATEMENTS,
                  lock: int = SCHEMA_LOCK) -> None:
    """Run every statement in one transaction; concurrent starters wait on the lock."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock,))
        for statement in statements:
            await conn.execute(statement)
