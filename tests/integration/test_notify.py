"""The webhook against a real local HTTP server: delivered, retried after a 503, timed out,
refused, never raising, and never showing the secrets of its URL."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from chaoskit.notify import mask_url, message_for, post_verdict

pytestmark = pytest.mark.integration

SUMMARY = {"run_id": "bank-latency-20261110-200000-ab12", "experiment": "bank-latency",
           "seed": 7, "status": "failed", "exit_code": 1, "abort": None, "error": None,
           "audit": {"clean": True},
           "verdicts": [{"item": "p99", "phase": "during", "expect": "< 500ms",
                         "status": "failed", "observed": 612.5, "held": False},
                        {"item": "refund-lag", "phase": "after", "expect": "<= 0s",
                         "status": "held", "observed": -1.0, "held": True}]}


@dataclass
class Hook:
    """What the server saw, and what it answers: one status per request, the last repeated."""

    url: str
    answers: dict[str, list[int]] = field(default_factory=dict)
    received: list[dict[str, Any]] = field(default_factory=list)
    delay: float = 0.0


def handler(hook: Hook) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            path = self.path.split("?")[0]
            hook.received.append({"path": self.path, "body": json.loads(body),
                                  "type": self.headers.get("Content-Type"),
                                  "auth": self.headers.get("Authorization")})
            if hook.delay and path == "/slow":
                time.sleep(hook.delay)
            queue = hook.answers.get(path, [200])
            status = queue.pop(0) if len(queue) > 1 else queue[0]
            self.send_response(status)
            if status == 429:
                self.send_header("Retry-After", "1")
            if status in (301, 302, 307):
                self.send_header("Location", f"{hook.url}/ok")
            self.send_header("Content-Length", "2")
            self.end_headers()
            with contextlib.suppress(BrokenPipeError):  # a client that timed out has left
                self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            return None

    return Handler


@pytest.fixture
def hook() -> Iterator[Hook]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    state = Hook(url)
    server.RequestHandlerClass = handler(state)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_verdict_is_posted_as_json_with_a_line_for_humans(hook: Hook) -> None:
    result = post_verdict(f"{hook.url}/ok", SUMMARY)
    assert result.delivered and result.attempts == 1 and result.status == 200
    assert result.error is None and "delivered (HTTP 200, 1 attempt)" in result.line()
    (seen,) = hook.received
    assert seen["type"] == "application/json"
    assert seen["body"]["verdicts"] == SUMMARY["verdicts"] and seen["body"]["status"] == "failed"
    assert seen["body"]["text"] == message_for(SUMMARY)
    assert seen["body"]["text"] == ("chaoskit: bank-latency FAILED (run "
                                    "bank-latency-20261110-200000-ab12, exit 1); p99 (during) "
                                    "failed: observed 612.5, expected < 500ms")


def test_a_503_is_retried_with_backoff_and_then_delivered(hook: Hook) -> None:
    hook.answers["/flaky"] = [503, 503, 200]
    waits: list[float] = []
    result = post_verdict(f"{hook.url}/flaky", SUMMARY, attempts=3, backoff=0.2,
                          sleep=waits.append)
    assert result.delivered and result.attempts == 3 and result.status == 200
    assert waits == [0.2, 0.4]
    assert len(hook.received) == 3


def test_real_backoff_sleeps_and_gives_up_after_the_attempts(hook: Hook) -> None:
    hook.answers["/down"] = [503]
    started = time.monotonic()
    result = post_verdict(f"{hook.url}/down", SUMMARY, attempts=3, backoff=0.1)
    assert time.monotonic() - started >= 0.3  # 0.1 + 0.2 between the three attempts
    assert not result.delivered and result.attempts == 3 and result.status == 503
    assert result.error == "HTTP 503 Service Unavailable"
    assert "NOT delivered after 3 attempts: HTTP 503" in result.line()


def test_retry_after_is_honoured_up_to_a_bound(hook: Hook) -> None:
    hook.answers["/busy"] = [429, 200]
    waits: list[float] = []
    result = post_verdict(f"{hook.url}/busy", SUMMARY, backoff=0.1, sleep=waits.append)
    assert result.delivered and waits == [1.0]


def test_a_server_that_does_not_answer_in_time_is_a_timeout_not_an_exception(hook: Hook) -> None:
    hook.delay = 2.0
    started = time.monotonic()
    result = post_verdict(f"{hook.url}/slow", SUMMARY, timeout=0.3, attempts=2, backoff=0.0)
    elapsed = time.monotonic() - started
    assert not result.delivered and result.attempts == 2 and result.status is None
    assert result.error == "no answer within 0.3s"
    assert elapsed < 1.8  # bounded by the timeout, not the server's 2 s per request


def test_nobody_listening_is_reported_after_the_attempts(hook: Hook) -> None:
    del hook
    waits: list[float] = []
    result = post_verdict(f"http://127.0.0.1:{closed_port()}/hook", SUMMARY, sleep=waits.append)
    assert not result.delivered and result.attempts == 3 and len(waits) == 2
    assert result.error is not None and result.error.startswith("cannot connect:")


def test_a_client_error_or_a_redirect_is_final(hook: Hook) -> None:
    hook.answers["/gone"] = [404]
    hook.answers["/moved"] = [302]
    for path, status in (("/gone", 404), ("/moved", 302)):
        result = post_verdict(f"{hook.url}{path}", SUMMARY, sleep=lambda _: None)
        assert not result.delivered and result.attempts == 1 and result.status == status
    assert [r["path"] for r in hook.received] == ["/gone", "/moved"]  # the redirect not followed


def test_secrets_in_the_url_are_never_shown(hook: Hook) -> None:
    secret_url = hook.url.replace("http://", "http://bot:s3cr3t-pw@") + "/gone?token=t0k3n-xyz"
    hook.answers["/gone"] = [403]
    result = post_verdict(secret_url, SUMMARY)
    assert hook.received[0]["auth"] == "Basic Ym90OnMzY3IzdC1wdw=="  # bot:s3cr3t-pw, sent...
    shown = f"{result.url} {result.error} {result.line()}"
    for secret in ("s3cr3t-pw", "t0k3n-xyz", "bot:"):
        assert secret not in shown  # ...and never shown
    assert result.url == f"http://***@127.0.0.1:{hook.url.rsplit(':', 1)[1]}/gone?***"
    refused = post_verdict(f"http://bot:s3cr3t-pw@127.0.0.1:{closed_port()}/x?k=t0k3n-xyz",
                           SUMMARY, attempts=1)
    assert "s3cr3t-pw" not in f"{refused.error} {refused.line()}"


def test_what_is_not_an_http_url_is_reported_not_raised() -> None:
    for url in ("ftp://example.com/hook", "hooks.example.com/x", "", "http://[::1"):
        result = post_verdict(url, SUMMARY)
        assert not result.delivered and result.attempts == 0
        assert result.error is not None and "http(s) URL" in result.error
    assert mask_url("http://[::1") == "<invalid URL>"
    assert mask_url("https://hooks.example.com/services/T0/B0") == (
        "https://hooks.example.com/services/T0/B0")
