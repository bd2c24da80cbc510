"""The engine's guarantees on the paths a review found open: each test failed before its fix.

Nothing left broken on any path (recover after a closed run, a failed apply, an inject-phase
error, a second run, a dead watchdog, an unknown fault type) and no verdict without evidence
(a blind guardrail, a probe with nothing to measure), on the fake platform through the CLI.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from chaoskit.engine import guard as guard_module
from chaoskit.engine import lease
from chaoskit.engine.guard import RunGuard
from chaoskit.engine.lifecycle import FaultLifecycle
from chaoskit.engine.recovery import recover_journal
from chaoskit.engine.run import Run, RunOptions, run_experiment
from chaoskit.errors import JournalError, LoadError, PlatformError
from chaoskit.journal import JournalWriter, Kind
from chaoskit.platforms.calls import blocking
from chaoskit.spec.loader import load_experiment
from chaoskit.testing import FakePlatform
from tests.fixtures.fake_runs import Lab, kinds


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    return Lab(tmp_path)


def experiment(lab: Lab, body: str, name: str = "t") -> Path:
    """An experiment on the lab's fake platform; `body` is YAML after target and phases."""
    path = lab.tmp / f"{name}.yaml"
    path.write_text(f"""apiVersion: chaoskit/v1
kind: Experiment
metadata: {{name: {name}}}
target: {{platform: fake, lab: {lab.state}, scope: {{nodes: [node-1, node-2, node-3]}}}}
phases: {{baseline: 200ms, recover: 300ms}}
""" + body)
    return path


FAULT = "faults:\n  - {{name: f1, type: fake, start: 100ms, duration: {duration}{extra}}}\n"
HOLDS = ("hypothesis:\n  - {name: ok, probe: {type: fake, signal: s, interval: 100ms}, "
         "expect: \"<= 1\"}\n")


def recover(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "chaoskit.cli", "recover", "--out",
                           str(lab.tmp / "runs"), *args], capture_output=True, text=True,
                          timeout=60, env=lab.env(), cwd=lab.tmp)


# -- nothing left broken ----------------------------------------------------------------------
def test_recover_reverts_what_a_closed_run_could_not_and_says_what_it_could_not(
        lab: Lab) -> None:
    lab.state.mkdir(parents=True)
    (lab.state / "block-revert").write_text("")
    done = lab.run(experiment(lab, FAULT.format(duration="300ms",
                                                extra=", fail: revert-while-blocked") + HOLDS))
    assert done.returncode == 4 and "chaoskit recover" in done.stdout, done.stdout
    assert lab.journal()[-1]["outstanding"] == ["f1"] and lab.applied() == ["f1"]
    blocked = recover(lab)
    assert blocked.returncode == 4, blocked.stdout + blocked.stderr
    assert "COULD NOT REVERT f1" in blocked.stdout and lab.applied() == ["f1"]
    (lab.state / "block-revert").unlink()
    fixed = recover(lab)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "reverted: f1" in fixed.stdout and lab.applied() == []
    closing = lab.journal()[-1]
    assert closing["kind"] == "result" and closing["outstanding"] == []
    assert closing["audit"]["clean"] and closing["status"] == "error"  # its verdict stands
    assert "nothing to recover" in recover(lab).stdout


def test_a_fault_that_fails_to_apply_stops_every_later_fault(lab: Lab) -> None:
    body = textwrap.dedent("""\
        faults:
          - {name: f1, type: fake, start: 100ms, duration: 1s, fail: inject}
          - {name: f2, type: fake, start: 700ms, duration: 1s}
        """) + HOLDS
    done = lab.run(experiment(lab, body))
    assert done.returncode == 4, done.stdout
    intents = [r["fault"] for r in lab.journal() if r["kind"] == "intent"]
    assert intents == ["f1"] and lab.applied() == []


def test_an_error_elsewhere_in_the_inject_phase_stops_the_fault_timeline(
        lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken_load(self: Run, *args: Any, **kwargs: Any) -> None:
        await asyncio.sleep(0.1)
        raise LoadError("the load engine broke (as the test asks)")

    monkeypatch.setattr(Run, "_drive_load", broken_load)
    monkeypatch.setenv("CHAOSKIT_CLAIMS", str(lab.tmp / "claims"))
    body = textwrap.dedent("""\
        phases: {baseline: 0s, recover: 0s}
        load: {duration: 2s, target: "http://127.0.0.1:9", profile: [{shape: constant, rate: 5}]}
        faults:
          - {name: late, type: fake, start: 600ms, duration: 1s}
        """) + HOLDS
    path = experiment(lab, body).read_text().replace(
        "phases: {baseline: 200ms, recover: 300ms}\n", "")
    (lab.tmp / "t.yaml").write_text(path)
    result = run_experiment(load_experiment(lab.tmp / "t.yaml"), "t.yaml",
                            RunOptions(seed=1, out_dir=lab.tmp / "runs", watchdog=False))
    assert result.status == "error" and "load engine broke" in result.message
    assert "intent" not in kinds(lab.journal()) and lab.applied() == []


def _long_run(lab: Lab, name: str) -> Path:
    return experiment(lab, FAULT.format(duration="30s", extra=", target: {node: node-1}")
                      + HOLDS, name=name)


def _journal_of(lab: Lab, name: str) -> Path:
    deadline = time.monotonic() + 10
    while not list((lab.tmp / "runs").glob(f"{name}-*/journal.jsonl")):
        assert time.monotonic() < deadline, "the run never opened its journal"
        time.sleep(0.05)
    return next((lab.tmp / "runs").glob(f"{name}-*/journal.jsonl"))


def test_a_second_run_on_held_targets_is_refused_and_a_live_run_is_never_recovered(
        lab: Lab) -> None:
    first = lab.start(_long_run(lab, "first"))
    try:
        lab.wait_applied()
        held = _journal_of(lab, "first")
        run_id = held.parent.name
        second = lab.run(_long_run(lab, "second"))
        assert second.returncode == 4, second.stdout + second.stderr
        assert f"held by live run {run_id}" in second.stdout + second.stderr
        refused = recover(lab, str(held))
        assert refused.returncode == 4 and "is alive" in refused.stderr
        assert lab.applied() == ["f1"] and not held.read_text().count('"kind":"result"')
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=30)
    assert first.returncode == 143 and lab.applied() == []


def _watchdog_of(journal: Path) -> int | None:
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"chaoskit.engine.watchdog" in argv and str(journal).encode() in argv:
            return int(entry.name)
    return None


def test_the_runner_starts_a_new_watchdog_when_its_watchdog_dies(lab: Lab) -> None:
    runner = lab.start(_long_run(lab, "watched"))
    try:
        lab.wait_applied()
        journal = _journal_of(lab, "watched")
        first = _watchdog_of(journal)
        assert first is not None
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while "the watchdog exited" not in journal.read_text():
            assert time.monotonic() < deadline, "no new watchdog was started"
            time.sleep(0.1)
        second = _watchdog_of(journal)
        assert second is not None and second != first
    finally:
        runner.send_signal(signal.SIGTERM)
        runner.wait(timeout=30)
    assert lab.applied() == []


def test_recovery_reverts_each_fault_on_its_own(tmp_path: Path) -> None:
    platform = FakePlatform(tmp_path / "state")
    (platform.state_dir / "faults" / "known").write_text("applied")
    journal = JournalWriter(tmp_path / "run" / "journal.jsonl")
    journal.write(Kind.HEADER, run_id="dead-run", pid=2**22 + 1, lease=str(tmp_path / "lease"),
                  platform=platform.describe(), experiment="x", source="x", seed=1, spec={})
    journal.write(Kind.INTENT, fault="unknown", type="no-such-fault", intent={"fault": "unknown"})
    journal.write(Kind.INTENT, fault="known", type="fake",
                  intent={"fault": "known", "node": None, "signal": None, "value": 1.0,
                          "fail": None, "inject_delay": 0.0, "revert_delay": 0.0})
    journal.close()
    report = asyncio.run(recover_journal(tmp_path / "run" / "journal.jsonl", "test"))
    assert report.reverted == ["known"] and platform.applied() == []
    assert "unknown fault type 'no-such-fault'" in report.not_reverted["unknown"]
    assert not report.clean and any("COULD NOT REVERT unknown" in line
                                    for line in report.lines())


# -- no verdict without evidence ----------------------------------------------------------------
def test_a_guardrail_that_cannot_be_read_aborts_the_run(lab: Lab) -> None:
    body = FAULT.format(duration="20s", extra="") + HOLDS + textwrap.dedent("""\
        guardrails:
          - {name: blind, probe: {type: fake, signal: s, fail: true, interval: 100ms},
             abort_when: "> 0"}
        """)
    done = lab.run(experiment(lab, body))
    assert done.returncode == 3, done.stdout
    journal = lab.journal()
    blind = next(r for r in journal if r["kind"] == "guardrail-blind")
    assert blind["samples"] == 3 and "could not be read 3 times" in done.stdout
    assert lab.applied() == []


def test_a_probe_with_nothing_to_measure_is_inconclusive_never_a_pass(lab: Lab) -> None:
    body = FAULT.format(duration="300ms", extra="") + textwrap.dedent("""\
        hypothesis:
          - {name: refunds-on-schedule, probe: {type: fake, signal: s, no_data: true,
             interval: 100ms}, expect: ">= 99.9%"}
        """)
    done = lab.run(experiment(lab, body))
    assert done.returncode == 5, done.stdout
    closing = lab.journal()[-1]
    assert closing["status"] == "inconclusive"
    assert {v["status"] for v in closing["verdicts"]} == {"inconclusive"}
    assert "no evidence" in done.stdout


# -- blast radius -----------------------------------------------------------------------------
def test_a_destructive_fault_without_a_node_scope_is_invalid_input(lab: Lab) -> None:
    path = experiment(lab, textwrap.dedent("""\
        faults: [{name: down, type: node-loss, mode: kill, target: {node: any}, duration: 1s}]
        """))
    path.write_text(path.read_text().replace(", scope: {nodes: [node-1, node-2, node-3]}", ""))
    done = lab.run(path)
    assert done.returncode == 2
    assert f"{path}:6:" in done.stderr and "target.scope.nodes is empty" in done.stderr
    assert lab.applied() == [] and FakePlatform(lab.state).lost_nodes() == []


def test_nodes_a_scale_fault_adds_are_checked_against_the_scope(lab: Lab) -> None:
    done = lab.run(experiment(lab, textwrap.dedent("""\
        faults: [{name: more, type: scale, nodes: 1, duration: 1s}]
        """)))
    assert done.returncode == 4
    assert "node node-4 is outside target.scope.nodes" in done.stdout + done.stderr
    assert [n.name for n in FakePlatform(lab.state).nodes()] == ["node-1", "node-2", "node-3"]


def test_load_to_a_host_outside_the_scope_is_refused(lab: Lab) -> None:
    done = lab.run(experiment(lab, textwrap.dedent("""\
        load: {duration: 1s, target: "http://192.0.2.7:80", profile: [{shape: constant,
               rate: 5}]}
        """) + HOLDS))
    assert done.returncode == 4
    assert "192.0.2.7 is not loopback" in done.stdout + done.stderr
    assert "target.scope.hosts" in done.stdout + done.stderr


def test_load_above_its_caps_is_invalid_input_naming_the_line(lab: Lab) -> None:
    body = textwrap.dedent("""\
        load:
          duration: 2s
          target: "http://127.0.0.1:9"
          profile: [{shape: constant, rate: 1000}, {shape: spike, at: 1s, rate: 30000, hold: 100ms}]
        """) + HOLDS
    path = experiment(lab, body)
    done = lab.run(path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{path}:9:" in done.stderr and "31,000/s, above its cap of 20,000/s" in done.stderr
    raised = path.read_text().replace("  duration: 2s\n", "  duration: 2s\n  caps: {rate: 40000}\n")
    path.write_text(raised)
    assert lab.run(path, "--dry-run").returncode == 0


# -- a run that can always be stopped ------------------------------------------------------------
def test_a_hung_platform_call_is_bounded() -> None:
    async def hung() -> None:
        await blocking(time.sleep, 30, timeout=0.2, what="a hung cluster call")

    started = time.monotonic()
    with pytest.raises(PlatformError, match="a hung cluster call did not finish within 0.2s"):
        asyncio.run(hung())
    assert time.monotonic() - started < 2


def test_the_heartbeat_is_not_starved_by_a_busy_event_loop(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lease_path = tmp_path / "lease"

    async def busy() -> None:
        guard = RunGuard(tmp_path / "journal.jsonl", lease_path, watchdog=False)
        guard.start()
        started = time.monotonic()
        while time.monotonic() - started < lease.LEASE_TTL + 0.5:  # CPU on the loop itself
            sum(range(10_000))
        state = lease.read(lease_path)
        assert state is not None and state.beat_age() < 1.5  # the thread kept beating
        assert state.loop_age() > lease.LEASE_TTL  # ... and saw the loop stand still
        assert lease.why_gone(lease_path, os.getpid()) is None  # busy is not dead
        monkeypatch.setattr(lease, "LOOP_HANG_LIMIT", 2.0)
        assert "event loop has not run" in str(lease.why_gone(lease_path, os.getpid()))
        await guard.stop()

    asyncio.run(busy())


def test_a_stalled_loop_leaves_every_threads_stack_beside_the_journal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(guard_module, "STALL_DUMP_AFTER", 1.0)

    def wedged_for_a_while() -> None:
        time.sleep(2.2)  # the loop's own thread blocked, as by a synchronous call

    async def run() -> None:
        guard = RunGuard(tmp_path / "journal.jsonl", tmp_path / "lease", watchdog=False)
        guard.start()
        await asyncio.sleep(1.2)  # a healthy loop ticks: no dump
        assert not guard.stalls.exists()
        wedged_for_a_while()
        await asyncio.sleep(0.6)
        await guard.stop()

    asyncio.run(run())
    dumped = (tmp_path / "stalls.log").read_text()
    assert dumped.count("the event loop has not run for") == 1  # once per stall
    assert "wedged_for_a_while" in dumped and "chaoskit-lease" not in dumped.split("\n")[0]


# -- a journal that cannot be written ---------------------------------------------------------
def test_a_full_disk_never_blocks_a_revert_and_never_lets_an_unrecorded_fault_in(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CHAOSKIT_JOURNAL_FALLBACK", str(tmp_path / "fallback"))
    platform = FakePlatform(tmp_path / "state")
    path = tmp_path / "run" / "journal.jsonl"
    writer = JournalWriter(path)
    lifecycle = FaultLifecycle(platform, writer, "full-disk")
    intent = {"fault": "f", "node": None, "signal": None, "value": 1.0, "fail": None,
              "inject_delay": 0.0, "revert_delay": 0.0}
    asyncio.run(lifecycle.apply("f", "fake", intent))
    assert platform.applied() == ["f"]
    path.unlink()
    path.symlink_to("/dev/full")  # every write from now on fails: No space left on device
    writer._file = open(path, "a")  # noqa: SIM115 - the writer's file is now the full disk
    assert asyncio.run(lifecycle.revert_outstanding()) is True
    assert platform.applied() == []  # reverted although nothing reached the journal
    assert writer.degraded and writer.fallback is not None
    fallback = [json.loads(line) for line in writer.fallback.read_text().splitlines()]
    assert [r["kind"] for r in fallback] == ["reverted"]
    assert "cannot write the journal" in capfd.readouterr().err
    with pytest.raises(JournalError, match="cannot record the intent of fault 'g'") as refused:
        asyncio.run(lifecycle.apply("g", "fake", {**intent, "fault": "g"}))
    assert "the fault was not applied" in refused.value.hint
    assert platform.applied() == []
    writer.close()


def test_the_pytest_fixture_is_watched_like_a_run(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from chaoskit.engine.single import inject_fault
        from chaoskit.testing import FakePlatform
        platform = FakePlatform({str(tmp_path / 'state')!r})
        with inject_fault("fake", platform, name="adhoc", out_dir=Path({str(tmp_path)!r})):
            assert platform.applied() == ["adhoc"]
            os.kill(os.getpid(), signal.SIGKILL)  # the test process dies inside the block
    """)
    died = subprocess.run([sys.executable, "-c", script], timeout=30)
    assert died.returncode == -signal.SIGKILL
    platform = FakePlatform(tmp_path / "state")
    deadline = time.monotonic() + lease.LEASE_TTL + 5
    while platform.applied():
        assert time.monotonic() < deadline, "the watchdog never reverted the fixture's fault"
        time.sleep(0.1)
    (journal,) = tmp_path.glob("inject-adhoc-*/journal.jsonl")
    closing = [json.loads(line) for line in journal.read_text().splitlines()][-1]
    assert closing["kind"] == "result" and closing["status"] == "crashed"


ROLE_NOBODY_HOLDS = """system:
  roles: {busiest: [{http: "http://127.0.0.1:9/", pointer: /node}]}
faults:
  - {name: f1, type: fake, target: {role: busiest}, start: %s, duration: 300ms}
"""


def test_a_role_nobody_holds_yet_is_looked_for_when_its_fault_starts(lab: Lab) -> None:
    """'The worker with the most leases' holds none before the load runs: a fault that starts
    later is planned without its node, and still fails (nothing applied) if none holds it then."""
    later = experiment(lab, ROLE_NOBODY_HOLDS % "100ms", name="later")
    plan = lab.run(later, "--dry-run")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "role=busiest (found when it starts" in plan.stdout
    done = lab.run(later)
    assert done.returncode == 4, done.stdout
    assert "no node hosts the role 'busiest'" in done.stdout + done.stderr
    assert lab.applied() == [] and lab.journal()[-1]["audit"]["clean"]
    at_once = lab.run(experiment(lab, ROLE_NOBODY_HOLDS % "0s", name="now"))
    assert at_once.returncode == 4 and "no node hosts the role" in at_once.stdout + at_once.stderr
