"""Start a whole otherpay (bank, api, worker) behind Toxiproxy and stop it without leftovers."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg.rows import dict_row

from tests.otherpay import procs
from tests.otherpay.postgres import Database, Toxiproxy, provision

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("bank", "api", "worker")
TEST_TUNING = {"OTHERPAY_BANK_TIMEOUT": "1s", "OTHERPAY_RETRY_BACKOFF": "200ms",
               "OTHERPAY_POLL_INTERVAL": "100ms"}  # a bank outage shows within seconds
HEALTH = {"bank": "/health", "api": "/api/v2/health", "worker": "/health"}


@dataclass
class OtherPay:
    """One running otherpay. `commands[s]` is the exact command line that started service `s`
    (runnable by a shell or `shlex.split`); its pid file is `pidfiles[s]`."""

    instance: str
    api_url: str
    worker_url: str
    bank_url: str
    bank_proxy_url: str
    database_url: str
    database_proxy_url: str
    toxiproxy_url: str
    db_proxy: str
    bank_proxy: str
    broken: tuple[str, ...]
    urls: dict[str, str]
    pidfiles: dict[str, Path]
    commands: dict[str, str]
    env: dict[str, dict[str, str]]
    logs: dict[str, Path]
    children: list[subprocess.Popen[bytes]] = field(default_factory=list, repr=False)
    latest: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)

    def start(self, service: str) -> subprocess.Popen[bytes]:
        """Run `commands[service]` (stdout appended to its log), as a restarter would."""
        clean = {k: v for k, v in os.environ.items() if not k.startswith("OTHERPAY_")}
        with open(self.logs[service], "ab") as log:
            child = subprocess.Popen(shlex.split(self.commands[service]), stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=clean, cwd=ROOT, start_new_session=True)
        self.children.append(child)
        self.latest[service] = child
        return child

    def pid(self, service: str) -> int | None:
        pid = procs.read_pid(self.pidfiles[service])
        return pid if pid is not None and procs.alive(pid) else None

    def kill(self, service: str, signum: int = signal.SIGKILL) -> int:
        """Signal the process named by the service's pid file and wait until it is gone."""
        pid = self.pid(service)
        assert pid is not None, f"{service} is not running"
        os.kill(pid, signum)
        left = procs.wait_gone({pid}, self.children, 15)
        assert not left, f"{service} (pid {pid}) outlived signal {signum}"
        return pid

    def healthy(self, service: str) -> bool:
        try:
            return httpx.get(self.urls[service] + HEALTH[service], timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_healthy(self, services: tuple[str, ...] = SERVICES, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        waiting = list(services)
        while waiting:
            procs.reap(self.children)
            dead = {s: self.latest[s].returncode for s in waiting
                    if s in self.latest and self.latest[s].returncode is not None}
            if dead:
                raise RuntimeError(f"otherpay exited {dead}:\n" + self.log_tails())
            waiting = [s for s in waiting if not self.healthy(s)]
            if waiting and time.monotonic() > deadline:
                raise RuntimeError(f"{waiting} not healthy within {timeout:g}s:\n"
                                   + self.log_tails())
            time.sleep(0.1)

    def log_tails(self, lines: int = 15) -> str:
        return "\n".join(f"--- {s}:\n" + "\n".join(p.read_text(errors="replace").splitlines()
                                                   [-lines:])
                         for s, p in self.logs.items() if p.exists())

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(self.api_url + path, json=body, timeout=15)

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.api_url + path, timeout=15)

    @property
    def toxiproxy(self) -> Toxiproxy:
        """A client for the Toxiproxy holding `db_proxy` and `bank_proxy`."""
        return Toxiproxy(self.toxiproxy_url)

    def query(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()
              ) -> list[dict[str, Any]]:
        """Rows of `sql` on the service's database (direct, not through the proxy)."""
        with psycopg.connect(self.database_url, autocommit=True) as conn, \
                conn.cursor(row_factory=dict_row) as cur:
            cur.execute(sql, params)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else []

    def bank_ops(self) -> list[dict[str, Any]]:
        return list(httpx.get(self.bank_url + "/ops", timeout=5).json()["ops"])

    def stop_all(self) -> None:
        """Stop every process of this instance (children, pid files, and any process carrying
        its tag), then assert nothing is left and pid files were removed."""
        procs.reap(self.children)
        pids = {c.pid for c in self.children if c.returncode is None}
        pids |= {pid for s in SERVICES if (pid := self.pid(s)) is not None}
        pids |= procs.tagged(f"OTHERPAY_INSTANCE={self.instance}-")
        problems = procs.stop(pids, self.children)
        leftovers = procs.tagged(f"OTHERPAY_INSTANCE={self.instance}-")
        if leftovers:
            procs.signal_all(leftovers, signal.SIGKILL)
            problems.append(f"still running after the stop: {sorted(leftovers)}")
        for service, pidfile in self.pidfiles.items():
            if procs.read_pid(pidfile) in pids:
                problems.append(f"{service} left its pid file {pidfile} behind")
        assert not problems, "; ".join(problems) + "\n" + self.log_tails()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def service_env(service: str, instance: str, workdir: Path, port: int, db: Database,
                bank_proxy: str, broken: tuple[str, ...], extra: dict[str, str]
                ) -> dict[str, str]:
    env = {"OTHERPAY_INSTANCE": f"{instance}-{service}",
           "OTHERPAY_LISTEN": f"127.0.0.1:{port}",
           "OTHERPAY_PIDFILE": str(workdir / f"{service}.pid")}
    if service == "bank":
        env["OTHERPAY_BANK_DATABASE_URL"] = db.direct_url
    else:
        env["OTHERPAY_DATABASE_URL"] = db.proxy_url
        env["OTHERPAY_DB_TIMEOUT"] = "1s"  # an unreachable database answers 503 quickly
        env["OTHERPAY_BROKEN"] = ",".join(broken)
    if service == "worker":
        env |= {"OTHERPAY_BANK_URL": f"http://{bank_proxy}", **TEST_TUNING}
    return {**env, **extra}


def command(env: dict[str, str], service: str) -> str:
    assignments = [f"PYTHONPATH={ROOT}", *(f"{k}={v}" for k, v in env.items())]
    return shlex.join(["env", *assignments, sys.executable, "-m", "tests.otherpay", service])


@contextlib.contextmanager
def launch(postgres_url: str, toxiproxy_url: str, workdir: Path, broken: tuple[str, ...] = (),
           extra_env: dict[str, str] | None = None) -> Iterator[OtherPay]:
    """A running otherpay on a fresh database; everything is stopped and removed after."""
    instance = f"op{uuid.uuid4().hex[:10]}"
    workdir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        db = stack.enter_context(provision(postgres_url, toxiproxy_url, instance))
        ports = {s: free_port() for s in SERVICES}
        bank_proxy = db.toxiproxy.create(f"otherpay-bank-{instance}", f"127.0.0.1:{ports['bank']}")
        stack.callback(db.toxiproxy.delete, f"otherpay-bank-{instance}")
        env = {s: service_env(s, instance, workdir, ports[s], db, bank_proxy, broken,
                              extra_env or {}) for s in SERVICES}
        urls = {s: f"http://127.0.0.1:{ports[s]}" for s in SERVICES}
        op = OtherPay(instance=instance, api_url=urls["api"], worker_url=urls["worker"],
                      bank_url=urls["bank"], bank_proxy_url=f"http://{bank_proxy}",
                      database_url=db.direct_url, database_proxy_url=db.proxy_url,
                      toxiproxy_url=toxiproxy_url, db_proxy=db.proxy_name,
                      bank_proxy=f"otherpay-bank-{instance}", broken=broken, urls=urls,
                      pidfiles={s: workdir / f"{s}.pid" for s in SERVICES},
                      commands={s: command(env[s], s) for s in SERVICES}, env=env,
                      logs={s: workdir / f"{s}.log" for s in SERVICES})
        stack.callback(op.stop_all)
        for service in SERVICES:
            op.start(service)
        op.wait_healthy()
        yield op
