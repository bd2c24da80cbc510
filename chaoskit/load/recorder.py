"""What a worker records: per-window counters by flow, HDR latency buckets, acknowledgements."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 600_000_000  # 10 minutes: anything slower is recorded as 10 minutes
DIGITS = 3


def new_histogram() -> HdrHistogram:
    """Microsecond histogram with 3 significant digits (0.1% value resolution)."""
    return HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)


# Bucket layout of an HDR histogram with lowest value 1 and 3 significant digits: 2048 sub-buckets
# per bucket, the upper half of each bucket doubling the step. Computing the index with
# int.bit_length is ~10x cheaper than HdrHistogram.record_value, which matters at 50k req/s.
_SUB_BITS = 11
_HALF_BITS = _SUB_BITS - 1


class BucketCounts:
    """Hot-path recorder: counts by HDR bucket index in a dict, drained into a real histogram."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}

    def add(self, seconds: float) -> None:
        value = int(seconds * 1e6)
        if value < LOWEST_US:
            value = LOWEST_US
        elif value > HIGHEST_US:
            value = HIGHEST_US
        shift = value.bit_length() - _SUB_BITS
        index = (shift << _HALF_BITS) + (value >> shift) if shift > 0 else value
        self.counts[index] = self.counts.get(index, 0) + 1

    def drain_into(self, hist: HdrHistogram) -> None:
        fill(hist, self.counts.items())
        self.counts = {}

    def merge(self, pairs: dict[int, int]) -> None:
        counts = self.counts
        for index, count in pairs.items():
            counts[index] = counts.get(index, 0) + count

    def pairs(self) -> list[list[int]]:
        """JSON-able [index, count] pairs: a few hundred numbers instead of an encoded histogram."""
        return [[i, c] for i, c in self.counts.items()]


def highest_at_index(index: int) -> int:
    """The highest value that falls in bucket index `index` (HDR's highest equivalent value)."""
    if index < (1 << _SUB_BITS):
        return index
    shift = (index >> _HALF_BITS) - 1
    return ((index - (shift << _HALF_BITS)) << shift) + (1 << shift) - 1


def percentiles_us(counts: dict[int, int], percentiles: list[float]) -> dict[float, int]:
    """Values at percentiles as HdrHistogram.get_value_at_percentile computes them, without
    walking its whole counts array (which takes milliseconds per call in pure Python)."""
    total = sum(counts.values())
    if not total:
        return {}
    ordered = sorted(counts.items())
    values: dict[float, int] = {}
    for percentile in sorted(percentiles):
        target = max(int(min(percentile, 100.0) * total / 100 + 0.5), 1)
        seen = 0
        for index, count in ordered:
            seen += count
            if seen >= target:
                values[percentile] = (highest_at_index(index) if percentile
                                      else value_at_index(index))
                break
    return values


def fill(hist: HdrHistogram, pairs: Iterable[tuple[int, int] | list[int]]) -> HdrHistogram:
    """Record bucket-index counts (from BucketCounts) into an HDR histogram."""
    for index, count in pairs:
        hist.record_value(value_at_index(index), count)
    return hist


def value_at_index(index: int) -> int:
    """The lowest value that falls in bucket index `index` (inverse of BucketCounts.add)."""
    if index < (1 << _SUB_BITS):
        return index
    shift = (index >> _HALF_BITS) - 1
    return (index - (shift << _HALF_BITS)) << shift


class Tally:
    """Counters of one 100 ms window, indexed by flow; `latency` holds its completions."""

    __slots__ = ("behind", "capped", "dropped", "errors", "intended", "late", "latency", "ok",
                 "retries", "sent", "starved", "timeouts")
    latency: BucketCounts

    def __init__(self, flows: int) -> None:
        self.intended = [0] * flows
        self.sent = [0] * flows
        self.ok = [0] * flows
        self.errors = [0] * flows
        self.dropped = [0] * flows
        self.late = 0  # sent later than late_after after the intended time, for any reason
        # arrivals chaoskit itself did not send on time: reached late (its CPU was short) or
        # dropped at its in-flight cap. Its own shortfall, never the system's.
        self.behind = 0
        self.capped = [0] * flows  # of the dropped: never sent, the in-flight cap was reached
        self.starved = [0] * flows  # not sent: a value they need was never captured
        self.timeouts = 0
        self.retries = 0  # resends of a failed request with its key (not new arrivals)
        self.latency = BucketCounts()

    def message(self, window: int) -> dict[str, object]:
        """The JSON-able report of this window sent to the parent process."""
        return {"type": "window", "w": window, "intended": self.intended, "sent": self.sent,
                "ok": self.ok, "errors": self.errors, "dropped": self.dropped,
                "capped": self.capped, "starved": self.starved, "late": self.late,
                "behind": self.behind,
                "timeouts": self.timeouts, "retries": self.retries,
                "latency": self.latency.pairs()}


PER_SECOND = 10  # windows per run second (100 ms each)


class WindowBook:
    """Tallies by 100 ms window of run time, emitted in order once their time has passed.

    Arrivals are booked by intended time (`due`), everything that happens by when it happens
    (`now`): a client that falls behind shows a dip in one window and a surplus in the next.
    """

    def __init__(self, flows: int) -> None:
        self._flows = flows
        self._open: dict[int, Tally] = {}
        self.next_to_close = 0
        self._now_tally, self._now_end = Tally(0), -1.0
        self._due_tally, self._due_end = Tally(0), -1.0

    def now(self, t: float) -> Tally:
        if t >= self._now_end:
            self._now_tally, self._now_end = self._lookup(t)
        return self._now_tally

    def due(self, t: float) -> Tally:
        if t >= self._due_end:  # arrivals come in time order: the cache only moves forward
            self._due_tally, self._due_end = self._lookup(t)
        return self._due_tally

    def _lookup(self, t: float) -> tuple[Tally, float]:
        w = max(int(t * PER_SECOND), self.next_to_close)  # never into a closed window
        tally = self._open.get(w)
        if tally is None:
            tally = self._open[w] = Tally(self._flows)
        return tally, (w + 1) / PER_SECOND

    def close_until(self, t: float) -> list[tuple[int, Tally]]:
        """Windows that end at or before `t`, empty ones included, oldest first."""
        closed = []
        while (self.next_to_close + 1) / PER_SECOND <= t:
            w = self.next_to_close
            tally = self._open.pop(w) if w in self._open else Tally(self._flows)
            closed.append((w, tally))
            self.next_to_close += 1
        if closed:
            self._now_end = self._due_end = -1.0  # caches may point at a closed window
        return closed

    def close_all(self) -> list[tuple[int, Tally]]:
        last = max(self._open, default=self.next_to_close - 1)
        return self.close_until((last + 1) / PER_SECOND)


ACK_FORMAT = 2


class AckLog:
    """Acknowledged requests (the evidence the `acknowledged` probe checks against the books),
    appended compactly: about 16 bytes per request instead of a JSON object of ~100.

    JSON lines: a header object `{"acks": 2, "nonce": ..., "flows": [...], "captures": [...]}`
    gives what the records after it share; each record is `[k, flow, status]` or, with
    captured values, `[k, flow, status, value, ...]` in the header's `captures` order (null:
    not captured). The key is `<nonce>-<k>`, exactly the Idempotency-Key sent. Only the
    captures named in the header are kept (those the probe looks up), not every value.
    Read with AckReader, which also reads the older one-object-per-line format.

    Workers share one file; each flush is a single O_APPEND write of whole lines, which Linux
    keeps contiguous, so lines from different workers never interleave mid-line. The workers of
    one load run write the same header; load runs of one experiment come one after another.
    """

    def __init__(self, path: str | None, *, nonce: str = "", flows: list[str] | None = None,
                 captures: list[str] | None = None) -> None:
        self.enabled = path is not None
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) if path else -1
        self._flows = {name: i for i, name in enumerate(flows or [])}
        self._captures = list(captures or [])
        header = {"acks": ACK_FORMAT, "nonce": nonce, "flows": list(flows or []),
                  "captures": self._captures}
        self._lines: list[str] = [json.dumps(header, separators=(",", ":")) + "\n"]
        self._headed = False
        self.count = 0

    def add(self, k: int, flow: str, captured: dict[str, object], status: int) -> None:
        record: list[object] = [k, self._flows[flow], status]
        if self._captures and captured:
            record += [captured.get(name) for name in self._captures]
        self._lines.append(json.dumps(record, separators=(",", ":")) + "\n")
        self.count += 1

    def flush(self) -> None:
        if self._fd >= 0 and len(self._lines) > (0 if self._headed else 1):
            os.write(self._fd, "".join(self._lines).encode())
            self._lines = []
            self._headed = True

    def close(self) -> None:
        self.flush()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def ack_key(nonce: str, k: int) -> str:
    """The Idempotency-Key of arrival k in the load run with this nonce."""
    return f"{nonce}-{k}"


@dataclass(frozen=True)
class Ack:
    key: str
    flow: str
    status: int | None
    captured: dict[str, Any]


class AckReader:
    """Acknowledgements from the lines of an AckLog file, read on as it grows; both formats
    (this one's, and one JSON object per line with key, flow, status, captured). A torn line
    (a writer that died mid-write) is not an acknowledgement."""

    def __init__(self) -> None:
        self._nonce = ""
        self._flows: list[str] = []
        self._captures: list[str] = []

    def read(self, lines: Iterable[bytes]) -> Iterator[Ack]:
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, list):
                yield self._compact(record)
            elif isinstance(record, dict) and "acks" in record:
                self._nonce = str(record.get("nonce", ""))
                self._flows = list(record.get("flows") or [])
                self._captures = list(record.get("captures") or [])
            elif isinstance(record, dict) and "key" in record:
                yield Ack(str(record["key"]), str(record.get("flow", "")), record.get("status"),
                          dict(record.get("captured") or {}))

    def _compact(self, record: list[Any]) -> Ack:
        k, flow, status, *values = record
        name = self._flows[flow] if isinstance(flow, int) and flow < len(self._flows) else ""
        captured = {c: v for c, v in zip(self._captures, values, strict=False) if v is not None}
        return Ack(ack_key(self._nonce, int(k)), name, status, captured)
