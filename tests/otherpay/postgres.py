"""A fresh otherpay database on a test PostgreSQL server, reachable through a Toxiproxy proxy."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import psycopg
from psycopg.conninfo import conninfo_to_dict

from tests.otherpay.bridge import UnixBridge

SOCKETS = "/var/run/postgresql"  # libpq's default socket directory on Debian


class Toxiproxy:
    """The few calls of Toxiproxy's HTTP API the otherpay fixtures and tests need."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = httpx.request(method, self.url + path, timeout=5, **kwargs)
        response.raise_for_status()
        return response

    def create(self, name: str, upstream: str) -> str:
        """A new proxy on a free loopback port; returns its listen address."""
        body = {"name": name, "listen": "127.0.0.1:0", "upstream": upstream, "enabled": True}
        return str(self._call("POST", "/proxies", json=body).json()["listen"])

    def delete(self, name: str) -> None:
        with contextlib.suppress(httpx.HTTPStatusError):
            self._call("DELETE", f"/proxies/{name}")

    def add_toxic(self, proxy: str, name: str, kind: str, attributes: dict[str, Any],
                  stream: str = "downstream") -> None:
        body = {"name": name, "type": kind, "stream": stream, "toxicity": 1.0,
                "attributes": attributes}
        self._call("POST", f"/proxies/{proxy}/toxics", json=body)

    def remove_toxic(self, proxy: str, name: str) -> None:
        with contextlib.suppress(httpx.HTTPStatusError):
            self._call("DELETE", f"/proxies/{proxy}/toxics/{name}")

    def set_enabled(self, proxy: str, enabled: bool) -> None:
        self._call("POST", f"/proxies/{proxy}", json={"enabled": enabled})


@dataclass(frozen=True)
class Database:
    name: str
    direct_url: str
    proxy_url: str
    proxy_name: str
    toxiproxy: Toxiproxy


def pg_url(parts: dict[str, Any], host: str, port: str | int | None, dbname: str) -> str:
    auth = quote(str(parts.get("user") or "postgres"), safe="")
    if parts.get("password"):
        auth += ":" + quote(str(parts["password"]), safe="")
    if host.startswith("/"):
        suffix = f"&port={port}" if port else ""
        return f"postgresql://{auth}@/{dbname}?host={quote(host)}{suffix}"
    return f"postgresql://{auth}@{host}:{port or 5432}/{dbname}"


@contextlib.contextmanager
def tcp_upstream(parts: dict[str, Any]) -> Iterator[str]:
    """host:port of the server; a socket-only server (the embedded one) gets a TCP bridge."""
    host, port = str(parts.get("host") or SOCKETS), parts.get("port") or 5432
    if not host.startswith("/"):
        yield f"{host}:{port}"
        return
    with UnixBridge(f"{host}/.s.PGSQL.{port}") as bridge:
        yield bridge.address


@contextlib.contextmanager
def provision(server_url: str, toxiproxy_url: str, name: str) -> Iterator[Database]:
    """Create database `name`, a proxy `otherpay-db-<name>` in front of it; drop both after."""
    parts = conninfo_to_dict(server_url)
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    try:
        with tcp_upstream(parts) as upstream:
            toxiproxy = Toxiproxy(toxiproxy_url)
            proxy = f"otherpay-db-{name}"
            listen = toxiproxy.create(proxy, upstream)
            try:
                host, _, port = listen.rpartition(":")
                yield Database(name, pg_url(parts, str(parts.get("host") or SOCKETS),
                                            parts.get("port"), name),
                               pg_url(parts, host, port, name), proxy, toxiproxy)
            finally:
                toxiproxy.delete(proxy)
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]
