"""Requests sent through a proxy to see a network fault act: timed round trips and connect checks.

Two probe kinds: `echo` (a TCP upstream that sends back what it gets: one persistent connection,
a short line per round trip) and `http` (any HTTP upstream: keep-alive `GET /`, any status).
A session is opened before a toxic is added, so it also shows the toxic reaching a connection
that was already open.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Literal, Protocol

import httpx

ProbeKind = Literal["echo", "http"]
_PING = b"chaoskit-probe\n"


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
        try:
            await self._writer.wait_closed()
        except OSError:  # the peer may already have reset it: nothing left to close
            pass


class HttpRoundTrips:
    def __init__(self, address: str, timeout: float) -> None:
        host, port = split_address(address)
        self._client = httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=timeout)

    async def once(self) -> float:
        started = time.perf_counter()
        response = await self._client.get("/")
        await response.aread()
        return time.perf_counter() - started

    async def close(self) -> None:
        await self._client.aclose()


async def open_round_trips(kind: ProbeKind, address: str, timeout: float = 5.0) -> RoundTrips:
    """A warmed-up session: its first (connection-setting) round trip is already done."""
    session: RoundTrips
    if kind == "echo":
        host, port = split_address(address)
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        session = EchoRoundTrips(reader, writer, timeout)
    else:
        session = HttpRoundTrips(address, timeout)
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


async def median_round_trip(kind: ProbeKind, address: str, count: int, budget: float) -> float:
    session = await open_round_trips(kind, address)
    try:
        return statistics.median(await sample_round_trips(session, count, budget))
    finally:
        await session.close()


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
    async def open(cls, kind: ProbeKind, address: str, added: float) -> ActivationWatch:
        session = await open_round_trips(kind, address)
        try:
            baseline = statistics.median(await sample_round_trips(session, 5, 1.0))
        except BaseException:
            await session.close()
            raise
        return cls(session, baseline, added)

    async def first_affected(self, since: float, limit: int = 20,
                             budget: float = 3.0) -> dict[str, float | int | None]:
        """Milliseconds from `since` (the API call) to sending the first delayed request."""
        deadline = time.perf_counter() + budget
        for unaffected in range(limit):
            sent = time.perf_counter()
            took = await self.session.once()
            if took >= self.threshold:
                return {"activation_ms": round((sent - since) * 1000, 3),
                        "unaffected_requests": unaffected,
                        "baseline_rtt_ms": round(self.baseline * 1000, 3),
                        "first_affected_rtt_ms": round(took * 1000, 3)}
            if time.perf_counter() > deadline:
                break
        return {"activation_ms": None, "unaffected_requests": unaffected + 1,
                "baseline_rtt_ms": round(self.baseline * 1000, 3)}

    async def close(self) -> None:
        await self.session.close()
