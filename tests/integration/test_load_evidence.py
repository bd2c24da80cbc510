"""What clients were told, through the real load engine: a dead gateway fails the run, and a
load engine that cannot send what the experiment declares makes it inconclusive, not held."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.nginx import NginxStatic, free_port

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.fixtures.nginx"]

EXPERIMENT = """\
apiVersion: chaoskit/v1
kind: Experiment
metadata: {{name: {name}}}
target: {{platform: fake, lab: {state}, entry: "{entry}"}}
system: {{flows: {{pay: {{request: {{method: GET, path: /}}}}}}}}
phases: {{baseline: 0s, recover: 0s}}
load:
  duration: {duration}
  timeout: 500ms
  workers: 1
  caps: {{rate: 200000}}
  profile: [{{shape: constant, rate: {rate}}}]
hypothesis:
  - name: clients-see-no-errors
    probe: {{type: load, measure: error_ratio, window: 1s, interval: 500ms}}
    expect: "<= 0.1%"
    phases: [during]
"""


def run(tmp: Path, name: str, entry: str, rate: int, duration: str = "3s"
        ) -> tuple[subprocess.CompletedProcess[str], dict]:
    path = tmp / f"{name}.yaml"
    path.write_text(EXPERIMENT.format(name=name, state=tmp / "state", entry=entry, rate=rate,
                                      duration=duration))
    env = {**os.environ, "CHAOSKIT_CLAIMS": str(tmp / "claims")}
    done = subprocess.run([sys.executable, "-m", "chaoskit.cli", "run", str(path), "--seed", "1",
                           "--display", "plain", "--no-report", "--out", str(tmp / name)],
                          capture_output=True, text=True, timeout=120, env=env)
    (journal,) = (tmp / name).glob("*/journal.jsonl")
    return done, json.loads(journal.read_text().splitlines()[-1])


def test_a_gateway_that_refuses_every_connection_fails_the_run(tmp_path: Path) -> None:
    done, closing = run(tmp_path, "refused", f"http://127.0.0.1:{free_port()}", rate=50)
    assert done.returncode == 1, done.stdout
    (item,) = closing["verdicts"]
    assert item["status"] == "failed" and item["observed"] == 1.0 and item["samples"] > 0


@pytest.fixture
def black_hole() -> Iterator[str]:
    """A gateway that accepts connections, reads, and never answers."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


def test_a_gateway_that_never_answers_fails_the_run(tmp_path: Path, black_hole: str) -> None:
    done, closing = run(tmp_path, "silent", black_hole, rate=20)
    assert done.returncode == 1, done.stdout
    (item,) = closing["verdicts"]
    assert item["status"] == "failed" and item["observed"] == 1.0


def test_a_load_engine_that_cannot_keep_up_makes_the_run_inconclusive(
        tmp_path: Path, nginx_static: NginxStatic) -> None:
    # One worker process on a 2-core machine cannot send 150,000 requests a second.
    done, closing = run(tmp_path, "overloaded", nginx_static.url, rate=150_000, duration="3s")
    assert done.returncode == 5, done.stdout
    assert closing["status"] == "inconclusive"
    (delivered,) = closing["preconditions"]
    assert delivered["name"] == "load-delivered" and not delivered["met"]
    assert "was not tested at the declared rate" in delivered["detail"]
    assert "load-delivered" in done.stdout  # the reader is told, not only the journal
