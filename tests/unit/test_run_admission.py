"""What surrounds a run, through the CLI on the fake platform: its schedule's window and the
freeze refuse it (nothing injected), the history indexes it, `compare last-passing` finds its
baseline, and the verdict is posted to a webhook."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from chaoskit.history import runs
from tests.fixtures.fake_runs import Lab


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    return Lab(tmp_path)


def around_today() -> str:
    today = datetime.now(UTC).date()
    return f"{today - timedelta(days=1)}..{today + timedelta(days=1)}"


def with_schedule(lab: Lab, schedule: str, name: str = "t") -> Path:
    path = lab.write(name)
    path.write_text(path.read_text().replace("phases:", f"schedule: {schedule}\nphases:", 1))
    return path


def test_a_run_outside_its_window_is_refused_with_the_window_and_injects_nothing(
        lab: Lab) -> None:
    path = with_schedule(lab, f'{{timezone: Asia/Shanghai, window: "not {around_today()}"}}')
    done = lab.run(path)
    assert done.returncode == 4, done.stdout + done.stderr
    assert "error[CK130]" in done.stderr and f'window "not {around_today()}"' in done.stderr
    assert "it next opens" in done.stderr and "(Asia/Shanghai)" in done.stderr
    assert lab.applied() == [] and not (lab.tmp / "runs").exists()
    anyway = lab.run(path, "--ignore-window", "incident review")
    assert anyway.returncode == 0, anyway.stdout + anyway.stderr
    assert "override: window and freeze ignored: incident review" in anyway.stdout
    assert lab.journal()[0]["overrides"] == ["window and freeze ignored: incident review"]


def test_the_freeze_refuses_all_but_approved_experiments(lab: Lab) -> None:
    frozen = {**lab.env(), "CHAOSKIT_FREEZE": around_today()}
    plain = lab.write("plain")
    refused = subprocess.run(lab.command(plain), capture_output=True, text=True, timeout=60,
                             cwd=lab.tmp, env=frozen)
    assert refused.returncode == 4 and "inside the freeze" in refused.stderr
    approved = with_schedule(lab, "{approved: true}", name="approved")
    ran = subprocess.run(lab.command(approved), capture_output=True, text=True, timeout=60,
                         cwd=lab.tmp, env=frozen)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    own = with_schedule(lab, f'{{freeze: "{around_today()}"}}', name="own")
    assert lab.run(own).returncode == 4  # its own freeze, without the environment's


def test_every_run_is_indexed_and_compare_finds_the_last_passing_run(lab: Lab) -> None:
    held = lab.write("t", value=0.3)
    assert lab.run(held, "--seed", "4", "--set", "x=1").returncode == 2  # undeclared parameter
    assert lab.run(held, "--seed", "4").returncode == 0
    failing = lab.write("t", value=0.7)
    assert lab.run(failing, "--seed", "4").returncode == 1
    rows = runs(lab.tmp / "runs", "t")
    assert [r.status for r in rows] == ["failed", "held"] and rows[0].seed == 4
    shown = subprocess.run([sys.executable, "-m", "chaoskit.cli", "history", "t", "--out",
                            str(lab.tmp / "runs")], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "failed" in shown.stdout and "errors-low (during)" in (
        shown.stdout)
    report = subprocess.run([sys.executable, "-m", "chaoskit.cli", "report",
                             str(rows[0].journal)], capture_output=True, text=True, timeout=60)
    page = rows[0].journal.with_name("report.html").read_text()
    assert report.returncode == 0 and '"id":"trend-errors-low-during"' in page
    assert f"{rows[1].run_id} (held" in page  # the earlier run, named on the trend's x axis
    compared = subprocess.run([sys.executable, "-m", "chaoskit.cli", "compare", "last-passing",
                               str(rows[0].journal)], capture_output=True, text=True,
                              timeout=60)
    assert compared.returncode == 1, compared.stdout + compared.stderr  # B is worse
    assert f"baseline: the last passing run, {rows[1].journal}" in compared.stdout
    none = subprocess.run([sys.executable, "-m", "chaoskit.cli", "compare", "last-passing",
                           str(rows[1].journal)], capture_output=True, text=True, timeout=60)
    assert none.returncode == 4 and "no earlier run of t held" in none.stderr


@pytest.fixture
def hook() -> Iterator[list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            seen.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    seen.append({"url": f"http://127.0.0.1:{server.server_address[1]}/hook"})
    yield seen
    server.shutdown()
    server.server_close()


def test_the_verdict_is_posted_to_the_webhook(lab: Lab, hook: list[dict[str, Any]]) -> None:
    url = hook.pop(0)["url"]
    done = lab.run(lab.write("t", value=0.7), "--webhook", url)
    assert done.returncode == 1 and "delivered (HTTP 204" in done.stdout
    (posted,) = hook
    assert posted["status"] == "failed" and posted["experiment"] == "t"
    assert "errors-low" in posted["text"]
    quiet = lab.run(lab.write("t", value=0.3), "--webhook", url, "--webhook-on", "not-held")
    assert quiet.returncode == 0 and len(hook) == 1  # a held gate stays quiet when asked
