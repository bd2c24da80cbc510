"""Workers: claim pending refunds and final payments with fenced leases, execute them at the bank.

A claim bumps the flow's lease_token (the fence) and sets lease_expires_at; completion is
`UPDATE ... WHERE lease_token = <ours> AND status = 'pending'` in the same transaction as the
ledger entries. A worker frozen past its lease finds the token moved on and books nothing; the
bank saw the same flow id as idempotency key both times, so it charged once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import psycopg
import psycopg_pool
from starlette.applications import Starlette

from chaoskit.stack.bank_client import BankAnswer, BankChannelClient
from chaoskit.stack.config import StackConfig
from chaoskit.stack.database import connect_and_migrate, open_pool
from chaoskit.stack.ledger import post_entries, sweep_misses
from chaoskit.stack.metrics import StackMetrics
from chaoskit.stack.serving import ops_routes, supervise

log = logging.getLogger("chaoskit.stack.worker")
# An unanswered bank call (CHAOSKIT_BANK_TIMEOUT, real seconds) is retried later with the same
# key, so never executed twice: the bank may well have executed it and only its answer was lost.

# Earliest deadline first. A lease that expired means its holder died or hung: take it over.
CLAIM = """
WITH due AS (
  SELECT id, lease_expires_at IS NOT NULL AS takeover FROM flows
   WHERE status = 'pending' AND next_attempt_at <= now()
     AND (lease_expires_at IS NULL OR (%(takeover)s AND lease_expires_at < now()))
   ORDER BY due_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED
)
UPDATE flows f SET lease_owner = %(owner)s, lease_token = f.lease_token + 1,
       lease_expires_at = now() + %(ttl)s, attempts = f.attempts + 1,
       takeovers = f.takeovers + due.takeover::int
  FROM due WHERE f.id = due.id
RETURNING f.id, f.kind, f.amount, f.currency, f.merchant, f.lease_token, due.takeover
"""
COMPLETE = """
UPDATE flows SET status = %(status)s, completed_at = now(), bank = %(bank)s,
       lease_owner = NULL, lease_expires_at = NULL, last_error = %(error)s,
       missed_at = coalesce(missed_at, CASE WHEN now() > due_at THEN now() END)
 WHERE id = %(id)s AND lease_token = %(token)s AND status = 'pending'
RETURNING extract(epoch FROM completed_at - due_at)::float8, missed_at = completed_at
"""
RELEASE = """
UPDATE flows SET lease_owner = NULL, lease_expires_at = NULL, last_error = %(error)s,
       next_attempt_at = now() + %(backoff)s
 WHERE id = %(id)s AND lease_token = %(token)s AND status = 'pending'
"""
EXTEND = """
UPDATE flows SET lease_expires_at = now() + %(ttl)s
 WHERE id = ANY(%(ids)s) AND lease_owner = %(owner)s AND status = 'pending'
"""
# On a graceful stop, hand held work back at once instead of letting the leases run out.
RELEASE_ALL = """
UPDATE flows SET lease_owner = NULL, lease_expires_at = NULL
 WHERE lease_owner = %(owner)s AND status = 'pending'
"""
DEPTH = """
SELECT kind, count(*), count(*) FILTER (WHERE due_at < now()) FROM flows
 WHERE status = 'pending' GROUP BY kind
"""


@dataclass(frozen=True)
class Claim:
    """A flow this worker holds, with the fencing token of its claim."""

    flow_id: str
    kind: str
    amount: Decimal
    currency: str
    merchant: str
    token: int
    takeover: bool


class Worker:
    """Claims batches, runs them concurrently, keeps their leases alive while the bank answers."""

    def __init__(self, config: StackConfig, metrics: StackMetrics) -> None:
        self.config = config
        self.metrics = metrics
        self.pool: psycopg_pool.AsyncConnectionPool | None = None
        self.bank: BankChannelClient | None = None
        self.held: set[str] = set()
        self.poll_interval = min(0.1, config.lease_ttl / 4)
        metrics.leases_held.labels(metrics.node).set(0)  # exported from the start: "none held"

    async def claim(self, limit: int) -> list[Claim]:
        assert self.pool is not None
        params = {"takeover": not self.config.is_broken("no-takeover"), "limit": limit,
                  "owner": self.config.instance, "ttl": timedelta(seconds=self.config.lease_ttl)}
        async with self.pool.connection() as conn:
            cursor = await conn.execute(CLAIM, params)
            claims = [Claim(*row) for row in await cursor.fetchall()]
        for claim in claims:
            if claim.takeover:
                self.metrics.lease_takeovers.labels(self.metrics.node).inc()
                log.info("took over the expired lease of %s", claim.flow_id)
        return claims

    async def execute(self, claim: Claim) -> None:
        assert self.bank is not None
        self.held.add(claim.flow_id)
        self.metrics.leases_held.labels(self.metrics.node).set(len(self.held))
        try:
            bank, answer = await self.bank.call(claim.kind, claim.flow_id, claim.amount,
                                                claim.currency)
            if answer.outcome == "retry" and not self._gives_up(answer):
                await self.release(claim, answer)
            else:
                await self.complete(claim, bank, answer)
        finally:
            self.held.discard(claim.flow_id)
            self.metrics.leases_held.labels(self.metrics.node).set(len(self.held))

    def _gives_up(self, answer: BankAnswer) -> bool:
        # the deliberate defect: an unanswered call is taken for a decline (money the bank
        # took is never booked)
        return self.config.is_broken("timeout-as-declined") and "Timeout" in answer.detail

    def _books(self, claim: Claim) -> bool:
        # the deliberate defect: every tenth refund completes without its ledger entries
        return not (self.config.is_broken("refund-unbooked") and claim.kind == "refund"
                    and zlib.crc32(claim.flow_id.encode()) % 10 == 0)

    async def complete(self, claim: Claim, bank: str, answer: BankAnswer) -> None:
        """Book the flow only if our claim is still the current one (the fence)."""
        assert self.pool is not None
        approved = answer.outcome == "approved"
        params = {"status": "completed" if approved else "failed", "bank": bank,
                  "error": None if approved else answer.detail, "id": claim.flow_id,
                  "token": claim.token}
        async with self.pool.connection() as conn, conn.transaction():
            cursor = await conn.execute(COMPLETE, params)
            row = await cursor.fetchone()
            if row is None:
                self.metrics.fenced_completions.labels(self.metrics.node).inc()
                log.warning("lease of %s moved on (token %d is stale); not booking it",
                            claim.flow_id, claim.token)
                return
            if approved and self._books(claim):
                await post_entries(conn, claim.flow_id, claim.kind, claim.merchant,
                                   claim.amount, claim.currency, self.config.broken)
        if approved:
            self.metrics.observe_completion(claim.kind, row[0], bool(row[1]))

    async def release(self, claim: Claim, answer: BankAnswer) -> None:
        assert self.pool is not None
        backoff = timedelta(seconds=min(1.0, 0.05 * 2 ** min(claim.token, 5)))
        async with self.pool.connection() as conn:
            await conn.execute(RELEASE, {"error": answer.detail, "backoff": backoff,
                                         "id": claim.flow_id, "token": claim.token})

    async def run(self) -> None:
        """Claim while there is room; sleep briefly when nothing is due."""
        running: set[asyncio.Task[None]] = set()
        while True:
            room = self.config.worker_concurrency - len(running)
            claims = await self._claim_safely(room) if room > 0 else []
            for claim in claims:
                task = asyncio.create_task(self._execute_safely(claim))
                running.add(task)
                task.add_done_callback(running.discard)
            if not claims:
                await asyncio.sleep(self.poll_interval)

    async def _claim_safely(self, limit: int) -> list[Claim]:
        try:
            async with asyncio.timeout(self.config.db_timeout):
                return await self.claim(limit)
        except (psycopg.Error, psycopg_pool.PoolTimeout, TimeoutError) as exc:
            log.warning("claim failed: %s", exc)
            await asyncio.sleep(self.poll_interval)
            return []

    async def _execute_safely(self, claim: Claim) -> None:
        try:
            async with asyncio.timeout(self.config.db_timeout + self.config.bank_timeout):
                await self.execute(claim)
        except (psycopg.Error, psycopg_pool.PoolTimeout, TimeoutError) as exc:
            # the lease simply expires and another claim retries the flow
            log.warning("executing %s failed: %s", claim.flow_id, exc)

    async def keep_leases(self) -> None:
        """Heartbeat: extend held leases every ttl/3; a frozen process stops doing this."""
        while True:
            await asyncio.sleep(self.config.lease_ttl / 3)
            await self._ignore_db_errors(self._extend())
            await self._ignore_db_errors(self._report_depth())
            await self._ignore_db_errors(self._count_misses())

    async def _extend(self) -> None:
        if self.held and self.pool is not None:
            async with self.pool.connection() as conn:
                await conn.execute(EXTEND, {"ids": list(self.held), "owner": self.config.instance,
                                            "ttl": timedelta(seconds=self.config.lease_ttl)})

    async def _report_depth(self) -> None:
        assert self.pool is not None
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(DEPTH)).fetchall()
        counts = {kind: (depth, overdue) for kind, depth, overdue in rows}
        for kind in ("refund", "final_payment"):
            depth, overdue = counts.get(kind, (0, 0))
            self.metrics.queue_depth.labels(self.metrics.node, kind).set(depth)
            self.metrics.overdue.labels(self.metrics.node, kind).set(overdue)

    async def release_all(self) -> None:
        assert self.pool is not None
        async with self.pool.connection() as conn:
            await conn.execute(RELEASE_ALL, {"owner": self.config.instance})

    async def _count_misses(self) -> None:
        assert self.pool is not None
        async with self.pool.connection() as conn:
            for kind in await sweep_misses(conn):
                self.metrics.deadline_misses.labels(self.metrics.node, kind).inc()

    async def _ignore_db_errors(self, step: Any) -> None:
        try:
            async with asyncio.timeout(self.config.db_timeout):
                await step
        except (psycopg.Error, psycopg_pool.PoolTimeout, TimeoutError) as exc:
            log.warning("periodic step failed: %s", exc)


def build_app(config: StackConfig) -> Starlette:
    metrics = StackMetrics(config.node)
    worker = Worker(config, metrics)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        url = config.require_database()
        await connect_and_migrate(url)
        worker.pool = await open_pool(url, min(4, config.db_pool_size), name="worker")
        worker.bank = BankChannelClient(config.bank_urls, metrics, timeout=config.bank_timeout,
                                        broken=config.broken)
        tasks = [supervise(app, asyncio.create_task(worker.run())),
                 supervise(app, asyncio.create_task(worker.keep_leases()))]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await worker._ignore_db_errors(worker.release_all())
            await worker.bank.close()
            await worker.pool.close()

    def status() -> dict[str, object]:
        return {"holding": len(worker.held)}

    return Starlette(routes=ops_routes("worker", config, metrics, status), lifespan=lifespan)
