"""Requests sent through a proxy to see a network fault act: timed round trips and connect checks.

Two probe kinds, each one persistent connection: `echo` (a TCP upstream that sends back what it
gets: a short line per round trip) and `http` (an HTTP/1.1 upstream: keep-alive `GET /`, any
status, the answer read to its Content-Length). HTTP is spoken by hand on purpose: a full client
costs a millisecond of CPU per request, and on a busy machine that noise swamps a 2 ms goal.
A session is opened before a toxic is added, so it also shows the toxic reaching a connection
that was already open.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from typing import Literal, Protocol

ProbeKind = Literal["echo", "http"]
_PING = b"chaoskit-probe\n"


class UnreadableAnswer(Exception):
    """The upstream answered something the probe kind cannot time (e.g. not HTTP)."""


# What a probe may run into without it being chaoskit's bug: the fault itself, a wrong probe kind.
PROBE_ERRORS = (OSError, TimeoutError, EOFError, asyncio.LimitOverrunError, UnreadableAnswer)


class RoundTrips(Protocol):
    async def once(self) -> float:
        """Seconds from sending one request to having its whole answer."""
        ...

    async def close(self) -> None: ...


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    return ("127.0.0.1" if host in {"0.0.0.0", "::"} else host), int(port)


class EchoRoundTrips:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 timeout: float) -> None:
        self._reader, self._writer, self._timeout = reader, writer, timeout

    async def once(self) -> float:
        started = time.perf_counter()
        self._writer.write(_PING)
        await self._writer.drain()
        await asyncio.wait_for(self._reader.readexactly(len(_PING)), self._timeout)
        return time.perf_counter() - started

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError):  # the peer may have reset it: nothing left to close
            await self._writer.wait_closed()


def _content_length(head: bytes) -> int:
    if not head.startswith(b"HTTP/1."):
        raise UnreadableAnswer(f"not an HTTP answer: {head[:40]!r}")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            return int(value.strip())
    raise UnreadableAnswer("the HTTP answer has no Content-Length; use probe: echo or none")


class HttpRoundTrips(EchoRoundTrips):
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 timeout: float, host: str) -> None:
        super().__init__(reader, writer, timeout)
        self._request = (f"GET / HTTP/1.1\r\nHost: {host}\r\n"
                         "User-Agent: chaoskit-probe\r\n\r\n").encode()

    async def once(self) -> float:
        started = time.perf_counter()
        self._writer.write(self._request)
        await self._writer.drain()
        head = await asyncio.wait_for(self._reader.readuntil(b"\r\n\r\n"), self._timeout)
        body = _content_length(head)
        await asyncio.wait_for(self._reader.readexactly(body), self._timeout)
        return time.perf_counter() - started


async def open_round_trips(kind: ProbeKind, address: str, timeout: float = 5.0) -> RoundTrips:
    """A warmed-up session: its first (connection-setting) round trip is already done."""
    host, port = split_address(address)
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    session: RoundTrips
    if kind == "echo":
        session = EchoRoundTrips(reader, writer, timeout)
    else:
        session = HttpRoundTrips(reader, writer, timeout, host)
    try:
        await session.once()
    except BaseException:
        await session.close()
        raise
    return session


async def sample_round_trips(session: RoundTrips, count: int, budget: float) -> list[float]:
    """Up to `count` round trips (at least 3), stopping early once `budget` seconds are spent."""
    samples: list[float] = []
    deadline = time.perf_counter() + budget
    while len(samples) < count and (len(samples) < 3 or time.perf_counter() < deadline):
        samples.append(await session.once())
    return samples


async def added_delay(kind: ProbeKind, through: str, direct: str, count: int, budget: float,
                      timeout: float = 5.0) -> tuple[float, float, float]:
    """Seconds a proxy adds to a round trip, as (added, through p50, direct p50).

    Requests alternate through the proxy and straight to its upstream, and `added` is the median
    of the pairs' differences, so load on the machine lands on both sides of each pair alike.
    """
    proxied = await open_round_trips(kind, through, timeout)
    try:
        straight = await open_round_trips(kind, direct, timeout)
    except BaseException:
        await proxied.close()
        raise
    pairs: list[tuple[float, float]] = []
    deadline = time.perf_counter() + budget
    try:
        while len(pairs) < count and (len(pairs) < 3 or time.perf_counter() < deadline):
            pairs.append((await proxied.once(), await straight.once()))
    finally:
        await proxied.close()
        await straight.close()
    return (statistics.median(a - b for a, b in pairs),
            statistics.median(a for a, _ in pairs), statistics.median(b for _, b in pairs))


async def refuses_connections(address: str, timeout: float = 1.0) -> bool:
    """True when a TCP connect to `address` is refused or reset (a disabled proxy)."""
    host, port = split_address(address)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (ConnectionRefusedError, ConnectionResetError):
        return True
    except TimeoutError:  # a connect that hangs is not a refusal: something else is wrong
        return False
    writer.close()
    return False


class ActivationWatch:
    """Times the first request, on a connection open before the toxic, that shows its delay."""

    def __init__(self, session: RoundTrips, baseline: float, added: float) -> None:
        self.session, self.baseline = session, baseline
        self.threshold = baseline + added / 2  # half the asked delay: clear of loopback noise

    @classmethod
    async def open(cls, kind: ProbeKind, address: str,
                   added: float) -> tuple[ActivationWatch | None, dict[str, str]]:
        """A watch with its baseline measured, or None and why not (the fault goes on anyway)."""
        try:
            session = await open_round_trips(kind, address, timeout=2.0 + 2 * added)
        except PROBE_ERRORS as exc:
            return None, {"probe_error": f"no {kind} probe through {address}: {exc!r}"}
        try:
            baseline = statistics.median(await sample_round_trips(session, 5, 1.0))
        except BaseException as exc:
            await session.close()
            if isinstance(exc, PROBE_ERRORS):
                return None, {"probe_error": f"{kind} probe through {address} failed: {exc!r}"}
            raise
        return cls(session, baseline, added), {}

    async def first_affected(self, since: float, limit: int = 20,
                             budget: float = 3.0) -> dict[str, float | int | str | None]:
        """Milliseconds from `since` (the API call) to sending the first delayed request."""
        deadline, unaffected = time.perf_counter() + budget, 0
        try:
            while unaffected < limit and time.perf_counter() <= deadline:
                sent = time.perf_counter()
                took = await self.session.once()
                if took >= self.threshold:
                    return {"activation_ms": round((sent - since) * 1000, 3),
                            "unaffected_requests": unaffected,
                            "baseline_rtt_ms": round(self.baseline * 1000, 3),
                            "first_affected_rtt_ms": round(took * 1000, 3)}
                unaffected += 1
        except PROBE_ERRORS as exc:
            return {"activation_ms": None, "probe_error": repr(exc)}
        return {"activation_ms": None, "unaffected_requests": unaffected}

    async def close(self) -> None:
        await self.session.close()
