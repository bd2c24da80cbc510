"""`type: reconciliation`: the counterparty's record against the books, both ways.

    probe: {type: reconciliation, reconciliation: bank, measure: mismatches}

A system declares under `reconciliations:` two read-only queries, each returning `ref` (the
reference both sides share), optionally `at` (when the row was written) and any columns to
compare (amount, operation, currency, ...): the counterparty's record (a bank's statement, a
settlement file loaded into a table) and the books. Payment companies reconcile with their
banks every day; this is that reconciliation, run during the experiment.

    mismatches         all of the below
    counterparty_only  executed by the counterparty, absent from the books
    books_only         in the books, never executed by the counterparty
    repeated           a ref more than once on one side (executed or booked twice)
    differing          a column both sides return differs (e.g. the amount)

The value is the number of mismatches (0 when the records agree); the first few are journaled
with the sample. No rows on either side is no data, not a pass. Each sample reads both records
whole (up to ROW_LIMIT rows each), so keep the queries to what a run can change.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import Field

from chaoskit.errors import ProbeError
from chaoskit.probes.base import ProbeConfig, ProbeContext
from chaoskit.probes.books import Books, database_url
from chaoskit.probes.reconcile import Mismatch, compare, count
from chaoskit.spec.units import PositiveDuration

EXAMPLES = 3
ROW_LIMIT = 200_000


class ReconciliationProbeConfig(ProbeConfig):
    reconciliation: str = Field(description="a reconciliation the system declares")
    measure: Literal["mismatches", "counterparty_only", "books_only", "repeated",
                     "differing"] = "mismatches"
    timeout: PositiveDuration = 5.0


class ReconciliationProbe:
    """Reads both records and counts where they disagree."""

    type_name: ClassVar[str] = "reconciliation"
    Config: ClassVar[type[ProbeConfig]] = ReconciliationProbeConfig

    def __init__(self, config: ProbeConfig, context: ProbeContext) -> None:
        assert isinstance(config, ReconciliationProbeConfig)
        self.config = config
        declared = context.system.reconciliations if context.system else {}
        if config.reconciliation not in declared:
            raise ProbeError(f"the system declares no reconciliation '{config.reconciliation}'",
                             hint=f"declared: {', '.join(declared) or 'none'}; add it under "
                                  "`reconciliations:` in the system")
        self.spec = declared[config.reconciliation]
        theirs = database_url(self.spec.counterparty_database, context.system, context.platform)
        ours = database_url(self.spec.books_database, context.system, context.platform)
        self.counterparty = Books(theirs, config.timeout)
        self.books = self.counterparty if ours == theirs else Books(ours, config.timeout)
        self.mismatches: list[Mismatch] = []

    async def _read(self, books: Books, query: str, side: str) -> tuple[list[dict[str, Any]],
                                                                         Any]:
        rows = await books.rows(query, limit=ROW_LIMIT + 1)
        if len(rows) > ROW_LIMIT:
            raise ProbeError(f"the {side} query of reconciliation '{self.config.reconciliation}'"
                             f" returns more than {ROW_LIMIT:,} rows",
                             hint="keep it to what a run can change (e.g. the last day)")
        if rows and "ref" not in rows[0]:
            raise ProbeError(f"the {side} query of reconciliation "
                             f"'{self.config.reconciliation}' returns no `ref` column",
                             hint="return the reference both sides share AS ref")
        now = (await books.row(f"SELECT {books.dialect.now} AS now"))["now"] \
            if self.spec.settle else None
        return rows, now

    async def sample(self) -> float | None:
        theirs, their_now = await self._read(self.counterparty, self.spec.counterparty,
                                             "counterparty")
        ours, our_now = await self._read(self.books, self.spec.books, "books")
        if not theirs and not ours:
            return None  # nothing executed, nothing booked: no evidence either way
        now = {"counterparty": their_now, "books": our_now}

        def settled(row: dict[str, Any], side: str) -> bool:
            return _age(now[side], row.get("at")) >= self.spec.settle

        self.mismatches = compare(theirs, ours, settled)
        return float(count(self.mismatches, self.config.measure))

    def detail(self) -> dict[str, Any] | None:
        chosen = [m.shown() for m in self.mismatches
                  if self.config.measure in ("mismatches", m.problem)][:EXAMPLES]
        return {"examples": chosen} if chosen else None

    def unit(self) -> str:
        return "mismatches"

    async def close(self) -> None:
        await self.counterparty.close()
        if self.books is not self.counterparty:
            await self.books.close()


def _age(now: Any, at: Any) -> float:
    """Seconds since `at` on its database's clock; a row without `at` is old enough."""
    if now is None or not isinstance(at, datetime) or not isinstance(now, datetime):
        return float("inf")
    if (now.tzinfo is None) != (at.tzinfo is None):
        now, at = now.replace(tzinfo=None), at.replace(tzinfo=None)
    return (now - at).total_seconds()
