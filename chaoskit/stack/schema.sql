-- The payment stack's schema. Every statement is idempotent: all services run it at start-up
-- under pg_advisory_xact_lock, so concurrent starts never race on DDL.

CREATE TABLE IF NOT EXISTS flows (
    id                text PRIMARY KEY,
    kind              text NOT NULL CHECK (kind IN ('payment', 'refund', 'final_payment')),
    idempotency_key   text UNIQUE,
    status            text NOT NULL CHECK (status IN ('pending', 'completed', 'failed')),
    amount            numeric(18, 2) NOT NULL CHECK (amount > 0),
    currency          text NOT NULL,
    merchant          text NOT NULL,
    payment_id        text REFERENCES flows (id),
    order_id          text,
    bank              text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    due_at            timestamptz,
    completed_at      timestamptz,
    -- when the flow was first seen past due_at unfinished (each miss is counted exactly once)
    missed_at         timestamptz,
    -- work leasing: the token is the fence, bumped on every claim
    lease_owner       text,
    lease_token       bigint NOT NULL DEFAULT 0,
    lease_expires_at  timestamptz,
    next_attempt_at   timestamptz NOT NULL DEFAULT now(),
    attempts          integer NOT NULL DEFAULT 0,
    takeovers         integer NOT NULL DEFAULT 0,
    last_error        text
);
ALTER TABLE flows ADD COLUMN IF NOT EXISTS missed_at timestamptz;
CREATE INDEX IF NOT EXISTS flows_pending_by_due ON flows (due_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS flows_refunds_of_payment ON flows (payment_id)
    WHERE payment_id IS NOT NULL;
-- The client's key of a flow (a deposit's and a split flow's keys carry a prefix or a suffix):
-- the reference system's `acknowledged:` query looks keys up by it, a few thousand per sample;
-- without the index each sample scanned every flow and took longer the longer a game day ran.
CREATE INDEX IF NOT EXISTS flows_by_client_key
    ON flows ((split_part(regexp_replace(idempotency_key, '^deposit:', ''), '#', 1)));

CREATE TABLE IF NOT EXISTS ledger_entries (
    id          bigserial PRIMARY KEY,
    flow_id     text NOT NULL REFERENCES flows (id),
    account     text NOT NULL,
    amount      numeric(18, 2) NOT NULL,
    currency    text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS ledger_entries_by_flow ON ledger_entries (flow_id);

-- The gateway's record of answered requests; a row commits in the same transaction as the
-- money it moved, so "answered" and "money moved" can never disagree.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    key              text PRIMARY KEY,
    route            text NOT NULL,
    request_hash     text NOT NULL,
    response_status  integer NOT NULL,
    response_body    jsonb NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);

-- Pre-sale: a window opens at a set time; orders paid a deposit and owe a balance in it.
CREATE TABLE IF NOT EXISTS windows (
    id          text PRIMARY KEY,
    opens_at    timestamptz NOT NULL,
    closes_at   timestamptz NOT NULL,
    status      text NOT NULL DEFAULT 'scheduled'
                CHECK (status IN ('scheduled', 'open', 'closed')),
    opened_at   timestamptz,
    opened_by   text
);

CREATE TABLE IF NOT EXISTS orders (
    id                text PRIMARY KEY,
    window_id         text NOT NULL REFERENCES windows (id),
    merchant          text NOT NULL,
    currency          text NOT NULL,
    deposit           numeric(18, 2) NOT NULL,
    balance           numeric(18, 2) NOT NULL CHECK (balance > 0),
    deposit_flow_id   text REFERENCES flows (id),
    final_flow_id     text REFERENCES flows (id),
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS orders_unpaid_by_window ON orders (window_id)
    WHERE final_flow_id IS NULL;

-- Leader election: a lease row, renewed by the holder, taken over by a standby once expired.
CREATE TABLE IF NOT EXISTS leader_leases (
    name        text PRIMARY KEY,
    holder      text NOT NULL,
    token       bigint NOT NULL,
    acquired_at timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);

-- One row per offline batch run: what it scanned, whether the books balanced, and if on time.
CREATE TABLE IF NOT EXISTS settlement_runs (
    id           bigserial PRIMARY KEY,
    job          text NOT NULL,
    instance     text NOT NULL,
    started_at   timestamptz NOT NULL,
    deadline     timestamptz NOT NULL,
    finished_at  timestamptz,
    units        integer NOT NULL,
    entries      bigint NOT NULL DEFAULT 0,
    balanced     boolean,
    digest       text
);
