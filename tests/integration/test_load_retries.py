"""Client resends: a failed request goes again later with the same Idempotency-Key."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator

import pytest

from chaoskit.load.drive import drive
from chaoskit.spec.load import LoadSpec
from tests.fixtures.systems import simple_flows

pytestmark = pytest.mark.integration


class FlakyGateway:
    """Answers 503 the first time it sees a key and 201 after: a request that needs one retry."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode().lower().split("\r\n")
                fields = dict(line.split(": ", 1) for line in head[1:] if ": " in line)
                await reader.readexactly(int(fields.get("content-length", 0)))
                key = fields["idempotency-key"]
                self.seen[key] += 1
                status = b"503 Busy" if self.seen[key] == 1 else b"201 Created"
                body = b'{"id":"pay_1"}'
                writer.write(b"HTTP/1.1 %s\r\nContent-Length: %d\r\n\r\n%s" % (
                    status, len(body), body))
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    def __enter__(self) -> FlakyGateway:
        self._thread.start()
        self._ready.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


@pytest.fixture
def flaky() -> Iterator[FlakyGateway]:
    with FlakyGateway() as server:
        yield server


def _run(url: str, retries: int) -> tuple[dict, list[dict]]:
    spec = LoadSpec.model_validate({"duration": "2s", "profile": [{"shape": "constant",
                                    "rate": "100/s"}], "retries": retries, "retry_after": "50ms",
                                    "workers": 1})
    windows: list[dict] = []

    async def go() -> object:
        return await drive(spec, url, simple_flows(), seed=1, stop=asyncio.Event(),
                           on_window=windows.append, ack_path=None)
    summary = asyncio.run(go())
    return vars(summary), windows


def test_a_failed_request_is_resent_once_with_the_same_key(flaky: FlakyGateway) -> None:
    totals, windows = _run(f"http://127.0.0.1:{flaky.port}", retries=1)
    assert totals["sent"] == 200 and totals["ok"] == 200 and totals["errors"] == 0
    assert set(flaky.seen.values()) == {2}  # every key came exactly twice: once, and its resend
    assert sum(w["retries"] for w in windows) == 200


def test_without_retries_the_failure_is_what_the_client_sees(flaky: FlakyGateway) -> None:
    totals, windows = _run(f"http://127.0.0.1:{flaky.port}", retries=0)
    assert totals["errors"] == 200 and totals["ok"] == 0
    assert set(flaky.seen.values()) == {1}
    assert sum(w["retries"] for w in windows) == 0
