"""The processes platform on otherpay's real processes, through the real fault drivers."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from chaoskit.faults.colocate import Colocate, ColocateConfig
from chaoskit.faults.node_loss import NodeLoss, NodeLossConfig
from chaoskit.journal import JournalWriter, Kind, read_journal
from chaoskit.platforms.abilities import OfflineWork
from chaoskit.platforms.processes import colocation, freezing, groups, procfs
from chaoskit.platforms.processes.config import ProcessesConfig
from chaoskit.platforms.processes.platform import ProcessesPlatform
from chaoskit.platforms.processes.recovery import recover_processes
from tests.fixtures.waiting import eventually
from tests.otherpay.launcher import HEALTH, ROOT, OtherPay

pytestmark = [pytest.mark.integration, pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="freezer, cgroups and iptables "
                                                           "need root")]
WORKER = "otherpay-worker"


# -- helpers ----------------------------------------------------------------------------------
def service(op: OtherPay, name: str, **extra: Any) -> dict[str, Any]:
    return {"pidfile": str(op.pidfiles[name]), "start": op.commands[name], "cwd": str(ROOT),
            "log": str(op.logs[name]), "health": op.urls[name] + HEALTH[name],
            "metrics": op.urls[name] + ("/api/v2/metrics" if name == "api" else "/metrics"),
            "stop_timeout": "5s", "start_timeout": "30s", **extra}


def platform(op: OtherPay, state: Path, services: dict[str, Any] | None = None
             ) -> ProcessesPlatform:
    config = ProcessesConfig.model_validate({"state_dir": str(state), "services": services or {
        f"otherpay-{s}": service(op, s) for s in ("api", "worker", "bank")}})
    return ProcessesPlatform.build(config, entry=op.api_url, database=op.database_url,
                                   toxiproxy_url=op.toxiproxy_url, run=f"t-{uuid.uuid4().hex[:8]}")


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def loss(target: ProcessesPlatform, mode: str, node: str = WORKER) -> tuple[NodeLoss, Any]:
    driver = NodeLoss(target, target.run)
    intent = driver.plan(f"{mode}-{node}", {"node": node},
                         NodeLossConfig(mode=mode, recovery_timeout=30), random.Random(1))
    return driver, intent


def timed(coro: Any) -> tuple[Any, float]:
    started = time.monotonic()
    result = run(coro)
    return result, round((time.monotonic() - started) * 1e3, 1)


def refund(op: OtherPay) -> str:
    charge = op.post("/api/v2/merchants/shop-p/charges", {
        "request_id": f"r-{uuid.uuid4().hex}", "amount_cents": 5_000, "ccy": "EUR"})
    assert charge.status_code == 200, charge.text
    asked = op.post(f"/api/v2/charges/{charge.json()['charge']['charge_ref']}/refunds",
                    {"request_id": f"r-{uuid.uuid4().hex}", "amount_cents": 1_000})
    assert asked.status_code == 202, asked.text
    return str(asked.json()["refund"]["refund_ref"])


def states(op: OtherPay, refs: list[str]) -> dict[str, Any]:
    rows = op.query("SELECT refund_ref, state, promised_by < now() AS late FROM "
                    "op_refund_requests WHERE refund_ref = ANY(%s)", (refs,))
    return {r["refund_ref"]: (r["state"], r["late"]) for r in rows}


def all_settled(op: OtherPay, refs: list[str], timeout: float = 30) -> None:
    eventually(lambda: {s for s, _ in states(op, refs).values()} == {"SETTLED"}, timeout,
               f"refunds {refs} settled")


def answers(url: str, timeout: float = 1.5) -> bool:
    try:
        return httpx.get(url, timeout=timeout, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def all_healthy(op: OtherPay) -> None:
    """Every otherpay service answers (whoever started it: the fixture or chaoskit)."""
    eventually(lambda: all(op.healthy(s) for s in ("api", "worker", "bank")), 10,
               "otherpay healthy", interval=0.1)


def chaoskit_rules() -> list[str]:
    out = []
    for tool in ("iptables", "ip6tables"):
        done = subprocess.run([tool, "-S"], capture_output=True, text=True, check=False)
        out += [line for line in done.stdout.splitlines() if "chaoskit" in line]
    return out


def chaoskit_groups() -> list[Path]:
    return [g for h in ("freezer", "cpu", "cpuset", groups.V2)
            if (root := groups.mount(h)) is not None
            for g in root.joinpath(*groups.TOP).rglob("*") if g.is_dir()]


def clean(target: ProcessesPlatform) -> None:
    """Nothing of ours is left, and every service is itself."""
    assert chaoskit_rules() == []
    assert chaoskit_groups() == []
    for node in target.nodes():
        assert target.node_residue(node.name) == [], node.name


# -- preflight --------------------------------------------------------------------------------
def test_preflight_passes_and_the_description_rebuilds_the_platform(otherpay: OtherPay,
                                                                   tmp_path: Path) -> None:
    target = platform(otherpay, tmp_path / "state")
    assert run(target.preflight()) == []
    assert [n.name for n in target.nodes()] == ["otherpay-api", "otherpay-worker",
                                                "otherpay-bank"]
    again = ProcessesPlatform.from_description(json.loads(json.dumps(target.describe())))
    assert again.describe() == target.describe() and again.identity() == target.identity()
    assert again.database_url() == otherpay.database_url
    assert again.node_loss_modes() == {"kill": None, "stop": None, "freeze": None,
                                       "isolate": None}
    assert not (tmp_path / "state").exists()  # preflight changes nothing


@pytest.mark.parametrize(("change", "expected"), [
    ({"pidfile": "/nonexistent/worker.pid"}, "pid file /nonexistent/worker.pid does not exist"),
    ({"pidfile": None, "command": r"tests\.otherpay no-such-service"},
     r"no process matches /tests\.otherpay no-such-service/"),
    ({"pidfile": None, "command": r"-m tests\.otherpay (api|worker|bank)"},
     "matches 3 separate processes, not 1"),
    ({"start": None}, "has no `start:` command"),
])
def test_preflight_refuses_what_it_cannot_find_or_restart_and_changes_nothing(
        otherpay: OtherPay, tmp_path: Path, change: dict[str, Any], expected: str) -> None:
    pids = {s: otherpay.pid(s) for s in ("api", "worker", "bank")}
    spec = {k: v for k, v in {**service(otherpay, "worker"), **change}.items() if v is not None}
    target = platform(otherpay, tmp_path / "state", {WORKER: spec})
    problems = run(target.preflight())
    assert any(expected in p for p in problems), problems
    assert not (tmp_path / "state").exists()
    assert {s: otherpay.pid(s) for s in pids} == pids
    assert chaoskit_rules() == [] and chaoskit_groups() == []


# -- node loss, through the node-loss driver ----------------------------------------------------
def test_kill_leaves_refunds_waiting_past_their_promise_and_the_restart_settles_them(
        otherpay: OtherPay, tmp_path: Path) -> None:
    target = platform(otherpay, tmp_path / "state")
    driver, intent = loss(target, "kill")
    old = otherpay.pid("worker")
    facts, kill_ms = timed(driver.inject(intent))
    assert facts["killed"] == [old] and "tests.otherpay worker" in facts["commands"][str(old)]
    assert otherpay.pid("worker") is None
    refs = [refund(otherpay) for _ in range(3)]
    eventually(lambda: set(states(otherpay, refs).values()) == {("REQUESTED", True)}, 15,
               "refunds requested and late while the worker is down", interval=0.2)
    assert run(driver.verify_reverted(intent))  # the audit sees the worker gone
    reverted, restart_ms = timed(driver.revert(intent))
    new = otherpay.pid("worker")
    assert new is not None and new != old and reverted["node_healthy"] is True
    assert reverted["started"]["command"] == otherpay.commands["worker"]
    all_settled(otherpay, refs)
    assert run(driver.verify_reverted(intent)) == []
    again = run(driver.revert(intent))  # idempotent: already running, nothing started
    assert again["already_running"] == [new] and otherpay.pid("worker") == new
    print(f"\nkill {kill_ms} ms, restart until healthy {restart_ms} ms")
    clean(target)


def test_freeze_hangs_the_worker_with_its_sockets_open_and_thaw_brings_it_back(
        otherpay: OtherPay, tmp_path: Path) -> None:
    target = platform(otherpay, tmp_path / "state")
    driver, intent = loss(target, "freeze")
    pid = otherpay.pid("worker")
    health = otherpay.urls["worker"] + "/health"
    facts, freeze_ms = timed(driver.inject(intent))
    assert facts["freeze"] == "cgroup freezer"
    assert not answers(health, timeout=1.0)  # the connection is accepted; no answer comes
    assert any("FROZEN" in r for r in target.node_residue(WORKER))
    refs = [refund(otherpay)]
    time.sleep(1.0)
    assert states(otherpay, refs)[refs[0]][0] == "REQUESTED"
    _, thaw_ms = timed(driver.revert(intent))
    assert answers(health) and otherpay.pid("worker") == pid  # the same process, thawed
    all_settled(otherpay, refs)
    print(f"\nfreeze {freeze_ms} ms, thaw until healthy {thaw_ms} ms")
    clean(target)


def test_stop_is_graceful_and_the_revert_starts_the_worker_again(otherpay: OtherPay,
                                                                 tmp_path: Path) -> None:
    target = platform(otherpay, tmp_path / "state")
    driver, intent = loss(target, "stop")
    old = otherpay.pid("worker")
    facts, stop_ms = timed(driver.inject(intent))
    assert facts["graceful"] is True and facts["stopped"] == [old]
    assert not otherpay.pidfiles["worker"].exists()  # it exited cleanly: removed its pid file
    _, start_ms = timed(driver.revert(intent))
    assert otherpay.pid("worker") not in (None, old)
    print(f"\nstop {stop_ms} ms, start until healthy {start_ms} ms")
    clean(target)


def test_isolate_cuts_the_worker_off_both_ways_and_reconnect_leaves_no_rule(
        otherpay: OtherPay, tmp_path: Path) -> None:
    target = platform(otherpay, tmp_path / "state")
    driver, intent = loss(target, "isolate")
    pid = otherpay.pid("worker")
    health = otherpay.urls["worker"] + "/health"
    facts, isolate_ms = timed(driver.inject(intent))
    assert facts["isolate"] == "cgroup v2 + iptables" and facts["sockets_cut"]
    assert len(chaoskit_rules()) >= 3
    assert not answers(health)  # a loopback client gets no answer from it
    assert answers(otherpay.urls["api"] + "/api/v2/health")  # the others are untouched
    refs = [refund(otherpay) for _ in range(2)]
    time.sleep(3.0)  # nothing settles: the worker reaches neither its database nor the bank
    assert {s for s, _ in states(otherpay, refs).values()} == {"REQUESTED"}
    assert any("iptables rule left" in r for r in target.node_residue(WORKER))
    _, reconnect_ms = timed(driver.revert(intent))
    assert chaoskit_rules() == []
    all_settled(otherpay, refs)
    assert answers(health) and otherpay.pid("worker") == pid
    assert groups.mount(groups.V2) is not None
    print(f"\nisolate {isolate_ms} ms, reconnect until healthy {reconnect_ms} ms")
    clean(target)


# -- co-location, through the colocate driver ---------------------------------------------------
BUSY = ["-m", "chaoskit.lab.offline", "--cpu", "1", "--memory", "0", "--seconds", "47.25"]
PATTERN = r"chaoskit\.lab\.offline --cpu 1 --memory 0 --seconds 47\.25"
CPU = str(max(os.sched_getaffinity(0)))  # the service's one CPU: the batch is pinned to it


@pytest.fixture
def busy_service() -> Any:
    """A CPU-bound stand-in for an online service, on one CPU."""
    argv = ["taskset", "-c", CPU, sys.executable, *BUSY]
    child = subprocess.Popen(argv, start_new_session=True)
    yield {"command": PATTERN, "start": " ".join(argv)}
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()


def knobs(offline: list[str], service_pid: int) -> dict[str, str]:
    """cpuset.cpus and cpu.shares of the batch's groups and cpu.shares of the service's."""
    where = dict(c.split(":", 1) for c in offline if c.split(":", 1)[0] in ("cpu", "cpuset"))
    online = (groups.mount("cpu") or Path()) / str(procfs.cgroup_of(service_pid, "cpu"))[1:]
    return {"cpus": ((groups.mount("cpuset") or Path()) / where["cpuset"][1:]
                     / "cpuset.cpus").read_text().strip(),
            "offline_shares": ((groups.mount("cpu") or Path()) / where["cpu"][1:]
                               / "cpu.shares").read_text().strip(),
            "online_shares": (online / "cpu.shares").read_text().strip(), "online": str(online)}


def contend(target: ProcessesPlatform, isolation: bool) -> tuple[float, float, dict[str, Any]]:
    """CPU seconds the service and a one-worker burner next to it got over the same 3 s."""
    driver = Colocate(target, target.run)
    intent = driver.plan(f"batch-{isolation}".lower(), {"node": "busy"},
                         ColocateConfig(work="burner", cpu=1, isolation=isolation,
                                        lifetime="30s"), random.Random(1))
    facts = run(driver.inject(intent))
    try:
        offline_id = facts["processes"][0]
        time.sleep(0.5)
        before = (target.process_cpu_seconds("busy"), target.process_cpu_seconds(offline_id))
        time.sleep(3.0)
        used = (target.process_cpu_seconds("busy") - before[0],
                target.process_cpu_seconds(offline_id) - before[1])
        facts["cgroups"] = target.offline_processes(intent["tag"])[0].cgroups
        facts["knobs"] = knobs(facts["cgroups"], target.node("busy").find().roots[0])
    finally:
        facts["stopped"] = run(driver.revert(intent))["stopped"]
    assert run(driver.verify_reverted(intent)) == []
    return used[0], used[1], facts


def test_colocated_burner_yields_the_cpu_with_isolation_and_shares_it_without(
        busy_service: dict[str, str], tmp_path: Path) -> None:
    config = ProcessesConfig.model_validate({"state_dir": str(tmp_path / "state"),
                                             "services": {"busy": busy_service}})
    target = ProcessesPlatform.build(config, run=f"t-{uuid.uuid4().hex[:8]}")
    eventually(lambda: target.node("busy").find().running, 10, "the busy service")
    home = Path(f"/proc/{target.node('busy').find().roots[0]}/cgroup").read_text()
    isolated = contend(target, isolation=True)
    shared = contend(target, isolation=False)
    print(f"\nservice vs offline CPU s over 3 s: isolated {isolated[0]:.2f} vs "
          f"{isolated[1]:.2f}, shared {shared[0]:.2f} vs {shared[1]:.2f}")
    facts = isolated[2]
    assert facts["isolation"].startswith("cgroup cpu.shares 2 vs 1024")
    assert any(c.startswith("cpu:/chaoskit/processes/") and c.endswith("/offline")
               for c in facts["cgroups"]), facts["cgroups"]
    assert facts["knobs"]["cpus"] == CPU and facts["knobs"]["online"].endswith("/online")
    assert (facts["knobs"]["offline_shares"], facts["knobs"]["online_shares"]) == ("2", "1024")
    assert (shared[2]["knobs"]["offline_shares"], shared[2]["knobs"]["online_shares"]) == (
        "1024", "1024")
    assert isolated[0] > 0.5 and isolated[0] >= 5 * isolated[1]
    assert 0.5 <= shared[0] / max(shared[1], 1e-3) <= 2.0
    assert Path(f"/proc/{target.node('busy').find().roots[0]}/cgroup").read_text() == home
    assert chaoskit_groups() == []


@pytest.fixture
def sleeper() -> Any:
    """A service of one idle process on one CPU."""
    child = subprocess.Popen(["taskset", "-c", CPU, "sleep", "301.5"], start_new_session=True)
    yield {"command": r"^sleep 301\.5$", "start": "sleep 301.5"}
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()


def test_without_cgroups_freeze_is_sigstop_and_offline_work_is_niced_on_the_services_cpus(
        sleeper: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a non-root run does (we are root here: the cgroup paths are switched off)."""
    monkeypatch.setattr(freezing, "mechanism", lambda: freezing.SIGNALS)
    monkeypatch.setattr(colocation, "with_cgroups", lambda: False)
    config = ProcessesConfig.model_validate({"state_dir": str(tmp_path / "state"),
                                             "services": {"sleeper": sleeper}})
    target = ProcessesPlatform.build(config, run=f"t-{uuid.uuid4().hex[:8]}")
    pid = eventually(lambda: target.node("sleeper").find().roots, 10, "the sleeper")[0]
    assert target.lose_node("sleeper", "freeze")["freeze"] == "SIGSTOP/SIGCONT"
    assert (procfs.read(pid) or pytest.fail()).stopped
    assert f"node sleeper: pids [{pid}] are stopped (SIGSTOP)" in target.node_residue("sleeper")
    assert target.restore_node("sleeper", "freeze")["thawed"] == [pid]
    assert not (procfs.read(pid) or pytest.fail()).stopped
    assert target.node_residue("sleeper") == []
    assert target.offline_isolation().startswith("nice 19")
    made = target.start_offline("sleeper", "niced", OfflineWork("burner", True, 20.0, cpu=1))

    def burner() -> int | None:
        return next((p for p in colocation.tagged("niced")
                     if "chaoskit.lab.offline" in (procfs.read(p) or pytest.fail()).cmdline),
                    None)
    burning = eventually(burner, 10, "the burner running")
    assert os.getpriority(os.PRIO_PROCESS, burning) == 19
    assert os.sched_getaffinity(burning) == {int(CPU)} == os.sched_getaffinity(pid)
    assert target.stop_offline("niced") == [made]
    assert target.offline_residue("niced") == [] and chaoskit_groups() == []


def test_the_reference_batch_runs_next_to_a_service_against_target_database(
        sleeper: dict[str, str], database_url: str, tmp_path: Path) -> None:
    config = ProcessesConfig.model_validate({"state_dir": str(tmp_path / "state"),
                                             "services": {"sleeper": sleeper}})
    target = ProcessesPlatform.build(config, database=database_url,
                                     run=f"t-{uuid.uuid4().hex[:8]}")
    eventually(lambda: target.node("sleeper").find().running, 10, "the sleeper")
    driver = Colocate(target, target.run)
    intent = driver.plan("settle", {"node": "sleeper"}, ColocateConfig(
        work="reconciliation", units=20, rounds=1000, window="30s", finish=True,
        lifetime="60s"), random.Random(1))
    facts = run(driver.inject(intent))
    assert facts["isolation"].startswith("cgroup cpu.shares 2")
    reverted = run(driver.revert(intent))
    assert reverted["finished"] is True and reverted["finished_in_window"] is True
    assert reverted["stopped"] == facts["processes"]
    assert run(driver.verify_reverted(intent)) == [] and chaoskit_groups() == []


# -- recovery ---------------------------------------------------------------------------------
def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


RECOVER = ("import asyncio, sys; from pathlib import Path; "
           "from chaoskit.engine.recovery import recover_journal; "
           "r = asyncio.run(recover_journal(Path(sys.argv[1]), 'test')); "
           "print('\\n'.join(r.lines())); sys.exit(0 if r.clean else 1)")
SWEEP = ("import sys; from chaoskit.platforms.processes.recovery import recover_processes; "
         "print('\\n'.join(recover_processes(sys.argv[1], sys.argv[2])))")


def offline_left(run_id: str) -> list[int]:
    return procfs.tagged(f"CHAOSKIT_PROCESSES_RUN={run_id}")


def test_recover_journal_in_another_process_reverts_every_fault(otherpay: OtherPay,
                                                                tmp_path: Path) -> None:
    target = platform(otherpay, tmp_path / "state")
    api = otherpay.pid("api")
    path = tmp_path / target.run / "journal.jsonl"
    path.parent.mkdir()
    writer = JournalWriter(path)
    writer.write(Kind.HEADER, run_id=target.run, experiment="processes-recovery",
                 source="test", seed=1, pid=dead_pid(), spec={}, platform=target.describe(),
                 lease=str(path.with_name("lease")))
    faults: list[tuple[str, Any, dict[str, Any], Any]] = [
        ("burn", Colocate, {"node": "otherpay-bank"},
         ColocateConfig(work="burner", cpu=1, lifetime="120s")),
        ("freeze-worker", NodeLoss, {"node": WORKER}, NodeLossConfig(mode="freeze")),
        ("cut-bank", NodeLoss, {"node": "otherpay-bank"}, NodeLossConfig(mode="isolate")),
        ("kill-api", NodeLoss, {"node": "otherpay-api"}, NodeLossConfig(mode="kill")),
    ]
    for name, kind, where, config in faults:
        driver = kind(target, target.run)
        intent = driver.plan(name, where, config, random.Random(1))
        writer.write(Kind.INTENT, fault=name, type=kind.type_name, intent=intent)
        run(driver.inject(intent))
        writer.write(Kind.APPLIED, fault=name, type=kind.type_name, facts={})
    writer.close()
    assert chaoskit_rules() and chaoskit_groups() and offline_left(target.run)
    assert otherpay.pid("api") is None
    done = subprocess.run([sys.executable, "-c", RECOVER, str(path)], capture_output=True,
                          text=True, timeout=120, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert {f"  reverted: {name}" for name, *_ in faults} <= set(done.stdout.splitlines())
    assert read_journal(path)[-1]["kind"] == Kind.RESULT
    assert otherpay.pid("api") not in (None, api)
    all_healthy(otherpay)
    assert offline_left(target.run) == []
    clean(target)


def test_recover_processes_without_a_journal_finds_leftovers_by_name(otherpay: OtherPay,
                                                                     tmp_path: Path) -> None:
    from chaoskit.platforms.processes import marks

    state = tmp_path / "state"
    target = platform(otherpay, state)
    target.start_offline(WORKER, "leftover", OfflineWork("burner", True, 120.0, cpu=1))
    for node, mode in ((WORKER, "freeze"), ("otherpay-bank", "isolate"),
                       ("otherpay-api", "kill")):
        target.lose_node(node, mode)
    for mark in marks.node_marks(state, "otherpay-bank"):  # as if the mark were lost
        mark.unlink()
    assert recover_processes("another-run", state) == []
    assert chaoskit_rules() and otherpay.pid("api") is None
    done = subprocess.run([sys.executable, "-c", SWEEP, target.run, str(state)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr
    print("\n" + done.stdout)
    assert "deleted rule: iptables -A INPUT" in done.stdout and "started" in done.stdout
    all_healthy(otherpay)
    assert offline_left(target.run) == []
    assert recover_processes(target.run, state) == []  # nothing left for a second sweep
    clean(target)


# -- a whole run through the command line -----------------------------------------------------
def experiment(op: OtherPay, state: Path) -> dict[str, Any]:
    return {
        "apiVersion": "chaoskit/v1", "kind": "Experiment",
        "metadata": {"name": "processes-worker-loss"},
        "target": {"platform": "processes", "entry": op.api_url, "database": op.database_url,
                   "state_dir": str(state), "scope": {"nodes": [WORKER]},
                   "services": {WORKER: service(op, "worker")}},
        "phases": {"baseline": "2s", "recover": "3s"},
        "faults": [{"name": "worker-down", "type": "node-loss", "mode": "kill",
                    "target": {"node": WORKER}, "start": "1s", "duration": "4s",
                    "recovery_timeout": "20s"}],
        "hypothesis": [{"name": "worker-serves-after", "aggregate": "last",
                        "probe": {"type": "http", "url": op.urls["worker"] + "/health",
                                  "measure": "ok", "interval": "500ms"},
                        "expect": ">= 1", "phases": ["after"]}],
    }


def test_a_chaoskit_run_kills_the_worker_and_ends_with_it_back(otherpay: OtherPay,
                                                               tmp_path: Path) -> None:
    spec = tmp_path / "experiment.yaml"
    spec.write_text(json.dumps(experiment(otherpay, tmp_path / "state")))
    old = otherpay.pid("worker")
    done = subprocess.run([sys.executable, "-m", "chaoskit.cli", "run", str(spec), "--display",
                           "plain", "--no-report", "--out", str(tmp_path / "runs")],
                          capture_output=True, text=True, timeout=120, cwd=ROOT, check=False,
                          env={**os.environ, "CHAOSKIT_CLAIMS": str(tmp_path / "claims")})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    records = read_journal(next((tmp_path / "runs").glob("*/journal.jsonl")))
    applied = [r["facts"] for r in records if r["kind"] == Kind.APPLIED]
    reverted = [r["facts"] for r in records if r["kind"] == Kind.REVERTED]
    assert [f["killed"] for f in applied] == [[old]]
    assert [f["node_healthy"] for f in reverted] == [True]
    assert [r["clean"] for r in records if r["kind"] == Kind.AUDIT] == [True]
    assert otherpay.pid("worker") not in (None, old) and otherpay.healthy("worker")
    refs = [refund(otherpay)]
    all_settled(otherpay, refs)
    assert chaoskit_rules() == [] and chaoskit_groups() == []
