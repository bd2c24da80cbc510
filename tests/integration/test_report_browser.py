"""The HTML report of real fake-platform runs, rendered in headless Chromium, checked as a page."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from chaoskit.cli import main as chaoskit_main
from chaoskit.engine.run import RunOptions, run_experiment
from chaoskit.journal import read_journal, result
from chaoskit.spec.models import Experiment
from tests.fixtures.real import require_real

pytestmark = pytest.mark.integration

EXPERIMENT = """
apiVersion: chaoskit/v1
kind: Experiment
metadata: {{name: refund-lag-fake}}
target: {{platform: fake, lab: {lab}}}
phases: {{baseline: 0.8s, recover: 0.8s}}
faults:
  - {{name: bank-latency, type: fake, start: 0.2s, duration: 0.7s, signal: lag, value: 0.12}}
  - {{name: node-loss, type: fake, start: 0.4s, duration: 0.5s, signal: err, value: {err}}}
hypothesis:
  - {{name: refund-lag, probe: {{type: fake, signal: lag, default: 0.1, interval: 100ms}},
      expect: "<= baseline * 1.5"}}
  - {{name: error-rate, probe: {{type: fake, signal: err, interval: 100ms}}, expect: "<= 5%"}}
guardrails:
  - {{name: error-budget, probe: {{type: fake, signal: err, interval: 100ms}},
      abort_when: "> 0.5"}}
"""
# Keeps Chromium's own background fetches (updates, accounts) from leaving the machine.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync",
                  "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=5000"]


def fake_run(tmp_path: Path, name: str, err: float) -> Path:
    lab = tmp_path / f"{name}-lab"
    spec = YAML(typ="safe").load(EXPERIMENT.format(lab=lab, err=err))
    outcome = run_experiment(Experiment.model_validate(spec), f"{name}.yaml",
                             RunOptions(seed=7, out_dir=tmp_path / "runs", watchdog=False))
    return outcome.journal


def chromium(tmp_path: Path, page: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    binary = require_real("chromium")
    profile = tmp_path / "chromium-profile"
    return subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra,
                           page.resolve().as_uri()], capture_output=True, text=True,
                          timeout=120, check=True)


def page_requests(netlog: Path) -> list[str]:
    """URLs the page itself asked for (the browser's own housekeeping has no origin)."""
    log = json.loads(netlog.read_text())
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    urls = [e.get("params", {}).get("url") for e in log["events"] if e["type"] == start
            and e.get("params", {}).get("initiator") != "not an origin"]
    return [u for u in urls if u and not u.startswith(("file:", "data:"))]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("report-runs")
    return {"held": fake_run(tmp, "held", 0.02), "aborted": fake_run(tmp, "aborted", 0.9)}


def test_report_of_a_held_run_draws_every_plot_and_the_verdicts(
        runs: dict[str, Path], tmp_path: Path) -> None:
    journal = runs["held"]
    assert chaoskit_main(["report", str(journal)]) == 0
    report = journal.with_name("report.html")
    dom = chromium(tmp_path, report, "--dump-dom").stdout
    body = re.search(r"<body[^>]*>", dom)
    assert body is not None
    total = re.search(r'data-plots-total="(\d+)"', body.group(0))
    drawn = re.search(r'data-plots-drawn="(\d+)"', body.group(0))
    assert total and drawn and int(total.group(1)) == 3  # two items, one guardrail
    assert drawn.group(1) == total.group(1)
    assert len(re.findall(r"<canvas", dom)) == 3
    assert 'id="run-status">HELD<' in dom
    rows = re.findall(r'<tr class="verdict (held|failed)" data-item="([\w-]+)"', dom)
    assert len(rows) == 6 and all(state == "held" for state, _ in rows)
    assert "median margin" in dom  # the baseline-relative item carries its statistics
    assert "bank-latency (fake)" in dom  # the fault legend was built by the page's script


def test_report_of_an_aborted_run_marks_the_guardrail(runs: dict[str, Path],
                                                      tmp_path: Path) -> None:
    journal = runs["aborted"]
    records = read_journal(journal)
    assert (result(records) or {}).get("status") == "aborted"
    assert chaoskit_main(["report", str(journal)]) == 0
    dom = chromium(tmp_path, journal.with_name("report.html"), "--dump-dom").stdout
    assert 'id="run-status">ABORTED<' in dom
    assert re.search(r'<tr class="guardrail">.*?error-budget', dom, re.DOTALL)
    assert re.search(r'<tr class="abort">.*?by guardrail|abort \(guardrail\)', dom, re.DOTALL)
    drawn = re.search(r'data-plots-drawn="(\d+)"', dom)
    assert drawn and int(drawn.group(1)) == 3


def test_report_makes_no_network_request(runs: dict[str, Path], tmp_path: Path) -> None:
    report = runs["held"].with_name("report.html")
    chaoskit_main(["report", str(runs["held"])])
    page = report.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.IGNORECASE)
    netlog = tmp_path / "netlog.json"
    chromium(tmp_path, report, f"--log-net-log={netlog}", "--dump-dom")
    assert page_requests(netlog) == []
    # the detector itself works: a page with a remote image is caught
    control = tmp_path / "control.html"
    control.write_text('<html><body><img src="http://127.0.0.1:9/pixel.png"></body></html>')
    control_log = tmp_path / "control-netlog.json"
    chromium(tmp_path, control, f"--log-net-log={control_log}", "--dump-dom")
    assert page_requests(control_log) == ["http://127.0.0.1:9/pixel.png"]


def test_screenshot_is_rendered(runs: dict[str, Path], tmp_path: Path) -> None:
    chaoskit_main(["report", str(runs["aborted"])])
    shot = tmp_path / "report.png"
    chromium(tmp_path, runs["aborted"].with_name("report.html"), f"--screenshot={shot}",
             "--window-size=1280,2000")
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 40_000  # a blank 1280x2000 page compresses to a few KB
