"""`type: ledger`: is the money safe? Balance, double application and lost acknowledgements.

    probe: {type: ledger, measure: money_at_risk}      # guardrail: abort_when "> 0"

    imbalance      sum over currencies of |sum of that currency's entries| (0 when balanced)
    duplicates     flows applied more than once: extra live flows for one request key (the
                   stack stores a key as 'key' or, when idempotency is off, 'key#nonce'), plus
                   flows with more ledger entries than the two legs every kind has
    lost           acknowledged requests (the load engine's JSON lines, `context.acknowledged_path`)
                   whose flow is missing from the ledger, or present more than once
    money_at_risk  imbalance + duplicates + lost: 0 when safe; one defect may show in two terms
Without an acknowledgement file, `lost` is an error and money_at_risk leaves that term out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Literal

import psycopg
from pydantic import Field

from chaoskit.errors import ProbeError
from chaoskit.probes.base import ProbeConfig, ProbeContext
from chaoskit.probes.ledger_source import LedgerSource, database_url
from chaoskit.spec.units import PositiveDuration

LEGS_PER_FLOW = 2
# the load engine's flow names -> the ledger's flow kinds (other requests create no flow)
FLOW_KINDS = {"pay": "payment", "payment": "payment", "refund": "refund",
              "final_payment": "final_payment"}

IMBALANCE = """
SELECT coalesce(sum(abs(total)), 0)::float8 AS imbalance
  FROM (SELECT sum(amount) AS total FROM ledger_entries GROUP BY currency) per_currency
"""
DUPLICATES = """
SELECT (SELECT coalesce(sum(n - 1), 0) FROM (
          SELECT count(*) AS n FROM flows
           WHERE idempotency_key IS NOT NULL AND status <> 'failed'
           GROUP BY split_part(idempotency_key, '#', 1) HAVING count(*) > 1) keys)
     + (SELECT count(*) FROM (
          SELECT flow_id FROM ledger_entries GROUP BY flow_id HAVING count(*) > %(legs)s) e)
       AS duplicates
"""
ACKED_TABLE = "CREATE TEMPORARY TABLE IF NOT EXISTS acked (key text, id text)"
LOST = """
WITH acks AS (SELECT DISTINCT key FROM acked),
keyed AS (
  SELECT split_part(idempotency_key, '#', 1) AS key, count(*) AS n,
         count(*) FILTER (WHERE status <> 'failed') AS live
    FROM flows WHERE idempotency_key IS NOT NULL GROUP BY 1
),
by_id AS (SELECT a.key, count(DISTINCT f.id) AS n FROM acked a JOIN flows f ON f.id = a.id
           GROUP BY a.key)
SELECT count(*) FILTER (WHERE coalesce(k.n, 0) = 0 AND coalesce(i.n, 0) = 0)
     + count(*) FILTER (WHERE k.live > 1) AS lost
  FROM acks a LEFT JOIN keyed k ON k.key = a.key LEFT JOIN by_id i ON i.key = a.key
"""


class LedgerProbeConfig(ProbeConfig):
    measure: Literal["imbalance", "duplicates", "lost", "money_at_risk"] = "money_at_risk"
    database_url: str | None = Field(default=None, description="default: the platform's ledger")
    acknowledged: str | None = Field(
        default=None, description="acknowledged-requests file (default: the run's)")
    timeout: PositiveDuration = 5.0


class AckFile:
    """The load engine's acknowledgements, read on as the file grows (whole lines only)."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.offset = 0
        self.acks: dict[tuple[str, str], None] = {}  # (key, id), ordered and unique

    def read(self) -> list[tuple[str, str]]:
        if self.path.exists():
            with self.path.open("rb") as file:
                file.seek(self.offset)
                chunk = file.read()
            complete = chunk[:chunk.rfind(b"\n") + 1]
            self.offset += len(complete)
            for line in complete.splitlines():
                self._add(line)
        return list(self.acks)

    def _add(self, line: bytes) -> None:
        try:
            record = json.loads(line)
        except ValueError:
            return  # a torn line from a crashed writer is not an acknowledgement
        if isinstance(record, dict) and record.get("flow") in FLOW_KINDS and record.get("key"):
            self.acks[(str(record["key"]), str(record.get("id") or ""))] = None


class LedgerProbe:
    """Reads the books; every measure is a count or amount that is 0 when money is safe."""

    type_name: ClassVar[str] = "ledger"
    Config: ClassVar[type[ProbeConfig]] = LedgerProbeConfig

    def __init__(self, config: ProbeConfig, context: ProbeContext) -> None:
        assert isinstance(config, LedgerProbeConfig)
        self.config = config
        self.source = LedgerSource(database_url(config.database_url, context.platform),
                                   config.timeout)
        path = config.acknowledged or context.acknowledged_path
        self.acks = AckFile(path) if path else None
        if config.measure == "lost" and self.acks is None:
            raise ProbeError("measure: lost needs the load engine's acknowledgements",
                             hint="run it with `load:` in the experiment, or set "
                                  "`acknowledged:` to an acknowledged.jsonl file")

    async def sample(self) -> float:
        measure = self.config.measure
        if measure == "imbalance":
            return await self.imbalance()
        if measure == "duplicates":
            return await self.duplicates()
        if measure == "lost":
            return await self.lost()
        lost = await self.lost() if self.acks is not None else 0.0
        return await self.imbalance() + await self.duplicates() + lost

    async def imbalance(self) -> float:
        return float((await self.source.row(IMBALANCE))["imbalance"])

    async def duplicates(self) -> float:
        return float((await self.source.row(DUPLICATES, {"legs": LEGS_PER_FLOW}))["duplicates"])

    async def lost(self) -> float:
        assert self.acks is not None
        acks = self.acks.read()
        if not acks:
            return 0.0
        return float(await self._count_lost(acks))

    async def _count_lost(self, acks: list[tuple[str, str]]) -> Any:
        conn = await self.source.connection()
        try:
            async with conn.transaction():
                await conn.execute(ACKED_TABLE)
                await conn.execute("TRUNCATE acked")
                async with conn.cursor().copy("COPY acked (key, id) FROM STDIN") as copy:
                    for key, flow_id in acks:
                        await copy.write_row((key, flow_id or None))
                cursor = await conn.execute(LOST)
                return (await cursor.fetchone() or {"lost": 0})["lost"]
        except psycopg.Error as exc:
            await self.source.close()
            raise self.source.failure(exc) from None

    def unit(self) -> str:
        return "amount" if self.config.measure == "imbalance" else "count"

    async def close(self) -> None:
        await self.source.close()
