"""The one adapter around toxiproxy-python: a serialised API client and a server launcher.

toxiproxy-python keeps the server address in class attributes (`APIConsumer.host/port`), so two
servers used from two threads would talk to each other's proxies. Every call here therefore runs
under one process-wide lock that sets host/port for that call. No other chaoskit module imports
`toxiproxy`.

We call the client's transport (`APIConsumer.get/post/delete`, with its mapping of 409/404/400 to
`ProxyExists`/`NotFound`/`InvalidToxic`) rather than its `Proxy`/`Toxiproxy` objects because those
pass no timeout to `requests`: a hung API must never hang a revert. Its transport forwards keyword
arguments to `requests`, which lets us set one. Nothing here calls the server-wide `/reset`: the
server may be shared and `reset` would strip other people's toxics.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from toxiproxy.api import APIConsumer
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists

from chaoskit.errors import PlatformError
from chaoskit.toolchain import require_binary

API_TIMEOUT = 5.0  # seconds; a local API answers in about a millisecond
_CLIENT_LOCK = threading.Lock()


@dataclass(frozen=True)
class ToxicState:
    """One toxic as the server lists it."""

    name: str
    kind: str
    stream: str
    toxicity: float
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProxyState:
    """One proxy as the server lists it, with its toxics."""

    name: str
    listen: str
    upstream: str
    enabled: bool
    toxics: list[ToxicState] = field(default_factory=list)

    def toxic(self, name: str) -> ToxicState | None:
        return next((t for t in self.toxics if t.name == name), None)


def _proxy_state(raw: dict[str, Any]) -> ProxyState:
    toxics = [ToxicState(t["name"], t["type"], t.get("stream", "downstream"),
                         float(t.get("toxicity", 1.0)), dict(t.get("attributes") or {}))
              for t in raw.get("toxics") or []]
    return ProxyState(raw["name"], raw["listen"], raw["upstream"], bool(raw["enabled"]), toxics)


def _unreachable_hint(url: str) -> str:
    return (f"start one with `toxiproxy-server -host <host> -port <port>` or point chaoskit at a "
            f"running server (the experiment's toxiproxy url or CHAOSKIT_TOXIPROXY_URL); "
            f"tried {url}")


class ToxiproxyServer:
    """A Toxiproxy API endpoint (not a process). Safe to use from many threads."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        try:
            port = parts.port or 8474
        except ValueError:  # urllib refuses a port that is not a number in range
            port = 0
        if parts.scheme != "http" or not parts.hostname or not port:
            raise PlatformError(f"'{url}' is not a Toxiproxy API URL",
                                hint="write it as http://HOST:PORT, e.g. http://127.0.0.1:8474")
        self._host, self._port = parts.hostname, port
        self.url = f"http://{self._host}:{self._port}"

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        with _CLIENT_LOCK:
            APIConsumer.host, APIConsumer.port = self._host, self._port
            try:
                response = getattr(APIConsumer, method)(path, timeout=API_TIMEOUT, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                raise PlatformError(f"Toxiproxy at {self.url} is unreachable "
                                    f"({exc.__class__.__name__})",
                                    hint=_unreachable_hint(self.url)) from exc
        if response.status_code >= 400:  # the client maps only 400/404/409 to exceptions
            raise PlatformError(f"Toxiproxy at {self.url} answered {response.status_code} to "
                                f"{method.upper()} {path}: {response.text.strip()}",
                                hint="check the server's log; this is likely a server-side fault")
        return response

    def version(self) -> str:
        response = self._call("get", "/version")
        try:  # v2.6+ answers JSON, older servers plain text
            return str(response.json()["version"])
        except (ValueError, KeyError, TypeError):
            return response.text.strip()

    def proxies(self) -> dict[str, ProxyState]:
        raw = self._call("get", "/proxies").json()
        return {name: _proxy_state(values) for name, values in raw.items()}

    def ensure_proxy(self, name: str, listen: str, upstream: str) -> bool:
        """Create the proxy unless one of that name exists; True if it was created now."""
        try:
            self._call("post", "/proxies",
                       json={"name": name, "listen": listen, "upstream": upstream, "enabled": True})
        except ProxyExists:
            return False
        except InvalidToxic as exc:  # the client's name for any 400
            raise PlatformError(f"Toxiproxy refused proxy '{name}': {_text(exc)}",
                                hint="check the proxy's listen and upstream addresses") from exc
        return True

    def delete_proxy(self, name: str) -> None:
        with contextlib.suppress(NotFound):
            self._call("delete", f"/proxies/{name}")

    def set_enabled(self, name: str, enabled: bool) -> None:
        # POST is what the client offers; v2.12 logs it as deprecated in favour of PATCH but
        # applies it the same, keeping listen and upstream.
        try:
            self._call("post", f"/proxies/{name}", json={"enabled": enabled})
        except NotFound as exc:
            raise _missing_proxy(self.url, name) from exc

    def add_toxic(self, proxy: str, name: str, kind: str, stream: str, toxicity: float,
                  attributes: dict[str, Any]) -> None:
        body = {"name": name, "type": kind, "stream": stream, "toxicity": toxicity,
                "attributes": attributes}
        try:
            self._call("post", f"/proxies/{proxy}/toxics", json=body)
        except NotFound as exc:
            raise _missing_proxy(self.url, proxy) from exc
        except ProxyExists as exc:  # the client's name for any 409
            raise PlatformError(f"a toxic named '{name}' already exists on proxy '{proxy}'",
                                hint="a previous run left it behind: run `chaoskit recover` or "
                                     "delete it through the Toxiproxy API") from exc
        except InvalidToxic as exc:
            raise PlatformError(f"Toxiproxy refused toxic '{name}': {_text(exc)}",
                                hint="check the toxic's type, stream and attributes") from exc

    def remove_toxic(self, proxy: str, name: str) -> None:
        with contextlib.suppress(NotFound):
            self._call("delete", f"/proxies/{proxy}/toxics/{name}")


def _text(exc: Exception) -> str:
    raw = exc.args[0] if exc.args else b""
    return raw.decode(errors="replace").strip() if isinstance(raw, bytes) else str(raw)


def _missing_proxy(url: str, name: str) -> PlatformError:
    return PlatformError(f"Toxiproxy at {url} has no proxy named '{name}'",
                         hint="declare it in the platform/experiment so chaoskit creates it, "
                              "or fix the name (list them with GET /proxies)")


def start_toxiproxy_server(host: str, port: int, log_path: str | Path) -> subprocess.Popen[bytes]:
    """Start a toxiproxy-server process logging to `log_path`; pair with `wait_ready`."""
    binary = require_binary("toxiproxy-server")
    with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([binary, "-host", host, "-port", str(port)], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)


def wait_ready(url: str, timeout: float) -> str:
    """Block until the API at `url` answers (returns its version) or `timeout` seconds pass."""
    server = ToxiproxyServer(url)
    deadline = time.monotonic() + timeout
    while True:
        try:
            return server.version()
        except PlatformError:
            if time.monotonic() >= deadline:
                raise PlatformError(f"Toxiproxy at {url} did not answer within {timeout:g}s",
                                    hint="read its log; the port may be taken or the binary "
                                         "broken") from None
            time.sleep(0.02)
