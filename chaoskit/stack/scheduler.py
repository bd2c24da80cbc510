"""The scheduler: a leader (elected with a lease row) opens windows and fires automatic charges.

Why a lease row and not an advisory lock: an advisory lock lives as long as the holder's
session. A frozen (SIGSTOPped, cgroup-frozen) leader keeps its TCP connection, so PostgreSQL
keeps the lock and the standby would wait for TCP keepalive (minutes). A lease row expires by
the clock; its token fences the leader's writes, so a leader that thaws after losing the lease
cannot open a window or fire charges any more (every action checks the token in the same SQL).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

import psycopg
import psycopg_pool
from starlette.applications import Starlette

from chaoskit.stack.config import StackConfig
from chaoskit.stack.database import connect_and_migrate, open_pool
from chaoskit.stack.ledger import sweep_misses
from chaoskit.stack.metrics import StackMetrics
from chaoskit.stack.serving import ops_routes, supervise

log = logging.getLogger("chaoskit.stack.scheduler")
LEASE = "scheduler"

# Take the lease when free or expired (or renew our own); `standby` false = the no-standby defect.
ACQUIRE = """
INSERT INTO leader_leases AS l (name, holder, token, acquired_at, expires_at)
VALUES (%(name)s, %(me)s, 1, now(), now() + %(ttl)s)
ON CONFLICT (name) DO UPDATE
   SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at,
       token = l.token + (l.holder <> EXCLUDED.holder)::int,
       acquired_at = CASE WHEN l.holder = EXCLUDED.holder THEN l.acquired_at ELSE now() END
 WHERE l.holder = EXCLUDED.holder OR (%(standby)s AND l.expires_at < now())
RETURNING token
"""
FENCE = """EXISTS (SELECT 1 FROM leader_leases WHERE name = 'scheduler' AND holder = %(me)s
                   AND token = %(token)s AND expires_at > now())"""
# `late`: zero, but for the deliberate defect windows-open-late
OPEN_WINDOWS = f"""
UPDATE windows SET status = 'open', opened_at = now(), opened_by = %(me)s
 WHERE status = 'scheduled' AND opens_at + %(late)s <= now() AND {FENCE}
RETURNING id, extract(epoch FROM now() - opens_at)::float8
"""
# One automatic final payment per order ('auto:<order>' is unique), due at the window's close;
# `all_orders` is true but for the deliberate defect late-orders-never-charged.
FIRE_CHARGES = f"""
WITH todo AS (
  SELECT o.id, o.balance, o.currency, o.merchant, w.closes_at FROM orders o
    JOIN windows w ON w.id = o.window_id
   WHERE w.status = 'open' AND o.final_flow_id IS NULL AND {FENCE}
     AND (%(all_orders)s OR o.created_at <= w.opened_at)
   ORDER BY o.id LIMIT %(batch)s FOR UPDATE OF o SKIP LOCKED
), fired AS (
  INSERT INTO flows (id, kind, idempotency_key, status, amount, currency, merchant, order_id,
                     created_at, due_at)
  SELECT 'fin_' || md5(todo.id), 'final_payment', 'auto:' || todo.id, 'pending', todo.balance,
         todo.currency, todo.merchant, todo.id, now(), todo.closes_at FROM todo
  ON CONFLICT DO NOTHING
  RETURNING id, order_id
)
UPDATE orders o SET final_flow_id = fired.id FROM fired WHERE o.id = fired.order_id
RETURNING o.id
"""
# On a graceful stop the leader resigns, so the standby need not wait for the lease to expire.
RESIGN = """
UPDATE leader_leases SET expires_at = now() WHERE name = %(name)s AND holder = %(me)s
"""
CLOSE_WINDOWS = f"""
UPDATE windows SET status = 'closed' WHERE status = 'open' AND closes_at <= now() AND {FENCE}
"""


class Scheduler:
    """Campaigns for the lease every ttl/3; while leader, runs the window duties each tick."""

    def __init__(self, config: StackConfig, metrics: StackMetrics) -> None:
        self.config = config
        self.metrics = metrics
        self.pool: psycopg_pool.AsyncConnectionPool | None = None
        self.token: int | None = None
        self.renewed_at = 0.0
        self.tick = min(0.25, config.lease_ttl / 4)

    @property
    def is_leader(self) -> bool:
        return self.token is not None

    async def campaign(self) -> None:
        assert self.pool is not None
        params = {"name": LEASE, "me": self.config.instance, "standby":
                  not self.config.is_broken("no-standby"),
                  "ttl": timedelta(seconds=self.config.lease_ttl)}
        async with self.pool.connection() as conn:
            row = await (await conn.execute(ACQUIRE, params)).fetchone()
        self._become(row[0] if row else None)
        self.renewed_at = asyncio.get_running_loop().time()

    def _become(self, token: int | None) -> None:
        if token is not None and self.token != token:
            self.metrics.leader_changes.labels(self.metrics.node).inc()
            log.info("became leader with token %d", token)
        elif token is None and self.token is not None:
            log.warning("lost leadership (token %d)", self.token)
        self.token = token
        self.metrics.is_leader.labels(self.metrics.node).set(1 if token is not None else 0)

    async def duties(self) -> None:
        """Open due windows, fire their charges in batches, close finished windows."""
        assert self.pool is not None
        broken = self.config.is_broken
        delay = self.config.real(300.0) if broken("windows-open-late") else 0.0  # 5 min
        fence = {"me": self.config.instance, "token": self.token, "batch": 500,
                 "late": timedelta(seconds=delay),
                 "all_orders": not broken("late-orders-never-charged")}
        async with self.pool.connection() as conn:
            for window_id, late in await (await conn.execute(OPEN_WINDOWS, fence)).fetchall():
                self.metrics.window_open_lag.labels(self.metrics.node).observe(late)
                log.info("opened window %s (%.3fs after its time)", window_id, late)
            async with conn.transaction():
                fired = await (await conn.execute(FIRE_CHARGES, fence)).fetchall()
            if fired:
                log.info("fired %d automatic final payments", len(fired))
            await conn.execute(CLOSE_WINDOWS, fence)
            # also here, so overdue flows are counted even when every worker is down
            for kind in await sweep_misses(conn):
                self.metrics.deadline_misses.labels(self.metrics.node, kind).inc()

    async def resign(self) -> None:
        if self.pool is None or not self.is_leader:
            return
        try:
            async with asyncio.timeout(self.config.db_timeout), self.pool.connection() as conn:
                await conn.execute(RESIGN, {"name": LEASE, "me": self.config.instance})
        except (psycopg.Error, psycopg_pool.PoolTimeout, TimeoutError) as exc:
            log.warning("could not resign: %s", exc)
        self._become(None)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_campaign = 0.0
        while True:
            try:
                async with asyncio.timeout(self.config.db_timeout):
                    if loop.time() >= next_campaign:
                        await self.campaign()
                        next_campaign = loop.time() + self.config.lease_ttl / 3
                    if self.is_leader:
                        await self.duties()
            except (psycopg.Error, psycopg_pool.PoolTimeout, TimeoutError) as exc:
                log.warning("scheduler step failed: %s", exc)
                if loop.time() - self.renewed_at > self.config.lease_ttl:
                    self._become(None)  # our lease has surely expired: stop claiming to lead
            await asyncio.sleep(self.tick)


def build_app(config: StackConfig) -> Starlette:
    metrics = StackMetrics(config.node)
    scheduler = Scheduler(config, metrics)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        url = config.require_database()
        await connect_and_migrate(url)
        scheduler.pool = await open_pool(url, 2, name="scheduler")
        task = supervise(app, asyncio.create_task(scheduler.run()))
        try:
            yield
        finally:
            task.cancel()
            await scheduler.resign()
            await scheduler.pool.close()

    def status() -> dict[str, object]:
        return {"leader": scheduler.is_leader, "token": scheduler.token}

    return Starlette(routes=ops_routes("scheduler", config, metrics, status), lifespan=lifespan)
