"""What every otherpay process shares: logging, pid file, pool, serving until SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import psycopg
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from psycopg_pool import AsyncConnectionPool

from tests.otherpay.config import Settings

EXIT_STARTUP_FAILED = 3
EXIT_BAD_CONFIG = 4
log = logging.getLogger("otherpay")
Background = Callable[[asyncio.Event], Coroutine[Any, Any, None]]
Handler = Callable[[web.Request], Awaitable[web.Response]]


def setup_logging(service: str) -> None:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    logging.basicConfig(stream=sys.stdout, level=logging.INFO,
                        format=f"%(asctime)s {service} %(levelname)s %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def write_pidfile(path: str) -> None:
    if not path:
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.with_name(f".{target.name}.{os.getpid()}")
    scratch.write_text(f"{os.getpid()}\n")
    scratch.replace(target)


def remove_pidfile(path: str) -> None:
    """Remove our pid file, unless a newer process has already written its own there."""
    if not path:
        return
    with contextlib.suppress(OSError, ValueError):
        if int(Path(path).read_text().strip()) == os.getpid():
            Path(path).unlink()


async def open_pool(url: str, size: int, deadline_s: float, wait: float = 5.0
                    ) -> AsyncConnectionPool:
    """A pool whose first connection succeeded; retried until `deadline_s` (start-up order).
    A request waits at most `wait` seconds for a connection (then 503)."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(url, connect_timeout=3) as conn:
                await conn.execute("SELECT 1")
            break
        except psycopg.Error as exc:
            if time.monotonic() >= deadline:
                raise
            log.info("database not reachable yet (%s); retrying", exc.__class__.__name__)
            await asyncio.sleep(0.5)
    pool = AsyncConnectionPool(url, min_size=1, max_size=size, timeout=wait, open=False,
                               kwargs={"autocommit": True, "connect_timeout": 3},
                               check=AsyncConnectionPool.check_connection)  # after an outage
    await pool.open(wait=True, timeout=10)
    return pool


async def database_answers(pool: AsyncConnectionPool) -> bool:
    try:
        async with asyncio.timeout(2), pool.connection(timeout=2) as conn:
            await conn.execute("SELECT 1")
        return True
    except (psycopg.Error, TimeoutError, OSError):
        return False


def request_counter(registry: CollectorRegistry) -> Counter:
    return Counter("otherpay_http_requests", "HTTP requests by route and status",
                   ["route", "method", "status"], registry=registry)


def count_requests(counter: Counter) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Middleware counting every answer by route template and status."""

    @web.middleware
    async def middleware(request: web.Request, handler: Callable[..., Awaitable[web.StreamResponse]]
                         ) -> web.StreamResponse:
        route = request.match_info.route.resource
        name = route.canonical if route is not None else "unmatched"
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            counter.labels(name, request.method, str(exc.status)).inc()
            raise
        except Exception:
            counter.labels(name, request.method, "500").inc()
            raise
        counter.labels(name, request.method, str(response.status)).inc()
        return response

    return middleware


def metrics_handler(registry: CollectorRegistry) -> Handler:
    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
    return metrics


async def serve(settings: Settings, app: web.Application, background: Background | None = None,
                on_stop: Callable[[], Awaitable[None]] | None = None) -> None:
    """Listen, write the pid file, run `background` until SIGTERM/SIGINT, then clean up."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    host, port = settings.listen
    await web.TCPSite(runner, host, port, reuse_address=True).start()
    write_pidfile(settings.pidfile)
    log.info("%s %s listening on %s:%d (pid %d, broken=%s)", settings.service, settings.instance,
             host, port, os.getpid(), ",".join(sorted(settings.broken)) or "no")
    task = asyncio.create_task(background(stop)) if background else None
    if task is not None:
        task.add_done_callback(lambda _: stop.set())  # background work that dies stops us
    try:
        await stop.wait()
        log.info("stopping")
        if task is not None:
            await _finish(task)
    finally:
        await runner.cleanup()
        if on_stop is not None:
            await on_stop()
        remove_pidfile(settings.pidfile)
        log.info("stopped")


async def _finish(task: asyncio.Task[None], grace: float = 10.0) -> None:
    """Let background work end its current step; its failure fails the process."""
    try:
        await asyncio.wait_for(task, grace)
    except TimeoutError:
        log.warning("background work did not stop within %.0fs; cancelled", grace)
