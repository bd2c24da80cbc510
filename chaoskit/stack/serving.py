"""HTTP serving shared by every stack process: /healthz, /metrics, and uvicorn on uvloop."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from chaoskit.stack.config import StackConfig
from chaoskit.stack.metrics import CONTENT_TYPE, StackMetrics

log = logging.getLogger("chaoskit.stack")
Handler = Callable[[Request], Awaitable[Response]]
Status = Callable[[], dict[str, Any]]


def ops_routes(service: str, config: StackConfig, metrics: StackMetrics,
               status: Status | None = None,
               unready: Callable[[], str | None] | None = None) -> list[Route]:
    """GET /healthz (200 once the app started, with who/where it is; 503 with the reason while
    `unready` says it cannot serve) and GET /metrics."""

    async def healthz(_: Request) -> Response:
        body = {"status": "ok", "service": service, "node": config.node,
                "instance": config.instance, **(status() if status else {})}
        why = unready() if unready else None
        if why is not None:
            return JSONResponse({**body, "status": "unready", "why": why}, status_code=503)
        return JSONResponse(body)

    async def prometheus(_: Request) -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE)

    return [Route("/healthz", healthz), Route("/metrics", prometheus)]


def timed(service: str, route: str, metrics: StackMetrics, handler: Handler) -> Handler:
    """Wrap a handler so its latency lands in payments_request_duration_seconds by route."""

    async def wrapper(request: Request) -> Response:
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status_code
            return response
        finally:
            metrics.observe_request(service, route, status, time.perf_counter() - started)

    return wrapper


def supervise(app: Any, task: asyncio.Task[Any]) -> asyncio.Task[Any]:
    """A background loop that dies of a bug takes the process down (exit 1) rather than leaving
    a healthy-looking process that does no work: the lab and Kubernetes then see the crash."""

    def check(done: asyncio.Task[Any]) -> None:
        if done.cancelled() or done.exception() is None:
            return
        log.error("background task failed; stopping", exc_info=done.exception())
        app.state.exit_status = 1
        app.state.server.should_exit = True

    task.add_done_callback(check)
    return task


def serve(app: Any, config: StackConfig) -> None:
    """Serve until SIGTERM/SIGINT (or until the app sets `app.state.server.should_exit`)."""
    host, port = config.listen_address
    uv_config = uvicorn.Config(app, host=host, port=port, loop="uvloop", http="httptools",
                               lifespan="on", access_log=False, log_level="warning",
                               timeout_graceful_shutdown=5,
                               # per-request work nobody reads here: X-Forwarded-* parsing
                               # (HAProxy balances, we need no client address) and extra headers
                               proxy_headers=False, server_header=False, date_header=False)
    server = uvicorn.Server(uv_config)
    app.state.server = server
    logging.basicConfig(level=logging.INFO,
                        format=f"%(asctime)s {config.instance} %(levelname)s %(message)s")
    server.run()
