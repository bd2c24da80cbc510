"""A loopback TCP port forwarding to a Unix socket, so Toxiproxy (TCP only) can front it."""

from __future__ import annotations

import asyncio
import contextlib
import threading


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()


class UnixBridge:
    """Pipes each connection to `address` (127.0.0.1, a free port) to `socket_path`;
    the event loop runs in its own thread."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self.address = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="unix-bridge", daemon=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ends = [writer]
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(self.socket_path)
            ends.append(up_writer)
            tasks = [asyncio.create_task(_pipe(reader, up_writer)),
                     asyncio.create_task(_pipe(up_reader, writer))]
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in tasks:
                    task.cancel()
        except OSError:
            pass
        finally:
            for end in ends:
                end.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.address = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
        self._ready.set()
        self._loop.run_forever()
        server.close()
        pending = asyncio.all_tasks(self._loop)
        for task in pending:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.close()

    def __enter__(self) -> UnixBridge:
        self._thread.start()
        if not self._ready.wait(5):
            raise RuntimeError("the Unix socket bridge did not start")
        return self

    def __exit__(self, *_: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
