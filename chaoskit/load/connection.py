"""One keep-alive HTTP/1.1 connection: raw asyncio protocol, responses parsed with httptools.

Deliberately minimal (one request in flight, no redirects, no TLS): this is the load engine's hot
path and every call counts. It reports to its owner through three callbacks.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Protocol

import httptools


class ConnectionOwner(Protocol):
    def on_response(self, conn: Connection, status: int, body: bytes) -> None: ...
    def on_lost(self, conn: Connection) -> None: ...


class Connection(asyncio.Protocol):
    """A pooled connection; `busy` while a request is in flight."""

    __slots__ = (
        "_body",
        "_owner",
        "_parser",
        "_pending",
        "_transport",
        "attempt",
        "busy",
        "closed",
        "flow",
        "headers",
        "intended",
        "k",
        "request",
        "sent_at",

    )

    def __init__(self, owner: ConnectionOwner) -> None:
        self._owner = owner
        self._transport: asyncio.Transport | None = None
        # the parser calls back into this connection: a reference cycle, broken when the
        # connection ends, so that churn (timeouts, a failing server) leaves no garbage for
        # the collector, whose pauses would stall the schedule
        self._parser: httptools.HttpResponseParser | None = httptools.HttpResponseParser(self)
        self._body: list[bytes] = []
        self._pending: bytes | None = None
        self.busy = False
        self.closed = False
        self.intended = 0.0
        self.sent_at = 0.0
        self.flow = 0
        self.k = 0  # the arrival's index in the run: its idempotency key is <nonce>-<k>
        self.headers: dict[str, str] | None = None  # only a HeaderConnection collects them
        self.request = b""  # kept for a resend with the same idempotency key
        self.attempt = 0

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:  # small requests must not wait for Nagle
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._pending is not None:
            transport.write(self._pending)  # type: ignore[attr-defined]
            self._pending = None

    def data_received(self, data: bytes) -> None:
        if self._parser is None:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed:
            self.closed = True
            self._owner.on_lost(self)
        self.release()

    def release(self) -> None:
        """Break the parser's cycle: this connection is done (lost, or never made)."""
        self._parser = None
        self._transport = None

    # httptools callbacks (it binds only the ones defined: bodies cost only in BodyConnection)
    def on_message_complete(self) -> None:
        body = b""
        if self._body:  # only a BodyConnection ever fills it
            body = b"".join(self._body)
            self._body = []
        parser = self._parser
        assert parser is not None  # it is calling us
        status = parser.get_status_code()
        if not parser.should_keep_alive():
            self.closed = True  # the owner sees `closed` and does not pool it again
            self.abort()
        self._owner.on_response(self, status, body)

    def send(self, request: bytes) -> None:
        if self._transport is None:
            self._pending = request  # still connecting: written in connection_made
        else:
            self._transport.write(request)

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()


class BodyConnection(Connection):
    """A connection that keeps response bodies (to read ids of acknowledged flows)."""

    __slots__ = ()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)


class HeaderConnection(BodyConnection):
    """A connection that also keeps response headers (for values captured from one)."""

    __slots__ = ()

    def on_message_begin(self) -> None:
        self.headers = {}

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.headers is not None:
            self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")
