"""The offline batch: reconcile and settle the ledger in units of real CPU work, within a window.

The ledger, as of one snapshot, is split into CHAOSKIT_OFFLINE_UNITS pages. Each unit reads its
page, folds it into a running SHA-256 digest and per-currency totals, then stretches the digest
with PBKDF2 (CHAOSKIT_OFFLINE_ROUNDS rounds): the CPU a real settlement spends on signing and
checks. Progress is exported as
payments_offline_progress_ratio; the run is recorded in settlement_runs. Exit status 0 when done
and the books balance, 1 when they do not (a finished run past its window exits 0 but is recorded
as late and counted in payments_deadline_misses_total{flow="offline"}).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

import psycopg
from starlette.applications import Starlette

from chaoskit.stack.config import StackConfig
from chaoskit.stack.database import connect_and_migrate
from chaoskit.stack.metrics import StackMetrics
from chaoskit.stack.serving import ops_routes, supervise

log = logging.getLogger("chaoskit.stack.offline")
JOB = "settlement"
COUNT = "SELECT count(*) FROM ledger_entries"
PAGE = """
SELECT id, flow_id, account, amount, currency FROM ledger_entries
 WHERE id > %s ORDER BY id LIMIT %s
"""


@dataclass
class Settlement:
    """Running state of one batch: a digest over everything seen and totals per currency."""

    units: int
    rounds: int
    page_size: int = 200
    done: int = 0
    last_id: int = 0
    entries: int = 0
    digest: bytes = b"\0" * 32
    totals: dict[str, Decimal] = field(default_factory=dict)

    def fold(self, rows: list[tuple[int, str, str, Decimal, str]]) -> None:
        """One unit of work: hash the page into the digest, then stretch it (the CPU burn)."""
        h = hashlib.sha256(self.digest)
        for entry_id, flow_id, account, amount, currency in rows:
            h.update(f"{entry_id}|{flow_id}|{account}|{amount}|{currency}".encode())
            self.totals[currency] = self.totals.get(currency, Decimal(0)) + amount
            self.last_id = entry_id
        h.update(self.done.to_bytes(8, "big"))
        self.digest = hashlib.pbkdf2_hmac("sha256", h.digest(), b"settlement", self.rounds)
        self.entries += len(rows)
        self.done += 1

    @property
    def progress(self) -> float:
        return self.done / self.units

    @property
    def balanced(self) -> bool:
        return all(total == 0 for total in self.totals.values())


START_RUN = """
INSERT INTO settlement_runs (job, instance, started_at, deadline, units)
VALUES (%s, %s, now(), now() + %s, %s) RETURNING id
"""
FINISH_RUN = """
UPDATE settlement_runs SET finished_at = now(), entries = %s, balanced = %s, digest = %s
 WHERE id = %s RETURNING finished_at > deadline
"""


class OfflineBatch:
    """Runs one settlement from start to finish, then asks the server to stop."""

    def __init__(self, config: StackConfig, metrics: StackMetrics) -> None:
        self.config = config
        self.metrics = metrics
        self.state = Settlement(config.offline_units, config.offline_rounds)
        self.exit_status = 0
        self.finished = asyncio.Event()

    async def run(self, conn: psycopg.AsyncConnection) -> None:
        window = timedelta(seconds=self.config.real(self.config.offline_window))
        cursor = await conn.execute(START_RUN, (JOB, self.config.instance, window,
                                                self.state.units))
        (run_id,) = await cursor.fetchone()  # type: ignore[misc]
        gauge = self.metrics.offline_progress.labels(self.metrics.node, JOB)
        counter = self.metrics.offline_units.labels(self.metrics.node, JOB)
        gauge.set(0)
        # one snapshot for the whole scan: both legs of a flow are seen, or neither
        await conn.set_isolation_level(psycopg.IsolationLevel.REPEATABLE_READ)
        async with conn.transaction():
            (entries,) = await (await conn.execute(COUNT)).fetchone()  # type: ignore[misc]
            self.state.page_size = max(1, -(-entries // self.state.units))  # cover it all
            while self.state.done < self.state.units:
                rows = await (await conn.execute(PAGE, (self.state.last_id,
                                                        self.state.page_size))).fetchall()
                self.state.fold(rows)  # type: ignore[arg-type]
                counter.inc()
                gauge.set(self.state.progress)
                await asyncio.sleep(0)  # let /metrics be scraped between units
        await self.finish(conn, run_id)

    async def finish(self, conn: psycopg.AsyncConnection, run_id: int) -> None:
        state = self.state
        row = await (await conn.execute(FINISH_RUN, (state.entries, state.balanced,
                                                     state.digest.hex(), run_id))).fetchone()
        late = bool(row and row[0])
        if late:
            self.metrics.deadline_misses.labels(self.metrics.node, "offline").inc()
        self.exit_status = 0 if state.balanced else 1
        log.info("settlement done: %d units, %d entries, balanced=%s, late=%s",
                 state.units, state.entries, state.balanced, late)


def build_app(config: StackConfig) -> Starlette:
    metrics = StackMetrics(config.node)
    batch = OfflineBatch(config, metrics)

    async def run_then_stop(app: Starlette) -> None:
        url = config.require_database()
        await connect_and_migrate(url)
        started = time.monotonic()
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            await batch.run(conn)
        log.info("settlement took %.2fs", time.monotonic() - started)
        await asyncio.sleep(config.offline_linger)  # keep /metrics up for a last scrape
        app.state.exit_status = batch.exit_status
        app.state.server.should_exit = True

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.exit_status = 1  # until the batch says otherwise (killed, crashed)
        task = supervise(app, asyncio.create_task(run_then_stop(app)))
        try:
            yield
        finally:
            task.cancel()

    def status() -> dict[str, object]:
        return {"progress": batch.state.progress}

    return Starlette(routes=ops_routes("offline", config, metrics, status), lifespan=lifespan)
