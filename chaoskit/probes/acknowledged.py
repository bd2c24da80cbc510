"""`type: acknowledged`: every request clients were told succeeded is in the books, once.

    probe: {type: acknowledged, measure: missing}       # and: duplicated

The load engine writes each acknowledged request (its key and captured values) as it happens;
this probe looks each one up with the system's `acknowledged:` query. Each sample checks the
new ones and a rotating slice of those already found (a duplicate may be booked later), so a
sample costs the same at the start of a game day and hours into it.

    missing     acknowledged, and still not in the books `grace` after the answer
    duplicated  in the books more than once
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from chaoskit.errors import ProbeError
from chaoskit.probes.base import ProbeConfig, ProbeContext
from chaoskit.probes.books import MYSQL, Books, database_url
from chaoskit.spec.units import PositiveDuration

BATCH = 1000  # keys per query
NEW_PER_SAMPLE = 5  # batches of new keys a sample checks
RECHECK_PER_SAMPLE = 1  # batches of found keys it checks again


class AcknowledgedProbeConfig(ProbeConfig):
    measure: Literal["missing", "duplicated"] = "missing"
    grace: PositiveDuration = Field(default=2.0, description=(
        "how long after the answer a request may take to appear in the books"))
    acknowledged: str | None = Field(default=None, description=(
        "the acknowledged-requests file (default: the run's)"))
    database: str | None = None
    timeout: PositiveDuration = 5.0


class AckFile:
    """The load engine's acknowledgements, read on as the file grows (whole lines only)."""

    def __init__(self, path: str, key: str) -> None:
        self.path = Path(path)
        self.key = key
        self.offset = 0

    def new(self) -> list[str]:
        if not self.path.exists():
            return []
        with self.path.open("rb") as file:
            file.seek(self.offset)
            chunk = file.read()
        complete = chunk[:chunk.rfind(b"\n") + 1]
        self.offset += len(complete)
        keys = []
        for line in complete.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a torn line from a crashed writer is not an acknowledgement
            value = record.get(self.key) if self.key == "key" else \
                (record.get("captured") or {}).get(self.key)
            if value is not None:
                keys.append(str(value))
        return keys


class AcknowledgedProbe:
    """Looks acknowledged requests up in the books, a bounded batch per sample."""

    type_name: ClassVar[str] = "acknowledged"
    Config: ClassVar[type[ProbeConfig]] = AcknowledgedProbeConfig

    def __init__(self, config: ProbeConfig, context: ProbeContext) -> None:
        assert isinstance(config, AcknowledgedProbeConfig)
        self.config = config
        spec = context.system.acknowledged if context.system else None
        if spec is None:
            raise ProbeError("the system declares no `acknowledged:` query",
                             hint="declare how to find a request's key in the books, e.g. "
                                  "SELECT key, count(*) AS n FROM ... WHERE key = ANY(%(keys)s)")
        path = config.acknowledged or context.acknowledged_path
        if path is None:
            raise ProbeError("the acknowledged probe needs the run's load",
                             hint="add `load:` to the experiment, or set `acknowledged:`")
        self.spec = spec
        self.acks = AckFile(path, spec.key)
        self.books = Books(database_url(config.database or spec.database, context.system,
                                        context.platform), config.timeout)
        self.pending: OrderedDict[str, float] = OrderedDict()  # key -> when it was read
        self.found: list[str] = []
        self.duplicated: set[str] = set()
        self._recheck = 0

    async def sample(self) -> float | None:
        now = time.monotonic()
        for key in self.acks.new():
            self.pending.setdefault(key, now)
        new = list(self.pending)[:BATCH * NEW_PER_SAMPLE]
        again = self._slice()
        if not new and not again and not self.found:
            return None  # nothing acknowledged yet: nothing to measure
        await self._look_up(new + again)
        if self.config.measure == "duplicated":
            return float(len(self.duplicated))
        return float(sum(1 for t in self.pending.values() if now - t > self.config.grace))

    def _slice(self) -> list[str]:
        if not self.found:
            return []
        size = BATCH * RECHECK_PER_SAMPLE
        start = self._recheck % len(self.found)
        self._recheck = start + size
        return self.found[start:start + size]

    async def _look_up(self, keys: list[str]) -> None:
        for i in range(0, len(keys), BATCH):
            batch = keys[i:i + BATCH]
            value: Any = tuple(batch) if self.books.dialect is MYSQL else batch
            rows = await self.books.rows(self.spec.query, {"keys": value})
            counts = {str(r["key"]): int(r["n"] or 0) for r in rows}
            for key in batch:
                self._note(key, counts.get(key, 0))

    def _note(self, key: str, count: int) -> None:
        if count >= 1 and self.pending.pop(key, None) is not None:
            self.found.append(key)
        if count > 1:
            self.duplicated.add(key)

    def detail(self) -> dict[str, Any] | None:
        chosen = (sorted(self.duplicated) if self.config.measure == "duplicated"
                  else [k for k, t in self.pending.items()
                        if time.monotonic() - t > self.config.grace])
        return {"examples": chosen[:3]} if chosen else None

    def unit(self) -> str:
        return "count"

    async def close(self) -> None:
        await self.books.close()
