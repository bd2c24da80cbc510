"""`type: acknowledged`: every request clients were told succeeded is in the books, once, and
moved the customer's money the way they were told.

    probe: {type: acknowledged, measure: missing}       # and: duplicated, misdirected

The load engine writes each acknowledged request (its key, flow and captured values) as it
happens; this probe looks each one up with the system's `acknowledged:` query. Each sample
checks the new ones, those still in flight, and a rotating slice of the most recent found (a
duplicate may be booked later), so a sample costs the same at the start of a game day and
hours into it, and so does the probe's memory. A sample checks at most 5,000 new ones.

    missing      acknowledged, and still not in the books `grace` after the answer
    duplicated   in the books more than once
    misdirected  done, but the books move the customer's money other than the flow's
                 `moves:` says (the other way, not at all, or not by the request's amount):
                 what clients were told against the balances in the books. Needs the
                 query's `moved` column; no data until a request with `moves:` is done
"""

from __future__ import annotations

import bisect
import time
from collections import OrderedDict
from decimal import Decimal, InvalidOperation
from itertools import islice
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from chaoskit.errors import ProbeError
from chaoskit.load.recorder import AckReader
from chaoskit.probes.base import ProbeConfig, ProbeContext
from chaoskit.probes.books import MYSQL, Books, database_url
from chaoskit.spec.units import PositiveDuration

BATCH = 1000  # keys per query
NEW_PER_SAMPLE = 5  # batches of new keys a sample checks
RECHECK_PER_SAMPLE = 1  # batches of found keys it checks again
# Found keys are re-checked, a rotating batch per sample, for a minute after they were found (a
# duplicate is booked soon after the original: a resend after the client's timeout, a
# redelivery), and at most the most recent RECHECKED of them: memory follows the rate, not the
# run's length (~12,000 keys at 200/s, ~120,000 at 2,000/s, flat after the first minute).
RECHECK_FOR = 60.0
RECHECKED = 200_000
JUDGED_KEPT = 10_000  # judged keys kept by name (the count of all is kept)


EXAMPLES = 3
SIGN = {"from-customer": -1, "to-customer": 1}  # of the customer's net change


class AcknowledgedProbeConfig(ProbeConfig):
    measure: Literal["missing", "duplicated", "misdirected"] = "missing"
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
        self._reader = AckReader()

    def new(self) -> list[tuple[str, str]]:
        """(key, flow) of the acknowledgements written since the last call."""
        if not self.path.exists():
            return []
        with self.path.open("rb") as file:
            file.seek(self.offset)
            chunk = file.read()
        complete = chunk[:chunk.rfind(b"\n") + 1]
        self.offset += len(complete)
        keys = []
        for ack in self._reader.read(complete.splitlines()):
            value = ack.key if self.key == "key" else ack.captured.get(self.key)
            if value is not None:
                keys.append((str(value), ack.flow))
        return keys


def misdirection(moves: str, moved: Any, amount: Any) -> str | None:
    """What is wrong with the customer's net change `moved` for a request whose flow `moves`
    money that way (and by `amount`, when the books say), or None when it agrees."""
    try:
        change = Decimal(str(moved))
        expected = None if amount is None else abs(Decimal(str(amount)))
    except InvalidOperation:
        return f"moved {moved!r} is not a number"
    if change == 0:
        return "no money moved for the customer"
    if (change > 0) != (SIGN[moves] > 0):
        return f"money moved {'to' if change > 0 else 'from'} the customer, not {moves}"
    if expected is not None and abs(change) != expected:
        return f"moved {abs(change)} for a request of {expected}"
    return None


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
        flows = context.system.flows if context.system else {}
        self.moves = {name: f.moves for name, f in flows.items() if f.moves}
        if config.measure == "misdirected" and not self.moves:
            raise ProbeError("no flow of the system declares which way it moves money",
                             hint="add `moves: from-customer` (a payment) or `moves: "
                                  "to-customer` (a refund) to the flows clients send")
        self.spec = spec
        self.acks = AckFile(path, spec.key)
        self.books = Books(database_url(config.database or spec.database, context.system,
                                        context.platform), config.timeout)
        self.pending: OrderedDict[str, float] = OrderedDict()  # key -> when it was read
        self.flow_of: dict[str, str] = {}  # key -> the flow clients were told succeeded
        self.found: list[str] = []
        self.found_at: list[float] = []  # when each was found (monotonic, ascending)
        self.duplicated: set[str] = set()
        self.in_flight: OrderedDict[str, None] = OrderedDict()  # found, with moves, not done
        self.judged: set[str] = set()  # requests with `moves:` found done (the first ones)
        self.judged_count = 0  # all of them: the evidence
        self.misdirected: dict[str, dict[str, str]] = {}  # key -> what the books show
        self._recheck = 0

    async def sample(self) -> float | None:
        now = time.monotonic()
        for key, flow in self.acks.new():
            self.pending.setdefault(key, now)
            self.flow_of.setdefault(key, flow)
        new = list(islice(self.pending, BATCH * NEW_PER_SAMPLE))
        unsettled = list(islice(self.in_flight, BATCH * NEW_PER_SAMPLE))
        again = self._slice()
        if not new and not again and not self.found:
            return None  # nothing acknowledged yet: nothing to measure
        await self._look_up(new + unsettled + again, now)
        self._forget_old(now)
        if self.config.measure == "duplicated":
            return float(len(self.duplicated))
        if self.config.measure == "misdirected":
            return float(len(self.misdirected)) if self.judged else None
        return float(self._past_grace(now))

    def _past_grace(self, now: float) -> int:
        """Keys still not found `grace` after they were read: the oldest ones (pending is in
        the order they were read), so this costs what is missing, not what was acknowledged."""
        count = 0
        for read_at in self.pending.values():
            if now - read_at <= self.config.grace:
                break
            count += 1
        return count

    def _forget_old(self, now: float) -> None:
        """Stop re-checking keys found over RECHECK_FOR ago (or beyond RECHECKED), in batches
        so the cost is amortized."""
        cut = max(bisect.bisect_left(self.found_at, now - RECHECK_FOR),
                  len(self.found) - RECHECKED)
        if cut >= BATCH or (cut > 0 and 2 * cut >= len(self.found)):
            del self.found[:cut]
            del self.found_at[:cut]
            self._recheck = max(0, self._recheck - cut)

    def _slice(self) -> list[str]:
        if not self.found:
            return []
        size = BATCH * RECHECK_PER_SAMPLE
        start = self._recheck % len(self.found)
        self._recheck = start + size
        return self.found[start:start + size]

    async def _look_up(self, keys: list[str], now: float) -> None:
        for i in range(0, len(keys), BATCH):
            batch = keys[i:i + BATCH]
            value: Any = tuple(batch) if self.books.dialect is MYSQL else batch
            rows = await self.books.rows(self.spec.query, {"keys": value})
            if rows and self.config.measure == "misdirected" and "moved" not in rows[0]:
                raise ProbeError("the `acknowledged:` query returns no `moved` column",
                                 hint="return the customer's net change in the books per "
                                      "request as `moved` (NULL while it is in flight)")
            by_key = {str(r["key"]): r for r in rows}
            for key in batch:
                row = by_key.get(key)
                self._note(key, int(row["n"] or 0) if row else 0, now)
                if row is not None and "moved" in row:
                    self._judge(key, row)
                if key not in self.pending and key not in self.in_flight:
                    self.flow_of.pop(key, None)  # settled: its flow is no longer needed

    def _note(self, key: str, count: int, now: float) -> None:
        if count >= 1 and self.pending.pop(key, None) is not None:
            self.found.append(key)
            self.found_at.append(now)  # the sample's time: found_at stays ascending
        if count > 1:
            self.duplicated.add(key)

    def _judge(self, key: str, row: dict[str, Any]) -> None:
        """Once the request is done, its money must have moved as its flow says."""
        moves = self.moves.get(self.flow_of.get(key, ""))
        if moves is None or key in self.misdirected:
            return
        if row["moved"] is None:  # still in flight (or failed: then no money moves)
            self.in_flight[key] = None
            return
        self.in_flight.pop(key, None)
        self.judged_count += 1
        if len(self.judged) < JUDGED_KEPT:
            self.judged.add(key)
        wrong = misdirection(moves, row["moved"], row.get("amount"))
        if wrong:
            self.misdirected[key] = {"key": key, "flow": self.flow_of.get(key, ""),
                                     "moves": moves, "moved": str(row["moved"]),
                                     "amount": str(row.get("amount")), "problem": wrong}

    def detail(self) -> dict[str, Any] | None:
        if self.config.measure == "misdirected":
            shown = list(self.misdirected.values())[:EXAMPLES]
            return {"examples": shown} if shown else None
        chosen = (sorted(self.duplicated) if self.config.measure == "duplicated"
                  else [k for k, t in self.pending.items()
                        if time.monotonic() - t > self.config.grace])
        return {"examples": chosen[:EXAMPLES]} if chosen else None

    def unit(self) -> str:
        return "requests"

    async def close(self) -> None:
        await self.books.close()
