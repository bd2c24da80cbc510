"""The open-model loop of one worker: send on schedule whatever the responses do, and record it.

Requests leave when the schedule says, never when a response frees a slot: a slow system gets
no relief. Latency is measured from the *intended* send time (coordinated omission corrected),
schedule lag (actual minus intended send) goes to its own histogram, and every arrival ends up
in exactly one bucket: ok, error, or dropped (cap on in-flight reached, or timed out).
"""

from __future__ import annotations

import asyncio
import itertools
import math
import ssl
import time
from collections import deque
from collections.abc import Callable

from chaoskit.load.connection import BodyConnection, Connection, HeaderConnection
from chaoskit.load.flows import STARVED, FlowSet
from chaoskit.load.plan import WINDOW, LoadPlan
from chaoskit.load.recorder import AckLog, BucketCounts, Tally, WindowBook
from chaoskit.load.schedule import ArrivalSchedule
from chaoskit.load.stalls import StallWatch

# A request on its way: intended time, its bytes (a resend repeats them: same key), its
# arrival index k (its idempotency key is <nonce>-<k>), the flow actually sent, and the attempt
# (0: first send).
Pending = tuple[float, bytes, int, int, int]

CHUNK = 0.010        # run seconds of schedule generated at a time: keeps each step short
# The loop's timers tick in whole milliseconds: waking at most once per ms and sending all that
# is due keeps lag under ~1 ms without spinning a core at moderate rates.
TICK = 0.001
STOP_GRACE = 0.5     # after a stop, in-flight requests get at most this long to answer
BATCH = 256          # arrivals sent per step before responses get a turn
CONNECTING = 16      # connections opened at once when the pool is short: no connect storms
GROW_AFTER = 0.002   # an arrival waiting this long for a free connection grows the pool
Emit = Callable[[dict[str, object]], None]


class OpenModelRun:
    """Dispatches one worker's share of the schedule over a pool of keep-alive connections."""

    def __init__(self, plan: LoadPlan, emit: Emit) -> None:
        self.plan = plan
        self._emit = emit
        self._loop = asyncio.get_running_loop()
        self._schedule = ArrivalSchedule(plan.curve(), seed=plan.seed, weights=plan.weights,
                                         worker=plan.worker, workers=plan.workers)
        self._requests = FlowSet.compile(plan.requests, host=plan.host, port=plan.port,
                                         prefix=plan.prefix, seed=plan.seed)
        captures = plan.ack_captures
        if captures is None:  # not said: every value any flow captures
            captures = sorted({c for r in plan.requests for c in (r.get("captures") or {})})
        self._acks = AckLog(plan.ack_path, nonce=plan.nonce, flows=plan.flows,
                            captures=captures)
        self._want_body = self._requests.wants_body
        self._want_headers = self._requests.wants_headers
        self._ssl = tls_context(plan)
        self._idle: list[Connection] = []
        self._pool: set[Connection] = set()
        # due, waiting for a connection
        self._backlog: deque[Pending] = deque()
        # resends waiting for their time: token -> (timer, intended, flow)
        self._resends: dict[int, tuple[asyncio.TimerHandle, float, int]] = {}
        self._tokens = itertools.count()
        self._stopped = False
        self._connecting = 0
        self._in_flight = 0  # sent and unanswered, plus the backlog
        self._book = WindowBook(len(plan.flows))
        self._latency = BucketCounts()
        self._lag = BucketCounts()
        self._times: list[float] = []
        self._ks: list[int] = []
        self._flows: list[int] = []
        self._i = 0
        self._generated_to = 0.0
        self._t0 = 0.0
        self._cpu_at_start = 0.0
        self._sending = False
        self._drain_until = math.inf
        self._next_due = math.inf  # run time from which an undispatched arrival may be due
        self._timer: asyncio.TimerHandle | None = None
        self._grow_check: asyncio.TimerHandle | None = None
        self.stalls = StallWatch()
        self.opened = 0
        self.finished: asyncio.Future[None] = self._loop.create_future()

    # --- connections -------------------------------------------------------------------------
    async def warm(self, count: int) -> int:
        """Open `count` connections before the start so the first window is not all handshakes."""
        conns = [self._new_connection() for _ in range(min(count, self.plan.max_in_flight))]
        await asyncio.gather(*(self._connect(c) for c in conns))
        return len(self._idle)

    def _new_connection(self) -> Connection:
        if self._want_headers:
            conn: Connection = HeaderConnection(self)
        elif self._want_body:
            conn = BodyConnection(self)
        else:
            conn = Connection(self)
        self._pool.add(conn)
        self._connecting += 1
        self.opened += 1
        return conn

    def _queue(self, pending: Pending) -> None:
        """No free connection: wait for one. Answers already in the socket buffers free
        connections in this same loop round (timers run before I/O), so the pool grows only for
        arrivals still waiting GROW_AFTER later."""
        self._backlog.append(pending)
        if self._grow_check is None:
            self._grow_check = self._loop.call_later(GROW_AFTER, self._grow)

    def _grow(self) -> None:
        """More connections for the arrivals still waiting, unless enough are opening or the
        cap is hit; and only while the loop keeps its schedule: a loop behind it is short of
        CPU itself, and more connections would only cost more of it (a spiral, not relief)."""
        self._grow_check = None
        if not self._backlog or self._stopped:
            return
        behind = (self._sending and
                  time.monotonic() - self._t0 - self._next_due > self.plan.late_after)
        if not behind:
            wanted = min(len(self._backlog), CONNECTING - self._connecting,
                         self.plan.max_in_flight - len(self._pool))
            for _ in range(max(0, wanted)):
                self._loop.create_task(self._connect(self._new_connection()))
        self._grow_check = self._loop.call_later(GROW_AFTER, self._grow)

    async def _connect(self, conn: Connection) -> None:
        connect = self._loop.create_connection(lambda: conn, self.plan.host, self.plan.port,
                                               ssl=self._ssl)
        try:
            await asyncio.wait_for(connect, self.plan.timeout)
        except (TimeoutError, OSError):
            self._connecting -= 1
            conn.closed = True
            conn.release()
            self._pool.discard(conn)
            if self._backlog:  # the request that wanted this connection fails with it
                self._fail_queued()
            return
        self._connecting -= 1
        self._reuse(conn)

    def _reuse(self, conn: Connection) -> None:
        """A free connection takes the oldest waiting request, or waits in the idle stack."""
        if self._backlog:
            self._write(conn, self._backlog.popleft())
        else:
            self._idle.append(conn)

    def _fail_queued(self) -> None:
        t, _, _, flow, _ = self._backlog.popleft()
        self._in_flight -= 1
        now = time.monotonic() - self._t0
        tally = self._book.now(now)
        tally.errors[flow] += 1
        tally.latency.add(now - t)  # a refused connection is a failure clients waited for

    # --- schedule ----------------------------------------------------------------------------
    @property
    def _nonce(self) -> str:
        return f"{self.plan.nonce}-"

    def start(self, t0: float) -> None:
        """Begin at monotonic time t0 (shared by all workers: CLOCK_MONOTONIC is system-wide)."""
        self._t0 = t0
        self._cpu_at_start = time.process_time()
        self.stalls.start()
        self._sending = True
        delay = t0 - time.monotonic()
        self._timer = self._loop.call_later(max(0.0, delay), self._tick)
        self._loop.call_later(max(0.0, delay + WINDOW), self._window_tick)

    def stop(self) -> None:
        """Stop sending now: queued requests are dropped, in-flight ones get a short grace."""
        self._stopped = True
        if self._sending:
            self._sending = False
            self._drain_until = time.monotonic() - self._t0 + min(STOP_GRACE, self.plan.timeout)
            now = time.monotonic() - self._t0
            tally = self._book.now(now)
            while self._backlog:
                t, _, _, flow, _ = self._backlog.popleft()
                self._in_flight -= 1
                tally.dropped[flow] += 1
                tally.latency.add(now - t)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _refill(self) -> None:
        self._generated_to += CHUNK
        self._times, self._ks, self._flows = self._schedule.take_until(self._generated_to)
        self._i = 0

    def _tick(self) -> None:
        self._timer = None
        if not self._sending:
            return
        self._dispatch(time.monotonic() - self._t0, BATCH)
        self._arm()

    def _arm(self) -> None:
        """Wake up for the next arrival (at once if a batch was cut short)."""
        if self._i < len(self._times):
            delay = self._times[self._i] - (time.monotonic() - self._t0)
        elif self._schedule.exhausted:
            self._sending = False  # all sent: the window ticks finish the run
            self._drain_until = self.plan.run_seconds + self.plan.timeout + WINDOW
            return
        else:
            delay = self._generated_to - CHUNK - (time.monotonic() - self._t0)
        self._timer = self._loop.call_later(0 if delay <= 0 else max(delay, TICK), self._tick)

    def _dispatch(self, until: float, limit: int) -> None:
        """Send up to `limit` arrivals due by `until` (run seconds)."""
        times, ks, flows, i = self._times, self._ks, self._flows, self._i
        send, behind = self._send, self.plan.behind_after
        first = True
        while limit > 0:
            if i >= len(times):
                if self._generated_to > until + CHUNK or self._schedule.exhausted:
                    break
                self._refill()
                times, ks, flows, i = self._times, self._ks, self._flows, 0
                continue
            t = times[i]
            if t > until:
                break
            if first:  # how late the loop got to the arrivals due: its own stalls
                self.stalls.wake.add(until - t)
                first = False
            send(t, ks[i], flows[i], until - t > behind)
            i += 1
            limit -= 1
        self._i = i
        self._next_due = times[i] if i < len(times) else self._generated_to - CHUNK

    def _send(self, t: float, k: int, flow: int, behind: bool) -> None:
        """An arrival is due: write it on a free connection, queue it, or drop it at the cap.

        `behind`: the engine reached this arrival late (its own CPU, not the system's answer).
        """
        due = self._book.due(t)
        due.intended[flow] += 1
        if self._in_flight >= self.plan.max_in_flight:
            due.dropped[flow] += 1
            due.capped[flow] += 1
            due.behind += 1
            due.latency.add(self.plan.timeout)  # never sent, never answered: at least this
            return
        if behind:
            due.behind += 1
        request, sent = self._requests.build(k, flow, f"{self._nonce}{k}")
        if sent == STARVED:  # a value it needs was never captured: counted, not sent
            due.starved[flow] += 1
            return
        self._in_flight += 1
        if self._idle:
            self._write(self._idle.pop(), (t, request, k, sent, 0))
        else:
            self.stalls.queued += 1
            self._queue((t, request, k, sent, 0))

    def _write(self, conn: Connection, pending: Pending) -> None:
        t, request, k, flow, attempt = pending
        now = time.monotonic() - self._t0
        tally = self._book.now(now)
        if attempt == 0:
            tally.sent[flow] += 1
            lag = now - t
            if lag > self.plan.late_after:
                tally.late += 1
            self._lag.add(lag)
        else:
            tally.retries += 1
        conn.request = request
        conn.k = k
        conn.attempt = attempt
        conn.busy = True
        conn.intended = t
        conn.sent_at = now
        conn.flow = flow
        conn.send(request)

    # --- resends -----------------------------------------------------------------------------
    def _retry(self, conn: Connection) -> bool:
        """Resend a failed request later with the same key, if the plan allows another try.

        It stays in flight meanwhile: to its client the request has not ended yet.
        """
        if self._stopped or conn.attempt >= self.plan.retries:
            return False
        pending = (conn.intended, conn.request, conn.k, conn.flow, conn.attempt + 1)
        token = next(self._tokens)
        handle = self._loop.call_later(self.plan.retry_after, self._resend, token, pending)
        self._resends[token] = (handle, conn.intended, conn.flow)
        return True

    def _resend(self, token: int, pending: Pending) -> None:
        del self._resends[token]
        if self._idle:
            self._write(self._idle.pop(), pending)
        else:
            self._queue(pending)

    def _drop_resends(self, now: float) -> None:
        tally = self._book.now(now)
        for handle, t, flow in self._resends.values():
            handle.cancel()
            self._in_flight -= 1
            tally.dropped[flow] += 1
            tally.latency.add(now - t)
        self._resends.clear()

    # --- responses ---------------------------------------------------------------------------
    def on_response(self, conn: Connection, status: int, body: bytes) -> None:
        if not conn.busy:
            return  # a response after we gave up on it: already counted as dropped
        conn.busy = False
        if (status >= 500 or status == 409) and self._retry(conn):
            self._after(conn)
            return
        self._in_flight -= 1
        now = time.monotonic() - self._t0
        tally = self._book.now(now)
        tally.latency.add(now - conn.intended)
        ok, captured = self._requests.answered(conn.flow, status, body, conn.headers)
        if ok:
            tally.ok[conn.flow] += 1
            if self._acks.enabled and self._requests.flows[conn.flow].books:
                self._acks.add(conn.k, self.plan.flows[conn.flow], captured, status)
        else:
            tally.errors[conn.flow] += 1
        self._after(conn)

    def _after(self, conn: Connection) -> None:
        if conn.closed:
            self._pool.discard(conn)
        else:
            self._reuse(conn)

    def on_lost(self, conn: Connection) -> None:
        self._pool.discard(conn)
        if conn in self._idle:
            self._idle.remove(conn)
        if conn.busy:
            conn.busy = False
            if self._retry(conn):
                return
            self._in_flight -= 1
            now = time.monotonic() - self._t0
            tally = self._book.now(now)
            tally.errors[conn.flow] += 1
            tally.latency.add(now - conn.intended)

    # --- windows -----------------------------------------------------------------------------
    def _window_tick(self) -> None:
        began = time.monotonic()
        try:
            self._report_window()
        finally:
            self.stalls.window(time.monotonic() - began)

    def _report_window(self) -> None:
        now = time.monotonic() - self._t0
        if self._sending:
            self._dispatch(now, 1 << 62)  # all that is due, so each window holds its arrivals
        if not self._sending and (self._in_flight == 0 or now >= self._drain_until):
            self._expire(now, everything=True)
            self._close(self._book.close_all())
            self._finish()
            return
        self._expire(now)
        self._close(self._book.close_until(now))
        delay = self._t0 + (self._book.next_to_close + 1) * WINDOW - time.monotonic()
        self._loop.call_later(max(0.0, delay), self._window_tick)

    def _expire(self, now: float, *, everything: bool = False) -> None:
        """Give up on requests unanswered past the timeout (or all, at the end): dropped.

        Their latency is recorded as the time waited so far, so a hung system shows in the
        percentiles and not only in a counter.
        """
        limit = math.inf if everything else now - self.plan.timeout
        tally = self._book.now(now)
        if everything:
            self._drop_resends(now)
        while self._backlog and self._backlog[0][0] < limit:
            t, _, _, flow, _ = self._backlog.popleft()
            self._in_flight -= 1
            tally.dropped[flow] += 1
            tally.timeouts += 1
            tally.latency.add(now - t)
        for conn in [c for c in self._pool if c.busy and c.sent_at < limit]:
            conn.busy = False
            conn.closed = True
            self._pool.discard(conn)
            conn.abort()
            tally.timeouts += 1
            if not everything and self._retry(conn):
                continue
            self._in_flight -= 1
            tally.dropped[conn.flow] += 1
            tally.latency.add(now - conn.intended)

    def _close(self, windows: list[tuple[int, Tally]]) -> None:
        for w, tally in windows:
            self._emit(tally.message(w))
            self._latency.merge(tally.latency.counts)
        self._acks.flush()

    def _finish(self) -> None:
        if self._grow_check is not None:
            self._grow_check.cancel()
        for conn in list(self._pool):
            conn.closed = True
            conn.abort()
        self._acks.close()
        self._emit({"type": "done", "latency": self._latency.pairs(),
                    "lag": self._lag.pairs(), "connections": self.opened,
                    "cpu_seconds": time.process_time() - self._cpu_at_start,
                    "engine": self.stalls.report(),
                    "substituted": dict(zip(self.plan.flows, self._requests.substituted,
                                            strict=True)),
                    "acks": self._acks.count})
        if not self.finished.done():
            self.finished.set_result(None)


def tls_context(plan: LoadPlan) -> ssl.SSLContext | None:
    """For https targets: the system's CA bundle, a CA file, or (asked for) no verification."""
    if plan.scheme != "https":
        return None
    context = ssl.create_default_context(cafile=plan.tls_ca_file)
    if not plan.tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
