"""Bench: chaoskit's open-model rate per core side by side with wrk and Locust, on nginx.

Run with `make bench` (or `PYTHONPATH=. .venv/bin/pytest tests/bench/bench_load.py -s -q
-o python_files='bench_*.py'`). One run, one nginx on loopback (keep-alive unlimited) pinned
to core 0, every client pinned to core 1. Bounded: 1-4 minutes, never more than BUDGET.

Every request chaoskit sends here is a templated flow (tests/fixtures/systems.simple_flows: a
JSON POST with its Idempotency-Key and sequence number rendered per arrival). The steady run at
80% of the maximum goes to a second nginx that logs every request: an independent count of what
arrived, beside the engine's own `sent` and `ok`. The same rate with a flow that captures `/id`
from each answer gives the cost of captures (requests per CPU second with and without). The
steady run's schedule lag is broken down by the engine's own account of its stalls
(chaoskit.load.stalls); with CHAOSKIT_BENCH_RT=1 (root) it runs once more with the client and
its nginx under SCHED_FIFO, so other work on the machine cannot preempt them: the difference is
the kernel's (other processes), not the engine's.

Figures: wall-clock requests/s (what each tool achieved on its core) and requests per CPU
second (the same, normalised by the CPU the client actually got: fair when other work shares
the machine). chaoskit's figure is its maximum *sustained open-model* rate: requests actually
sent in every second within 1% of the schedule, nothing dropped, no errors, and the schedule
keeping up (lag p99 <= 100 ms: past its capacity the lag grows by the second). Every figure
is the best of two runs: on a 2-core box shared with other work, a burst of it on the client
core can spoil a run, but it cannot make one look better than the tool is.
"""

from __future__ import annotations

import asyncio
import csv
import os
import re
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

import pytest

from chaoskit.load.drive import drive
from chaoskit.load.summary import LoadSummary
from chaoskit.spec.load import LoadSpec
from chaoskit.spec.system import FlowSpec
from tests.fixtures.nginx import NginxStatic, count_requests, run_nginx
from tests.fixtures.real import require_real
from tests.fixtures.systems import simple_flows

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

BUDGET = 200.0          # seconds for the whole bench (trials stop early to keep to it)
SEARCH_SECONDS = 3      # length of one trial of the max-rate search
SEARCH_START = 2_500.0
SEARCH_CEILING = 320_000.0
BISECTIONS = 4
LAG_P99_LIMIT_MS = 100.0  # overload makes lag grow without bound; this only bounds noise
SERVER_CPU, CLIENT_CPU = 0, 1
ATTEMPTS = 2            # every figure is the best of this many runs (see best_of)
STEADY_SECONDS = 5
REALTIME = os.environ.get("CHAOSKIT_BENCH_RT") == "1"
COMMAND = ("PYTHONPATH=. .venv/bin/pytest tests/bench/bench_load.py -s -q "
           "-o python_files='bench_*.py'")
T = TypeVar("T")

LOCUSTFILE = """\
from locust import task
from locust.contrib.fasthttp import FastHttpUser


class StaticUser(FastHttpUser):
    @task
    def hit(self):
        self.client.get("/")
"""


@contextmanager
def pinned(cpus: set[int]) -> Iterator[None]:
    """Run the block (and processes it starts) on `cpus` only."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_client(cmd: list[str], timeout: float) -> tuple[str, float]:
    """Run a client pinned to the client core: (its output, CPU seconds it used)."""
    cpu = children_cpu()
    done = subprocess.run(["taskset", "-c", str(CLIENT_CPU), *cmd], capture_output=True,
                          text=True, timeout=timeout, check=False)
    return done.stdout + done.stderr, children_cpu() - cpu


def bench_wrk(url: str) -> dict[str, float]:
    out, cpu = run_client([require_real("wrk"), "-t1", "-c64", "-d5s", url + "/"], 20)
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return {"rps": rps, "per_cpu": requests / cpu if cpu else 0.0}


def bench_locust(url: str, workdir: Path) -> dict[str, float]:
    locustfile = workdir / "locustfile.py"
    locustfile.write_text(LOCUSTFILE)
    prefix = workdir / "locust"
    cmd = [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "-u", "64",
           "-r", "64", "-t", "10s", "--processes", "1", "-H", url, "--csv", str(prefix),
           "--only-summary", "--loglevel", "ERROR"]
    _, cpu = run_client(cmd, 40)
    with open(f"{prefix}_stats.csv", newline="") as handle:
        row = next(r for r in csv.DictReader(handle) if r["Name"] == "Aggregated")
    count = int(row["Request Count"])
    return {"rps": float(row["Requests/s"]), "per_cpu": count / cpu if cpu else 0.0}


def drive_constant(url: str, seconds: float, *shapes: dict[str, Any],
                   flows: dict[str, FlowSpec] | None = None) -> LoadSummary:
    spec = LoadSpec.model_validate({"duration": f"{seconds}s", "workers": 1,
                                    "max_in_flight": 20_000, "profile": list(shapes)})
    return asyncio.run(drive(spec, url, flows or simple_flows(), seed=11, stop=asyncio.Event(),
                             on_window=lambda _: None, ack_path=None))


def per_cpu(summary: LoadSummary) -> float:
    return summary.sent / summary.cpu_seconds if summary.cpu_seconds else 0.0


@contextmanager
def realtime(pids: list[int]) -> Iterator[None]:
    """These processes and this one (and what it starts) under SCHED_FIFO: nothing else on
    their cores preempts them. Root only; restored after."""
    everyone = [0, *pids]
    before = {pid: os.sched_getscheduler(pid) for pid in everyone}
    for pid in everyone:
        os.sched_setscheduler(pid, os.SCHED_FIFO, os.sched_param(10))
    try:
        yield
    finally:
        for pid, policy in before.items():
            with suppress(OSError):
                os.sched_setscheduler(pid, policy, os.sched_param(0))


def nginx_pids(nginx: NginxStatic) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(nginx.process.pid)], capture_output=True,
                           text=True, check=False).stdout.split()
    return [nginx.process.pid, *(int(p) for p in found)]


def counted_steady(log: Path, url: str, target: float) -> tuple[LoadSummary, dict[str, int]]:
    """A steady run at `target`, and what the logging nginx counted of it."""
    before = count_requests(log)
    summary = drive_constant(url, STEADY_SECONDS, {"shape": "constant", "rate": target})
    time.sleep(0.5)  # the log is flushed every 100 ms
    after = count_requests(log)
    return summary, {k: after.get(k, 0) - before.get(k, 0) for k in after}


def rate_error(summary: LoadSummary) -> float:
    """Largest relative gap between sent and intended over the run's whole seconds."""
    seconds = [(i, s) for i, s in summary.per_second() if i]
    return max((abs(s - i) / i for i, s in seconds), default=1.0)


def sustained(summary: LoadSummary) -> bool:
    lag = summary.lag_ms["p99"]
    return (rate_error(summary) < 0.01 and summary.dropped == 0 and summary.errors == 0
            and lag is not None and lag <= LAG_P99_LIMIT_MS)


def search_max(url: str, deadline: float) -> tuple[float, float, list[str]]:
    """Double the rate until a trial is not sustained, then bisect: the max sustained rate
    and the requests per CPU second chaoskit used at it."""
    log: list[str] = []
    good, bad, rate, per_cpu = 0.0, SEARCH_CEILING, SEARCH_START, {0.0: 0.0}

    def trial(r: float, attempts: int = 2) -> bool:
        """A rate is sustained if one of two attempts is: other work on this shared machine
        can spoil one attempt; it cannot make an unsustainable rate pass."""
        for _ in range(attempts):
            summary = drive_constant(url, SEARCH_SECONDS, {"shape": "constant", "rate": r})
            ok = sustained(summary)
            per_cpu[r] = summary.sent / summary.cpu_seconds if summary.cpu_seconds else 0.0
            log.append(f"  trial {r:>9,.0f}/s: error {rate_error(summary):6.2%}, lag p99 "
                       f"{summary.lag_ms['p99']} ms, dropped {summary.dropped}, "
                       f"{per_cpu[r]:,.0f} req/CPU s -> {'sustained' if ok else 'not sustained'}")
            if ok or time.monotonic() > deadline:
                return ok
        return False

    while rate < SEARCH_CEILING and time.monotonic() < deadline:
        if not trial(rate):
            bad = rate
            break
        good, rate = rate, rate * 2
    for _ in range(BISECTIONS):
        if time.monotonic() > deadline or good == 0.0:
            break
        middle = (good + bad) / 2
        good, bad = (middle, bad) if trial(middle) else (good, middle)
    return good, per_cpu[good], log


def spike_window(summary: LoadSummary, at: float) -> dict[str, Any]:
    return next(w for w in summary.series if abs(w["t"] - (at + 0.1)) < 1e-6)


def test_bench_open_model_rate_against_wrk_and_locust(tmp_path: Path) -> None:
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("the bench pins server and client to different cores: needs 2")
    deadline = time.monotonic() + BUDGET
    lines = [f"load average at start: {os.getloadavg()[0]:.2f} (2 cores)"]
    binary = require_real("nginx")
    with run_nginx(binary, tmp_path / "nginx", cpus={SERVER_CPU}) as nginx:
        figures = measure(nginx, tmp_path, deadline, lines)
    log = tmp_path / "counted" / "access.log"
    with run_nginx(binary, tmp_path / "counted", cpus={SERVER_CPU}, access_log=log) as counted:
        figures.update(measure_steady(counted, log, figures["target"]))
    lines.append(f"load average at end: {os.getloadavg()[0]:.2f}")
    print_table(figures, lines)
    assert figures["max"] > 0.0, "chaoskit did not sustain even the first trial: see the log"
    steady, arrived = figures["steady"], figures["arrived"]
    assert arrived.get("200", 0) == steady.ok and sum(arrived.values()) == steady.sent, (
        "nginx counted other than the engine reported", arrived, steady.sent, steady.ok)


def best_of(attempts: int, run: Callable[[], T], score: Callable[[T], float]) -> T:
    """The best of a few attempts: other work on a shared machine can spoil one, never help."""
    results = [run() for _ in range(attempts)]
    return max(results, key=score)


def measure(nginx: NginxStatic, tmp_path: Path, deadline: float,
            lines: list[str]) -> dict[str, Any]:
    wrk = best_of(ATTEMPTS, lambda: bench_wrk(nginx.url), lambda r: r["rps"])
    locust = best_of(ATTEMPTS, lambda: bench_locust(nginx.url, tmp_path), lambda r: r["rps"])
    with pinned({CLIENT_CPU}):
        best, best_per_cpu, log = search_max(nginx.url, deadline - 50)
        lines += log
        target = 0.8 * (best or SEARCH_START)
        spike = best_of(ATTEMPTS, lambda: drive_constant(
            nginx.url, 3, {"shape": "constant", "rate": 0.1 * target},
            {"shape": "spike", "at": "1s", "rate": 0.9 * target, "hold": "1s"}),
            lambda s: spike_window(s, 1.0)["sent"])
        captured = best_of(ATTEMPTS, lambda: drive_constant(
            nginx.url, STEADY_SECONDS, {"shape": "constant", "rate": target},
            flows=simple_flows(capture="/id")), per_cpu)
    first = spike_window(spike, 1.0)
    return {"wrk": wrk, "locust": locust, "max": best, "max_per_cpu": best_per_cpu,
            "target": target, "spike_first": first, "spike": spike, "captured": captured}


def measure_steady(nginx: NginxStatic, log: Path, target: float) -> dict[str, Any]:
    """The steady run at 80% of the max against the logging nginx: best of ATTEMPTS by rate
    error, with what nginx counted of that very run; and, asked for, once under SCHED_FIFO."""
    found: dict[str, Any] = {}
    with pinned({CLIENT_CPU}):
        runs = [counted_steady(log, nginx.url, target) for _ in range(ATTEMPTS)]
        found["steady"], found["arrived"] = min(runs, key=lambda r: rate_error(r[0]))
        if REALTIME:
            with realtime(nginx_pids(nginx)):
                found["steady_rt"], _ = counted_steady(log, nginx.url, target)
    return found


def stalls(summary: LoadSummary) -> str:
    """The engine's own account of where its lag came from (chaoskit.load.stalls)."""
    e = summary.engine
    if not e:
        return "-"
    wake, gc = e["wake_ms"], e["gc"]
    return (f"loop woke late p50 {wake['p50']} / p99 {wake['p99']} / max {wake['max']} ms; "
            f"{e['queued']:,} arrivals waited for a connection; GC {gc['count']}x, longest "
            f"{gc['max_ms']} ms; waited for a CPU {e['cpu_wait_s']} s "
            f"({e['preempted']:,} preemptions); longest window report {e['window_max_ms']} ms")


def print_table(f: dict[str, Any], lines: list[str]) -> None:
    steady: LoadSummary = f["steady"]
    captured: LoadSummary = f["captured"]
    arrived: dict[str, int] = f["arrived"]
    first = f["spike_first"]
    reach = first["sent"] / first["intended"] if first["intended"] else 0.0
    max_per_cpu = f["max_per_cpu"]
    plain, capturing = per_cpu(steady), per_cpu(captured)
    rows = [
        ("chaoskit max sustained open-model rate (1 core), templated POST",
         f"{f['max']:,.0f} req/s (goal >= 50,000)"),
        ("  requests per CPU second at that rate", f"{max_per_cpu:,.0f}"),
        ("wrk -t1 -c64 -d5s (closed loop)", f"{f['wrk']['rps']:,.0f} req/s"),
        ("  requests per CPU second", f"{f['wrk']['per_cpu']:,.0f}"),
        ("Locust FastHttpUser, 64 users, --processes 1", f"{f['locust']['rps']:,.0f} req/s"),
        ("  requests per CPU second (master + worker)", f"{f['locust']['per_cpu']:,.0f}"),
        ("ratio chaoskit / Locust (req/s)", f"{f['max'] / max(1.0, f['locust']['rps']):.2f}x"),
        ("ratio chaoskit / wrk (req/s)", f"{f['max'] / max(1.0, f['wrk']['rps']):.2f}x"),
        ("ratio chaoskit / Locust (per CPU s)",
         f"{max_per_cpu / max(1.0, f['locust']['per_cpu']):.2f}x"),
        ("ratio chaoskit / wrk (per CPU s)",
         f"{max_per_cpu / max(1.0, f['wrk']['per_cpu']):.2f}x"),
        (f"at 80% ({f['target']:,.0f}/s, {STEADY_SECONDS} s): worst per-second rate error",
         f"{rate_error(steady):.3%}"),
        ("  schedule lag p50 / p99 / max",
         "{p50} / {p99} / {max} ms".format(**steady.lag_ms)),
        ("  where the lag came from", stalls(steady)),
        ("  latency from intended send p50 / p99",
         "{p50} / {p99} ms".format(**steady.latency_ms)),
        ("  late / dropped / errors", f"{steady.late} / {steady.dropped} / {steady.errors}"),
        ("  nginx access log (independent count): requests / 200s",
         f"{sum(arrived.values()):,} / {arrived.get('200', 0):,} (engine: sent "
         f"{steady.sent:,}, ok {steady.ok:,})"),
    ]
    if "steady_rt" in f:
        rt: LoadSummary = f["steady_rt"]
        rows += [("  the same under SCHED_FIFO (nothing else preempts): lag p50 / p99 / max",
                  "{p50} / {p99} / {max} ms".format(**rt.lag_ms)
                  + f", rate error {rate_error(rt):.3%}"),
                 ("    where the lag came from", stalls(rt))]
    rows += [
        ("capture cost at 80%: requests per CPU second, no capture / capturing /id",
         f"{plain:,.0f} / {capturing:,.0f} ({capturing / plain - 1:+.1%})" if plain else "-"),
        ("  capturing run: rate error / lag p99 / ok",
         f"{rate_error(captured):.3%} / {captured.lag_ms['p99']} ms / {captured.ok:,}"),
        ("spike 10% -> 100% at 1 s: first 100 ms window achieved",
         f"{reach:.1%} of target ({first['sent']}/{first['intended']})"),
        ("  spike run schedule lag p99", f"{f['spike'].lag_ms['p99']} ms"),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"\n\nchaoskit load bench ({COMMAND}{' with CHAOSKIT_BENCH_RT=1' if REALTIME else ''}"
          f"; nginx pinned to core 0, clients to core 1, best of {ATTEMPTS} runs each)")
    print("\n".join(lines))
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
