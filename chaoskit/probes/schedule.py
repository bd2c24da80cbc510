"""`type: schedule`: ground truth of promises kept, straight from the ledger's tables.

    probe: {type: schedule, flow: refund, measure: on_time_ratio}            # since the run began
    probe: {type: schedule, flow: final_payment, measure: lag_p99, window: 5m}
    probe: {type: schedule, flow: settlement, measure: open_past_due}        # offline batches

Refunds and final payments are rows of `flows` (promise: due_at). `settlement` is the offline
reconciliation batch's runs (`settlement_runs`: promise: its window's deadline; a run that
found the books unbalanced counts as failed): the time-sharing promise that offline work still
finishes in its window after the peak.

The flows counted in a window are those whose promise was decided in it: due in the window
(due_at in (start, now]), or completed in it before their due time (kept early). Of those:
    due                 how many
    completed_on_time   completed at or before due_at
    late                completed after due_at
    open_past_due       still pending after due_at (a promise being broken right now)
    failed              failed at the bank (no money moved; never on time)
    on_time_ratio       completed_on_time / due; 1.0 when nothing was due (no promise broken)
    lag_p50/p99/max     seconds of completed_at - due_at (<= 0 is on time); a flow still open
                        past due counts with now - due_at, a lower bound of its lag, so a
                        stalled worker shows as growing lag; 0.0 when there is no flow
Times are real seconds as the database stores them; "since the run began" is the moment the
probe was built, carried over to the database's clock (a cluster's clock may differ from ours).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from pydantic import Field

from chaoskit.probes.base import ProbeConfig, ProbeContext
from chaoskit.probes.ledger_source import LedgerSource, database_url
from chaoskit.spec.units import PositiveDuration

Measure = Literal["due", "completed_on_time", "late", "open_past_due", "failed", "on_time_ratio",
                  "lag_p50", "lag_p99", "lag_max"]

# What was promised, as (status, due_at, completed_at) rows, per flow. Constants only.
PROMISES = {
    "refund": "SELECT status, due_at, completed_at FROM flows WHERE kind = 'refund'",
    "final_payment": "SELECT status, due_at, completed_at FROM flows WHERE kind = 'final_payment'",
    "settlement": """SELECT CASE WHEN balanced IS FALSE THEN 'failed'
                                 WHEN finished_at IS NOT NULL THEN 'completed'
                                 ELSE 'pending' END AS status,
                            deadline AS due_at, finished_at AS completed_at
                       FROM settlement_runs""",
}

SCHEDULE = """
WITH promises AS ({promises}),
bounds AS (
  -- the run's start is on this machine's clock; shift it by the database clock's offset
  SELECT now() AS now_,
         coalesce(now() - %(window)s::interval, %(since)s + (now() - %(here)s)) AS start_
),
decided AS (
  SELECT f.status, f.due_at, f.completed_at,
         extract(epoch FROM coalesce(f.completed_at, b.now_) - f.due_at)::float8 AS lag,
         f.due_at <= b.now_ AS past_due
    FROM promises f CROSS JOIN bounds b
   WHERE f.due_at IS NOT NULL
     AND ((f.due_at > b.start_ AND f.due_at <= b.now_)
          OR (f.status = 'completed' AND f.completed_at > b.start_
              AND f.completed_at <= b.now_ AND f.completed_at <= f.due_at))
)
SELECT count(*) AS due,
       count(*) FILTER (WHERE status = 'completed' AND completed_at <= due_at)
         AS completed_on_time,
       count(*) FILTER (WHERE status = 'completed' AND completed_at > due_at) AS late,
       count(*) FILTER (WHERE status = 'pending' AND past_due) AS open_past_due,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       percentile_disc(0.5) WITHIN GROUP (ORDER BY lag)
         FILTER (WHERE status = 'completed' OR past_due AND status = 'pending') AS lag_p50,
       percentile_disc(0.99) WITHIN GROUP (ORDER BY lag)
         FILTER (WHERE status = 'completed' OR past_due AND status = 'pending') AS lag_p99,
       max(lag) FILTER (WHERE status = 'completed' OR past_due AND status = 'pending') AS lag_max
  FROM decided
"""


class ScheduleProbeConfig(ProbeConfig):
    flow: Literal["refund", "final_payment", "settlement"]
    measure: Measure = "on_time_ratio"
    window: PositiveDuration | None = Field(
        default=None, description="the last this long (default: since the run began)")
    database_url: str | None = Field(default=None, description="default: the platform's ledger")
    timeout: PositiveDuration = 5.0


class ScheduleProbe:
    """Counts promises kept and broken, straight from the ledger."""

    type_name: ClassVar[str] = "schedule"
    Config: ClassVar[type[ProbeConfig]] = ScheduleProbeConfig

    def __init__(self, config: ProbeConfig, context: ProbeContext) -> None:
        assert isinstance(config, ScheduleProbeConfig)
        self.config = config
        self.started = datetime.now(UTC)
        self.source = LedgerSource(database_url(config.database_url, context.platform),
                                   config.timeout)

    async def sample(self) -> float:
        return measure(self.config.measure, await self.counts())

    async def counts(self) -> dict[str, Any]:
        """Every measure at once (for reports that want the whole picture)."""
        window = f"{self.config.window} seconds" if self.config.window else None
        query = SCHEDULE.format(promises=PROMISES[self.config.flow])
        return await self.source.row(query, {
            "window": window, "since": self.started, "here": datetime.now(UTC)})

    def unit(self) -> str:
        measure = self.config.measure
        if measure.startswith("lag_"):
            return "s"
        return "ratio" if measure == "on_time_ratio" else "count"

    async def close(self) -> None:
        await self.source.close()


def measure(name: str, row: dict[str, Any]) -> float:
    if name == "on_time_ratio":
        due = row["due"]
        return row["completed_on_time"] / due if due else 1.0
    value = row[name]
    return 0.0 if value is None else float(value)
