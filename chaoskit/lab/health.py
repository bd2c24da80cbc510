"""Waiting on /healthz and TCP ports: how the lab decides it is up."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx

from chaoskit.errors import PlatformError


def client(timeout: float = 1.0) -> httpx.AsyncClient:
    # trust_env=False: lab traffic must never go through a proxy from the environment.
    return httpx.AsyncClient(timeout=timeout, trust_env=False)


async def healthy(http: httpx.AsyncClient, url: str) -> bool:
    try:
        return (await http.get(url)).status_code == 200
    except httpx.HTTPError:
        return False


async def wait_healthy(urls: dict[str, str], timeout: float,
                       dead: Callable[[], list[str]] = list) -> dict[str, float]:
    """Poll every url until it answers 200; returns seconds each took. Raises with the laggards,
    or at once when `dead()` names processes that exited (no point waiting for them)."""
    started = time.monotonic()
    took: dict[str, float] = {}
    async with client(0.5) as http:
        while len(took) < len(urls):
            pending = [name for name in urls if name not in took]
            results = await asyncio.gather(*(healthy(http, urls[n]) for n in pending))
            for name, ok in zip(pending, results, strict=True):
                if ok:
                    took[name] = time.monotonic() - started
            if len(took) < len(urls):
                if exited := dead():
                    raise PlatformError(f"exited while starting: {', '.join(exited)}",
                                        hint="read their logs with `chaoskit lab logs SERVICE`")
                if time.monotonic() - started > timeout:
                    missing = sorted(set(urls) - set(took))
                    raise PlatformError(f"not healthy after {timeout:g}s: {', '.join(missing)}",
                                        hint="read their logs with `chaoskit lab logs SERVICE`")
                await asyncio.sleep(0.05)
    return took


async def wait_port(host: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            _, writer = await asyncio.open_connection(host, port)
            writer.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise PlatformError(f"nothing listens on {host}:{port} after {timeout:g}s",
                                    hint="read the lab logs (`chaoskit lab logs`)") from None
            await asyncio.sleep(0.05)

