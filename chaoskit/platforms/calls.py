"""Calling blocking platform code from the engine's event loop, always with a time bound.

Each call gets its own daemon thread rather than a slot of a shared pool: a call that hangs
(a cluster API without a timeout, a wedged lab) must not starve the revert that comes after it.
The thread of a call that timed out is left behind; the run goes on to its rollback.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from chaoskit.errors import PlatformError

T = TypeVar("T")
PLATFORM_CALL_TIMEOUT = 60.0  # seconds; generous for a drain or a node restart


async def blocking(fn: Callable[..., T], *args: Any, timeout: float = PLATFORM_CALL_TIMEOUT,
                   what: str = "") -> T:
    """`fn(*args)` in its own thread; PlatformError when it takes longer than `timeout`."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not future.done():
            outcome()

    def hand_over(outcome: Callable[[], None]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
            loop.call_soon_threadsafe(settle, outcome)

    def work() -> None:
        try:
            value = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            hand_over(partial(future.set_exception, exc))
            return
        hand_over(partial(future.set_result, value))

    threading.Thread(target=work, name=f"platform-{what or getattr(fn, '__name__', 'call')}",
                     daemon=True).start()
    try:
        return await asyncio.wait_for(future, timeout)
    except TimeoutError:
        raise PlatformError(f"{what or getattr(fn, '__name__', 'a platform call')} did not "
                            f"finish within {timeout:g}s",
                            hint="the platform may be hung; the run goes on to its rollback "
                                 "(check it, then `chaoskit recover`)") from None
