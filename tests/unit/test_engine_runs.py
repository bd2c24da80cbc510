"""The engine through the real CLI on the fake platform: phases, exit codes, rollback paths."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from chaoskit.engine.lease import LEASE_TTL
from tests.fixtures.fake_runs import Lab, kinds


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    return Lab(tmp_path)


def test_a_healthy_run_holds_exits_0_and_reverts(lab: Lab) -> None:
    done = lab.run(lab.write())
    assert done.returncode == 0, done.stdout + done.stderr
    journal = lab.journal()
    order = kinds(journal)
    assert order.index("intent") < order.index("applied") < order.index("reverted")
    assert [r["phase"] for r in journal if r["kind"] == "phase"] == [
        "preflight", "baseline", "inject", "recover", "rollback"]
    assert journal[-1]["kind"] == "result" and journal[-1]["status"] == "held"
    assert journal[-1]["audit"]["clean"] is True
    assert lab.applied() == []


def test_a_broken_hypothesis_fails_with_exit_1_naming_the_item(lab: Lab) -> None:
    done = lab.run(lab.write(value=0.7))
    assert done.returncode == 1, done.stdout + done.stderr
    failing = [v for v in lab.journal()[-1]["verdicts"] if not v["held"]]
    assert [(v["item"], v["phase"]) for v in failing] == [("errors-low", "during")]
    assert "FAILED" in done.stdout
    assert lab.applied() == []


def test_a_guardrail_aborts_with_exit_3_and_reverts_at_once(lab: Lab) -> None:
    done = lab.run(lab.write(value=0.95, duration="20s"))
    assert done.returncode == 3, done.stdout + done.stderr
    journal = lab.journal()
    applied = next(r["t"] for r in journal if r["kind"] == "applied")
    reverted = next(r["t"] for r in journal if r["kind"] == "reverted")
    assert next(r for r in journal if r["kind"] == "abort")["by"] == "guardrail"
    assert reverted - applied < 5.0  # far before the fault's own 20 s end
    assert lab.applied() == []


def test_a_driver_that_raises_mid_inject_leaves_nothing_and_exits_4(lab: Lab) -> None:
    done = lab.run(lab.write(extra=", fail: inject"))
    assert done.returncode == 4, done.stdout + done.stderr
    journal = lab.journal()
    assert "inject-failed" in kinds(journal)
    assert "reverted" in kinds(journal)  # the half-applied fault was reverted
    assert journal[-1]["audit"]["clean"] is True
    assert lab.applied() == []


def test_a_revert_that_fails_once_is_retried(lab: Lab) -> None:
    done = lab.run(lab.write(extra=", fail: revert-once"))
    assert done.returncode == 0, done.stdout + done.stderr
    order = kinds(lab.journal())
    assert order.index("revert-failed") < order.index("reverted")
    assert lab.applied() == []


def test_a_revert_that_never_works_is_an_error_that_says_what_to_do(lab: Lab) -> None:
    done = lab.run(lab.write(extra=", fail: revert"))
    assert done.returncode == 4
    result = lab.journal()[-1]
    assert result["audit"]["clean"] is False
    assert "chaoskit recover" in result["error"]


def test_residue_found_by_the_audit_makes_the_run_an_error(lab: Lab) -> None:
    done = lab.run(lab.write(extra=", fail: audit"))
    assert done.returncode == 4
    assert lab.journal()[-1]["audit"]["residue"]["f1"]


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_reverts_before_exit(lab: Lab, sig: signal.Signals, code: int) -> None:
    runner = lab.start(lab.write(duration="60s"))
    lab.wait_applied()
    runner.send_signal(sig)
    output, _ = runner.communicate(timeout=20)
    assert runner.returncode == code, output
    assert lab.applied() == []
    assert lab.journal()[-1]["status"] == "interrupted"


def test_a_second_ctrl_c_does_not_skip_the_revert(lab: Lab) -> None:
    runner = lab.start(lab.write(duration="60s", extra=", revert_delay: 1s"))
    lab.wait_applied()
    runner.send_signal(signal.SIGINT)
    time.sleep(0.3)  # inside the slow revert
    runner.send_signal(signal.SIGINT)
    runner.send_signal(signal.SIGINT)
    output, _ = runner.communicate(timeout=20)
    assert runner.returncode == 130, output
    assert "still reverting" in output
    assert lab.applied() == []
    assert "reverted" in kinds(lab.journal())


def test_the_watchdog_reverts_within_the_lease_ttl_after_sigkill(lab: Lab) -> None:
    runner = lab.start(lab.write(duration="60s"))
    lab.wait_applied()
    runner.kill()
    runner.wait()
    killed = time.monotonic()
    while lab.applied() and time.monotonic() - killed < LEASE_TTL + 5:
        time.sleep(0.05)
    assert lab.applied() == [], "the watchdog did not revert the fault"
    assert time.monotonic() - killed <= LEASE_TTL + 2.0
    deadline = time.monotonic() + 5
    while kinds(lab.journal())[-1] != "result" and time.monotonic() < deadline:
        time.sleep(0.05)
    result = lab.journal()[-1]
    assert result["status"] == "crashed" and result["recovered_by"].startswith("watchdog")


def test_a_hung_runner_is_fenced_and_reverted_once_its_lease_lapses(lab: Lab) -> None:
    runner = lab.start(lab.write(duration="60s"))
    lab.wait_applied()
    runner.send_signal(signal.SIGSTOP)
    hung = time.monotonic()
    try:
        while lab.applied() and time.monotonic() - hung < LEASE_TTL + 5:
            time.sleep(0.05)
        assert lab.applied() == [], "the watchdog did not revert the hung runner's fault"
        assert time.monotonic() - hung >= LEASE_TTL - 0.5  # it waited for the lease, not less
        runner.wait(timeout=5)  # fenced: the watchdog killed it so it cannot re-apply
        assert runner.returncode == -signal.SIGKILL
    finally:
        runner.kill()
        runner.wait()


def test_recover_by_hand_reverts_what_a_dead_run_left(lab: Lab) -> None:
    path = lab.write(duration="60s")
    script = textwrap.dedent(f"""
        import asyncio, os
        from pathlib import Path
        from chaoskit.spec.loader import load_experiment
        from chaoskit.engine.run import Run, RunOptions
        options = RunOptions(out_dir=Path({str(lab.tmp / 'runs')!r}), watchdog=False)
        run = Run(load_experiment({str(path)!r}), "x", options)
        async def crash():
            from chaoskit.engine.lifecycle import build_driver
            from chaoskit.platforms import platform_for
            from chaoskit.engine.faultline import plan_faults
            import random
            run.platform = platform_for(run.experiment.target)
            run._open()
            (pf,) = await plan_faults(run.experiment, run.platform, random.Random(1), run.run_id)
            run.journal.write("intent", fault=pf.name, type=pf.type, intent=pf.intent)
            await build_driver(pf.type, run.platform, run.run_id).inject(pf.intent)
            os._exit(9)
        asyncio.run(crash())
    """)
    crashed = subprocess.run([sys.executable, "-c", script], cwd=lab.tmp, timeout=30)
    assert crashed.returncode == 9 and lab.applied() == ["f1"]
    done = subprocess.run([sys.executable, "-m", "chaoskit.cli", "recover", "--out",
                           str(lab.tmp / "runs")], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    assert lab.applied() == []
    assert lab.journal()[-1]["recovered_by"] == "chaoskit recover"


def test_dry_run_prints_the_timeline_and_injects_nothing(lab: Lab) -> None:
    done = lab.run(lab.write(), "--dry-run", "--seed", "3")
    assert done.returncode == 0, done.stderr
    assert "f1" in done.stdout and "nothing was injected" in done.stdout
    assert "seed 3" in done.stdout
    assert lab.applied() == [] and not (lab.tmp / "runs").exists()


def test_invalid_input_exits_2_and_injects_nothing(lab: Lab) -> None:
    path = lab.write()
    path.write_text(path.read_text().replace("duration: 800ms", "duration: -1s"))
    done = lab.run(path)
    assert done.returncode == 2
    assert f"{path}:" in done.stderr and "Traceback" not in done.stderr
    assert not (lab.tmp / "runs").exists()


def test_an_explicit_target_outside_the_scope_is_invalid_input(lab: Lab) -> None:
    path = lab.write(extra=", target: {node: node-3}", scope=", scope: {nodes: [node-1]}")
    done = lab.run(path)
    assert done.returncode == 2
    assert "node-3" in done.stderr and "scope" in done.stderr
    assert lab.applied() == [] and not (lab.tmp / "runs").exists()


def test_a_resolved_target_outside_the_scope_fails_preflight(lab: Lab) -> None:
    path = lab.write(extra=", target: {node: any}", scope=", scope: {nodes: [node-1]}")
    outcomes = set()
    for seed in range(6):
        done = lab.run(path, "--dry-run", "--seed", str(seed))
        inside = "node=node-1" in done.stdout
        assert done.returncode == (0 if inside else 4), done.stdout + done.stderr
        assert inside or "outside target.scope.nodes" in done.stderr
        outcomes.add(inside)
    assert outcomes == {True, False}  # both branches were exercised
    assert lab.applied() == []


def test_a_failing_preflight_exits_4_before_anything_runs(lab: Lab) -> None:
    lab.state.mkdir(parents=True)
    (lab.state / "preflight-problem").write_text("bank channel unreachable")
    done = lab.run(lab.write())
    assert done.returncode == 4
    assert "bank channel unreachable" in done.stdout + done.stderr
    assert "intent" not in kinds(lab.journal())


def test_a_seed_makes_target_choices_reproducible(lab: Lab) -> None:
    path = lab.write(extra=", target: {node: any}")

    def chosen(seed: int) -> str:
        done = lab.run(path, "--dry-run", "--seed", str(seed))
        assert done.returncode == 0, done.stderr
        return next(word for word in done.stdout.split() if word.startswith("node=node-"))

    assert chosen(7) == chosen(7)
    assert len({chosen(seed) for seed in range(8)}) > 1


@pytest.fixture(autouse=True)
def _no_leftover_watchdogs(lab: Lab) -> None:
    yield
    # Each run's watchdog exits once the journal is closed; none may outlive its test.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        alive = [p for p in Path("/proc").glob("[0-9]*/cmdline")
                 if str(lab.tmp) in _read(p) and "chaoskit.engine.watchdog" in _read(p)]
        if not alive:
            return
        time.sleep(0.1)
    raise AssertionError(f"watchdog processes outlived the test: {alive}")


def _read(path: Path) -> str:
    try:
        return path.read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""





def _move_role_during_baseline(lab: Lab, node: str) -> None:
    import threading

    from chaoskit.testing import FakePlatform

    def move() -> None:
        time.sleep(0.5)  # after planning, before the fault starts
        FakePlatform(lab.state).move_role("leader", node)
    threading.Thread(target=move, daemon=True).start()


def test_a_role_is_resolved_when_the_fault_starts_not_when_the_run_is_planned(lab: Lab) -> None:
    path = lab.write(extra=", target: {role: leader}", baseline="1500ms")
    _move_role_during_baseline(lab, "node-3")
    done = lab.run(path)
    assert done.returncode == 0, done.stdout + done.stderr
    (intent,) = [r for r in lab.journal() if r["kind"] == "intent"]
    assert intent["intent"]["node"] == "node-3"


def test_a_role_that_moves_outside_the_scope_is_refused_before_anything_is_applied(
        lab: Lab) -> None:
    path = lab.write(extra=", target: {role: leader}", baseline="1500ms",
                     scope=", scope: {nodes: [node-1]}")
    _move_role_during_baseline(lab, "node-3")
    done = lab.run(path)
    assert done.returncode == 4, done.stdout + done.stderr
    assert "outside target.scope.nodes" in done.stdout
    assert "intent" not in kinds(lab.journal()) and lab.applied() == []
