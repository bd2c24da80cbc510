"""The http probe against a tiny local server: status, body, latency and no-answer cases."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from chaoskit.errors import ProbeError
from chaoskit.probes.base import ProbeContext, read_once
from chaoskit.probes.http import HttpProbe, HttpProbeConfig

ROUTES = {"/ready": (200, "ready"), "/starting": (200, "starting"), "/down": (503, "down"),
          "/slow": (200, "slow")}


class Handler(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        status, text = ROUTES.get(self.path, (404, "no"))
        if self.path == "/slow":
            time.sleep(0.3)
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        echoed = self.rfile.read(length)
        self.send_response(201)
        self.send_header("Content-Length", str(len(echoed)))
        self.end_headers()
        self.wfile.write(echoed)

    def log_message(self, *args: object) -> None:
        pass


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that timed out leaves a broken pipe behind: expected here


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    server = QuietServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def measure(**options: object) -> float:
    probe = HttpProbe(HttpProbeConfig.model_validate(options),
                      ProbeContext(platform=None, run_dir="/tmp"))
    return read_once(probe)


def test_ok_needs_an_expected_status_and_the_body(base_url: str) -> None:
    assert measure(url=base_url + "/ready", body_contains="ready") == 1.0
    assert measure(url=base_url + "/starting", body_contains="ready") == 0.0
    assert measure(url=base_url + "/down") == 0.0
    assert measure(url=base_url + "/down", expect_status=503) == 1.0
    assert measure(url=base_url + "/ready", expect_status=[201, 204]) == 0.0


def test_status_is_the_code_or_zero_without_an_answer(base_url: str) -> None:
    assert measure(url=base_url + "/down", measure="status") == 503.0
    assert measure(url="http://127.0.0.1:9/", measure="status", timeout="1s") == 0.0


def test_latency_covers_the_full_response(base_url: str) -> None:
    slow = measure(url=base_url + "/slow", measure="latency")
    assert 0.3 <= slow < 3.0


def test_timeout_counts_as_not_ok_and_fails_latency(base_url: str) -> None:
    assert measure(url=base_url + "/slow", timeout="50ms") == 0.0
    with pytest.raises(ProbeError) as err:
        measure(url=base_url + "/slow", timeout="50ms", measure="latency")
    assert "measure: ok" in err.value.hint


def test_post_sends_the_body(base_url: str) -> None:
    assert measure(url=base_url + "/x", method="POST", body='{"a": 1}', expect_status=201,
                   body_contains='"a": 1') == 1.0
