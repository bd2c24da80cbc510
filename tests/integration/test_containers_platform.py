"""The containers platform on real Podman, against otherpay as a docker-compose project: every
node-loss mode through the real driver, co-location, scale +1, latency through Toxiproxy,
recovery from a journal in another process and from labels alone, preflight refusals, and a
whole `chaoskit run`."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from chaoskit.faults.colocate import Colocate, ColocateConfig, watch_progress
from chaoskit.faults.network import LatencyFault
from chaoskit.faults.network_config import LatencyConfig
from chaoskit.faults.node_loss import NodeLoss, NodeLossConfig
from chaoskit.faults.scale import Scale, ScaleConfig
from chaoskit.journal import JournalWriter, Kind, read_journal
from chaoskit.platforms.containers import marks
from chaoskit.platforms.containers.platform import ContainersPlatform
from chaoskit.platforms.containers.recovery import leftovers, recover_containers
from chaoskit.spec.models import Target
from tests.compose.project import ComposeProject
from tests.fixtures.waiting import eventually

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def platform(compose: ComposeProject, **fields: Any) -> ContainersPlatform:
    built = ContainersPlatform.from_target(Target.model_validate(compose.target(**fields)))
    built.bind_run(f"test-{uuid.uuid4().hex[:8]}")
    return built


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def state(project: ComposeProject, service: str) -> dict[str, Any]:
    container = project.container(service)
    networks = container.attrs["NetworkSettings"]["Networks"]
    return {"status": container.status, "exit": container.attrs["State"]["ExitCode"],
            "networks": {n: v.get("IPAddress") for n, v in networks.items()}}


def snapshot(project: ComposeProject) -> dict[str, Any]:
    return {s: state(project, s) for s in ("postgres", "bank", "api", "worker")}


def no_leftovers(project: ComposeProject) -> None:
    assert leftovers(project.client) == []
    assert project.client.volumes.list(filters={"label": "io.chaoskit.change"}) == []


def refund_request(project: ComposeProject, http: httpx.Client) -> str:
    charge = http.post(f"{project.api_url}/api/v2/merchants/shop-1/charges",
                       json={"request_id": uuid.uuid4().hex, "amount_cents": 5_000, "ccy": "EUR"})
    assert charge.status_code == 200, charge.text
    ref = charge.json()["charge"]["charge_ref"]
    refund = http.post(f"{project.api_url}/api/v2/charges/{ref}/refunds",
                       json={"request_id": uuid.uuid4().hex, "amount_cents": 1_000})
    assert refund.status_code == 202, refund.text
    return str(refund.json()["refund"]["refund_ref"])


def settled(project: ComposeProject, refs: list[str], timeout: float = 30) -> list[dict[str, Any]]:
    with httpx.Client(trust_env=False, timeout=5) as http:
        def check() -> list[dict[str, Any]] | None:
            rows = [http.get(f"{project.api_url}/api/v2/refunds/{r}").json()["refund"]
                    for r in refs]
            return rows if all(r["state"] == "SETTLED" for r in rows) else None
        return list(eventually(check, timeout, f"{len(refs)} refunds settled", interval=0.2))


def resolves(project: ComposeProject, name: str) -> set[str]:
    """Addresses `name` resolves to inside the project's network (asked from the api)."""
    code = f"import socket; print(' '.join({{a[4][0] for a in socket.getaddrinfo({name!r}, 0)}}))"
    result = project.container("api").exec_run(["/opt/chaoskit/bin/python", "-c", code])
    assert result.exit_code == 0, result.output
    return set(result.output.decode().split())


# -- nodes and preflight ----------------------------------------------------------------------
def test_nodes_are_the_projects_services_and_the_target_preflights_clean(
        otherpay_compose: ComposeProject) -> None:
    project = otherpay_compose
    everything = platform(project)
    assert [n.name for n in everything.nodes()] == ["api", "bank", "postgres", "worker"]
    assert run(everything.preflight()) == []
    assert str(project.subnet) in everything.own_hosts()
    some = platform(project, services=["worker", "api"])
    assert [n.name for n in some.nodes()] == ["api", "worker"]
    named = platform(project, project=None, containers=[project.container("bank").name])
    assert [n.name for n in named.nodes()] == [project.container("bank").name]
    assert some.node_health_urls("worker") == {"worker": project.health_url("worker")}


@pytest.mark.parametrize(("fields", "expected"), [
    ({"services": ["worker", "ledger"]}, "has no service 'ledger'"),
    ({"project": None, "containers": ["no-such-container"]}, "no container named"),
    ({"project": "no-such-project"}, "has no containers"),
    ({"engine": "unix:///tmp/chaoskit-no-engine.sock"}, "no container engine answers"),
])
def test_preflight_refuses_what_does_not_exist_and_changes_nothing(
        otherpay_compose: ComposeProject, fields: dict[str, Any], expected: str) -> None:
    before = snapshot(otherpay_compose)
    problems = run(platform(otherpay_compose, **fields).preflight())
    assert any(expected in p for p in problems), problems
    assert snapshot(otherpay_compose) == before
    no_leftovers(otherpay_compose)


# -- node loss, through the real driver -------------------------------------------------------
EXPECTED_DURING = {
    "kill": lambda s: s["status"] == "exited" and s["exit"] == 137,
    "freeze": lambda s: s["status"] == "paused",
    "isolate": lambda s: s["status"] == "running" and s["networks"] == {},
    "stop": lambda s: s["status"] == "exited" and s["exit"] == 0,  # SIGTERM, handled
}


@pytest.mark.parametrize("mode", ["kill", "freeze", "isolate", "stop"])
def test_node_loss_takes_the_container_away_and_brings_it_back_at_its_address(
        otherpay_compose: ComposeProject, mode: str) -> None:
    project = otherpay_compose
    target = platform(project)
    driver = NodeLoss(target, target.run)
    before = state(project, "worker")
    intent = driver.plan(f"lose-{mode}", {"node": "worker"},
                         NodeLossConfig(mode=mode, recovery_timeout=20), random.Random(1))
    assert run(driver.preflight(intent)) == []
    facts = run(driver.inject(intent))
    try:
        during = state(project, "worker")
        assert EXPECTED_DURING[mode](during), during
        assert not project.healthy("worker")
        held = marks.find(project.client, run=target.run)
        assert [(m.mode, m.node) for m in held] == [(mode, "worker")]
        assert run(driver.verify_reverted(intent)) != []
    finally:
        reverted = run(driver.revert(intent))
    assert reverted["node_healthy"] is True, reverted
    assert state(project, "worker") == {**before, "exit": state(project, "worker")["exit"]}
    assert project.healthy("worker")
    assert run(driver.verify_reverted(intent)) == []
    assert run(driver.revert(intent))["undone"] == []  # idempotent
    assert facts["mode"] == mode
    no_leftovers(project)


# -- co-location ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def batch_database(otherpay_compose: ComposeProject) -> str:
    """A database of its own for the stack's settlement job (it migrates its schema)."""
    with psycopg.connect(otherpay_compose.database_url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS batch")
        conn.execute("CREATE DATABASE batch")
    return otherpay_compose.database_url.rsplit("/", 1)[0] + "/batch"


@pytest.mark.parametrize("isolation", [True, False])
def test_colocated_batch_shares_the_online_cpus_and_makes_its_window(
        otherpay_compose: ComposeProject, batch_database: str, isolation: bool) -> None:
    project = otherpay_compose
    target = platform(project, offline_env={"CHAOSKIT_DATABASE_URL": batch_database})
    driver = Colocate(target, target.run)
    config = ColocateConfig(work="reconciliation", isolation=isolation, units=60, rounds=20_000,
                            window="40s", lifetime="60s", start_timeout="40s")
    intent = driver.plan("batch", {"node": "api"}, config, random.Random(1))
    facts = run(driver.inject(intent))
    try:
        (process,) = target.offline_processes(intent["tag"])
        batch = project.client.containers.get(process.id).attrs["HostConfig"]
        online = project.container("api").attrs["HostConfig"]
        assert batch["CpusetCpus"] == online["CpusetCpus"] == "0"
        assert batch["CpuShares"] == (2 if isolation else 1024)
        assert target.process_cpu_seconds(process.id) > 0
        progress = run(watch_progress(target, intent["tag"], 40.0))
        assert progress["finished"] is True and progress["finished_in_window"] is True, progress
        assert process.node == "api" and facts["work"] == "reconciliation"
    finally:
        run(driver.revert(intent))
    assert run(driver.verify_reverted(intent)) == []
    no_leftovers(project)


# -- elastic capacity -------------------------------------------------------------------------
def test_scale_out_adds_a_replica_behind_the_service_alias_and_removes_it(
        otherpay_compose: ComposeProject) -> None:
    project = otherpay_compose
    target = platform(project, capacity="api")
    driver = Scale(target, target.run)
    intent = driver.plan("more-api", {}, ScaleConfig(nodes=1, drain="2s", join_timeout="30s"),
                         random.Random(1))
    assert intent["nodes"] == ["api-replica-1"]
    assert run(driver.preflight(intent)) == []
    run(driver.inject(intent))
    try:
        replica = target.inventory().node("api-replica-1")
        assert target.entry_states() == {"api": "UP", "api-replica-1": "UP"}
        assert resolves(project, "api") == {project.ip("api"), replica.address}
        with httpx.Client(trust_env=False, timeout=5) as http:
            answer = http.get(f"http://{replica.address}:8300/api/v2/health")
            assert answer.status_code == 200
            assert refund_request(project, http)  # the service still serves
        assert replica.labels["io.chaoskit.run"] == target.run
    finally:
        reverted = run(driver.revert(intent))
    assert reverted["removed"] == ["api-replica-1"]
    assert run(driver.verify_reverted(intent)) == []
    assert resolves(project, "api") == {project.ip("api")}
    assert [n.name for n in target.nodes()] == ["api", "bank", "postgres", "worker"]
    no_leftovers(project)


# -- latency through Toxiproxy on the host ----------------------------------------------------
def bank_health_s(project: ComposeProject) -> float:
    started = time.monotonic()
    answer = httpx.get(f"http://{project.bank_proxy_listen}/health", timeout=5, trust_env=False)
    assert answer.status_code == 200
    return time.monotonic() - started


def test_latency_in_front_of_the_bank_slows_the_workers_bank_calls(
        otherpay_compose: ComposeProject) -> None:
    project = otherpay_compose
    target = platform(project)
    driver = LatencyFault(target, target.run)
    intent = driver.plan("slow-bank", {"proxy": project.bank_proxy},
                         LatencyConfig(latency="400ms"), random.Random(1))
    run(driver.inject(intent))
    try:
        assert bank_health_s(project) >= 0.4
        with httpx.Client(trust_env=False, timeout=5) as http:
            ref = refund_request(project, http)
        (row,) = settled(project, [ref])
        took = (datetime_of(row["settled_at"]) - datetime_of(row["requested_at"]))
        assert took >= 0.4, row
    finally:
        run(driver.revert(intent))
    assert run(driver.verify_reverted(intent)) == []
    assert bank_health_s(project) < 0.3


def datetime_of(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp).timestamp()


# -- recovery ---------------------------------------------------------------------------------
def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


RECOVER = ("import asyncio, sys; from pathlib import Path; "
           "from chaoskit.engine.recovery import recover_journal; "
           "r = asyncio.run(recover_journal(Path(sys.argv[1]), 'test')); "
           "print('\\n'.join(r.lines())); sys.exit(0 if r.clean else 1)")


def test_recover_journal_in_another_process_reverts_every_fault(
        otherpay_compose: ComposeProject, tmp_path: Path) -> None:
    project = otherpay_compose
    target = platform(project, capacity="api")
    before = {s: (v["status"], v["networks"]) for s, v in snapshot(project).items()}
    path = tmp_path / target.run / "journal.jsonl"
    path.parent.mkdir()
    writer = JournalWriter(path)
    writer.write(Kind.HEADER, run_id=target.run, experiment="containers-recovery",
                 source="test", seed=1, pid=dead_pid(), spec={}, platform=target.describe(),
                 lease=str(path.with_name("lease")))
    faults: list[tuple[str, Any, dict[str, Any], Any]] = [
        ("freeze-worker", NodeLoss, {"node": "worker"},
         NodeLossConfig(mode="freeze", recovery_timeout=20)),
        ("cut-bank", NodeLoss, {"node": "bank"}, NodeLossConfig(mode="isolate",
                                                                recovery_timeout=20)),
        ("more-api", Scale, {}, ScaleConfig(nodes=1, join_timeout="30s")),
        ("burn", Colocate, {"node": "api"}, ColocateConfig(work="burner", cpu=1, lifetime="120s")),
    ]
    for name, kind, where, config in faults:
        driver = kind(target, target.run)
        intent = driver.plan(name, where, config, random.Random(1))
        writer.write(Kind.INTENT, fault=name, type=kind.type_name, intent=intent)
        run(driver.inject(intent))
        writer.write(Kind.APPLIED, fault=name, type=kind.type_name, facts={})
    writer.close()
    assert len(leftovers(project.client, target.run)) == 4
    assert state(project, "worker")["status"] == "paused"
    done = subprocess.run([sys.executable, "-c", RECOVER, str(path)], capture_output=True,
                          text=True, timeout=240, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert {f"  reverted: {name}" for name, *_ in faults} <= set(done.stdout.splitlines())
    assert {s: (v["status"], v["networks"]) for s, v in snapshot(project).items()} == before
    project.wait_healthy(timeout=30)
    assert read_journal(path)[-1]["kind"] == Kind.RESULT
    no_leftovers(project)


def test_recover_containers_without_a_journal_undoes_labelled_leftovers(
        otherpay_compose: ComposeProject) -> None:
    from chaoskit.platforms.abilities import OfflineWork

    project = otherpay_compose
    target = platform(project, capacity="api")
    before = {s: (v["status"], v["networks"]) for s, v in snapshot(project).items()}
    target.add_node("api-replica-1")
    target.start_offline("api", "leftover", OfflineWork("burner", True, 120.0, cpu=1))
    for node, mode in (("worker", "freeze"), ("bank", "isolate"), ("api", "kill")):
        target.lose_node(node, mode)
    assert len(leftovers(project.client)) == 5
    other = recover_containers(project.engine, run="another-run")
    assert (other.undone, other.clean, len(leftovers(project.client))) == ([], True, 5)
    report = recover_containers(project.engine, run=target.run)
    assert report.clean, report.lines()
    assert len(report.undone) >= 5, report.undone
    assert {s: (v["status"], v["networks"]) for s, v in snapshot(project).items()} == before
    project.wait_healthy(timeout=30)
    no_leftovers(project)


# -- a whole run through the command line -----------------------------------------------------
def experiment(project: ComposeProject, scope: list[str], **target: Any) -> dict[str, Any]:
    return {
        "apiVersion": "chaoskit/v1", "kind": "Experiment",
        "metadata": {"name": "containers-worker-loss"},
        "target": {**project.target(**{"services": ["api", "worker", "bank"], **target}),
                   "scope": {"nodes": scope}},
        "phases": {"baseline": "2s", "recover": "4s"},
        "faults": [{"name": "worker-down", "type": "node-loss", "mode": "kill",
                    "target": {"node": "worker"}, "start": "1s", "duration": "5s",
                    "recovery_timeout": "20s"}],
        "hypothesis": [{"name": "worker-serves-after", "aggregate": "last",
                        "probe": {"type": "http", "url": project.health_url("worker"),
                                  "measure": "ok", "interval": "500ms"},
                        "expect": ">= 1", "phases": ["after"]}],
    }


def chaoskit(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "chaoskit.cli", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT, check=False)


SCALE_OUT = [{"name": "more-api", "type": "scale", "nodes": 1, "start": "1s", "duration": "5s"}]


@pytest.mark.parametrize(("scope", "change", "code", "expected"), [
    # named outright: validation refuses it, pointing at the line
    (["api"], {}, 2, "aims at node 'worker', outside target.scope.nodes"),
    # named by the platform (the replica scale +1 would add): the engine's preflight refuses it
    (["api"], {"faults": SCALE_OUT, "capacity": "api"}, 4,
     "node api-replica-1 is outside target.scope.nodes"),
    (["worker"], {"services": ["worker", "ledger"]}, 4, "has no service 'ledger'"),
])
def test_a_run_outside_its_scope_or_naming_a_missing_service_is_refused_before_injecting(
        otherpay_compose: ComposeProject, tmp_path: Path, scope: list[str],
        change: dict[str, Any], code: int, expected: str) -> None:
    before = snapshot(otherpay_compose)
    change = dict(change)
    faults = change.pop("faults", None)
    spec = experiment(otherpay_compose, scope, **change)
    spec["faults"] = faults or spec["faults"]
    path = tmp_path / "experiment.yaml"
    path.write_text(json.dumps(spec))
    done = chaoskit("run", str(path), "--dry-run")
    assert done.returncode == code, done.stdout + done.stderr
    assert expected in done.stderr
    assert snapshot(otherpay_compose) == before
    no_leftovers(otherpay_compose)


def test_a_chaoskit_run_kills_the_worker_while_refunds_are_requested(
        otherpay_compose: ComposeProject, tmp_path: Path) -> None:
    project = otherpay_compose
    spec = tmp_path / "experiment.yaml"
    spec.write_text(json.dumps(experiment(project, ["worker"])))
    refs: list[str] = []
    seen: set[str] = set()
    stop = threading.Event()

    def request_refunds() -> None:
        with httpx.Client(trust_env=False, timeout=5) as http:
            while not stop.wait(0.2):
                refs.append(refund_request(project, http))
                seen.add(str(state(project, "worker")["status"]))

    worker_ip = project.ip("worker")
    thread = threading.Thread(target=request_refunds, daemon=True)
    thread.start()
    try:
        done = chaoskit("run", str(spec), "--display", "plain", "--no-report",
                        "--out", str(tmp_path / "runs"))
    finally:
        stop.set()
        thread.join(10)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "exited" in seen and state(project, "worker")["status"] == "running"
    assert project.ip("worker") == worker_ip
    records = read_journal(next((tmp_path / "runs").glob("*/journal.jsonl")))
    reverted = [r for r in records if r["kind"] == Kind.REVERTED]
    assert [r["facts"]["node_healthy"] for r in reverted] == [True]
    assert [r["clean"] for r in records if r["kind"] == Kind.AUDIT] == [True]
    assert len(refs) > 20
    settled(project, refs, timeout=30)
    no_leftovers(project)


def test_the_project_is_still_whole(otherpay_compose: ComposeProject) -> None:
    """Last: every earlier test gave back what it took."""
    otherpay_compose.wait_healthy(timeout=10)
    no_leftovers(otherpay_compose)
