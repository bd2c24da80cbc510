"""Verdicts catch real defects: a deliberately broken stack fails the matching experiment,
naming the failing item, while the healthy stack holds the same experiment."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.lab import RunningLab, start_lab, stop_lab
from tests.fixtures.real import require_real
from tests.fixtures.systems import REFERENCE_FILE

pytestmark = [pytest.mark.integration, pytest.mark.root]

# Workers hold their leases while the banks are slow; the node whose worker holds the most is
# killed. A healthy stack takes the leases over after the TTL (2 s) and the refunds still meet
# their 10 s promise; with `no-takeover` they stay stuck and fall due before the run ends.
# ~12 refunds/s held 1.5 s each keep ~6 leases on every worker: at 8/s and 700 ms the killed
# worker sometimes finished its two or three between the count and the kill, and the broken
# stack held.
LEASE_HOLDER_LOST = """\
apiVersion: chaoskit/v1
kind: Experiment
metadata: {{name: lease-holder-lost}}
system: {system}
target: {{platform: local, lab: {lab}, scope: {{nodes: any}}}}
phases: {{baseline: 2s, recover: 14s}}
load:
  duration: 16s
  mix: {{pay: 50%, refund: 50%}}
  profile: [{{shape: constant, rate: 24/s}}]
faults:
  - {{name: banks-slow, type: latency, target: {{dependency: bank}}, duration: 16s,
     latency: 1500ms}}
  - {{name: lease-holder-down, type: node-loss, mode: kill, target: {{role: worker-most-leases}},
     start: 6s, duration: 9s}}
hypothesis:
  - name: refunds-on-schedule
    probe: {{type: schedule, promise: refund, measure: on_time_ratio, interval: 1s}}
    expect: ">= 99.9%"
    phases: [after]
    aggregate: last
"""

# The scheduler's leader node is lost for most of the inject phase: the standby must lead.
LEADER_LOST = """\
apiVersion: chaoskit/v1
kind: Experiment
metadata: {{name: leader-lost}}
system: {system}
target: {{platform: local, lab: {lab}, scope: {{nodes: any}}}}
phases: {{baseline: 2s, recover: 4s}}
faults:
  - {{name: leader-down, type: node-loss, mode: kill, target: {{role: scheduler-leader}},
     start: 2s, duration: 14s}}
hypothesis:
  - name: a-scheduler-leads
    probe: {{type: metrics, service: scheduler, metric: payments_is_leader, interval: 1s}}
    expect: ">= 1"
    aggregate: p50
    phases: [during]
"""

# The database slows past the clients' timeout: they resend with the same Idempotency-Key, as
# payment SDKs do. An idempotent gateway replays the first answer; without idempotency the
# resend books the payment a second time.
RESENT_PAYMENTS = """\
apiVersion: chaoskit/v1
kind: Experiment
metadata: {{name: resent-payments}}
system: {system}
target: {{platform: local, lab: {lab}}}
phases: {{baseline: 2s, recover: 4s}}
load:
  duration: 10s
  mix: {{pay: 100%}}
  profile: [{{shape: constant, rate: 8/s}}]
  timeout: 800ms
  retries: 2
  retry_after: 100ms
faults:
  - {{name: db-slow, type: latency, target: {{dependency: postgres}}, start: 2s, duration: 6s,
     latency: 1200ms}}
hypothesis:
  - name: nothing-applied-twice
    probe: {{type: money, check: applied-once, interval: 1s}}
    expect: "== 0"
    phases: [after]
"""


def _run(tmp: Path, template: str, lab: RunningLab, name: str) -> tuple[int, list[dict]]:
    spec = tmp / f"{name}.yaml"
    spec.write_text(template.format(lab=lab.dir, system=REFERENCE_FILE))
    out = tmp / f"runs-{name}"
    done = subprocess.run([sys.executable, "-m", "chaoskit.cli", "run", str(spec), "--seed",
                           "1", "--display", "plain", "--no-report", "--out", str(out)],
                          capture_output=True, text=True, timeout=240)
    (journal,) = out.glob("*/journal.jsonl")
    result = json.loads(journal.read_text().splitlines()[-1])
    assert result["audit"]["clean"], done.stdout
    return done.returncode, [v for v in result["verdicts"] if not v["held"]]


@pytest.fixture
def broken_lab(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningLab]:
    require_real("toxiproxy-server")
    running = start_lab(tmp_path, CHAOSKIT_BROKEN=request.param)
    try:
        yield running
    finally:
        stop_lab(running)


# The healthy control of these three is long-tier (`make test-long`): `make test` already holds
# the healthy stack to every shipped gate experiment (tests/integration/test_mutants.py), which
# kill the same nodes and resend the same way.
@pytest.mark.long
@pytest.mark.parametrize("template, name", [(LEASE_HOLDER_LOST, "takeover"),
                                            (LEADER_LOST, "standby"),
                                            (RESENT_PAYMENTS, "idempotency")])
def test_the_healthy_stack_holds(lab: RunningLab, tmp_path: Path, template: str,
                                 name: str) -> None:
    code, failing = _run(tmp_path, template, lab, name)
    assert (code, failing) == (0, [])


@pytest.mark.parametrize("broken_lab, template, item", [
    ("no-takeover", LEASE_HOLDER_LOST, "refunds-on-schedule"),
    ("no-standby", LEADER_LOST, "a-scheduler-leads"),
    ("no-idempotency", RESENT_PAYMENTS, "nothing-applied-twice"),
], indirect=["broken_lab"])
def test_a_broken_stack_fails_naming_the_item(broken_lab: RunningLab, tmp_path: Path,
                                              template: str, item: str) -> None:
    code, failing = _run(tmp_path, template, broken_lab, "broken")
    assert code == 1
    assert [v["item"] for v in failing] == [item]
