"""KubernetesPlatform on the real test control plane: lab stack, node loss, recovery, guardrails.

The control plane (etcd, kube-apiserver, controllers, scheduler, KWOK) is the fixture of
tests.fixtures.control_plane; scheduling, evictions, PodDisruptionBudgets, the taint manager and
RBAC are the real ones. KWOK nodes run no containers: pods reach Running, nothing executes.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, utils
from kubernetes.client.exceptions import ApiException

from chaoskit import cli
from chaoskit.engine.faultline import plan_faults
from chaoskit.engine.lifecycle import build_driver
from chaoskit.engine.run import RunOptions, run_experiment
from chaoskit.engine.watchdog import recover_journal
from chaoskit.faults.node_loss import NodeLoss, NodeLossConfig
from chaoskit.faults.scale import Scale, ScaleConfig
from chaoskit.journal import JournalWriter, read_journal
from chaoskit.platforms.abilities import OfflineWork
from chaoskit.platforms.kubernetes.platform import KubernetesPlatform
from chaoskit.spec.loader import load_experiment
from chaoskit.spec.models import Experiment
from tests.fixtures.control_plane import ROOT, ControlPlane, kustomize_build
from tests.fixtures.systems import reference, role_node
from tests.fixtures.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.k8s]
NS = "payments"
SCOPE = {"namespaces": [NS], "selectors": {"app.kubernetes.io/component": "online"},
         "nodes": "any"}



def apply(api: Any, docs: list[dict[str, Any]]) -> None:
    """Create each object; one that exists already (another test module applied k8s/) is fine."""
    for doc in docs:
        try:
            utils.create_from_dict(api, doc)
        except utils.FailToCreateError as exc:
            if any(e.status != 409 for e in exc.api_exceptions):
                raise


def unsettled(api: Any) -> list[str]:
    """Workloads without all replicas Running (or with pods terminating), budgets not yet
    computed by the disruption controller (evictions are refused until they are)."""
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    sets = (apps.list_namespaced_deployment(NS).items
            + apps.list_namespaced_stateful_set(NS).items)
    pods = core.list_namespaced_pod(NS).items
    problems = []
    for item in sets:
        labels = item.spec.selector.match_labels
        mine = [p for p in pods if labels.items() <= (p.metadata.labels or {}).items()]
        running = [p for p in mine if p.status.phase == "Running"]
        if len(running) != item.spec.replicas or any(p.metadata.deletion_timestamp for p in mine):
            problems.append(f"{item.metadata.name}: {len(running)}/{item.spec.replicas} Running, "
                            f"phases {[p.status.phase for p in mine]}")
    budgets = client.PolicyV1Api(api).list_namespaced_pod_disruption_budget(NS).items
    problems += [f"budget {b.metadata.name} not observed" for b in budgets
                 if not (b.status and b.status.observed_generation)]
    return problems


def workloads_settled(api: Any) -> bool:
    return not unsettled(api)


def pods_by_node(api: Any) -> dict[str, set[str]]:
    placed: dict[str, set[str]] = {}
    for pod in client.CoreV1Api(api).list_namespaced_pod(NS).items:
        if pod.status.phase == "Running" and not pod.metadata.deletion_timestamp:
            placed.setdefault(pod.spec.node_name, set()).add(pod.metadata.uid)
    return placed


# The test cluster has no storage provisioner: a volume for the ledger's claim (nothing is ever
# written to it; KWOK runs no containers).
LEDGER_VOLUME = {
    "apiVersion": "v1", "kind": "PersistentVolume",
    "metadata": {"name": "chaoskit-test-ledger"},
    "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
             "persistentVolumeReclaimPolicy": "Retain",
             "hostPath": {"path": "/var/lib/chaoskit-test-ledger"}},
}


@pytest.fixture(scope="module")
def api(control_plane: ControlPlane) -> Iterator[Any]:
    with control_plane.api_client() as api_client:
        yield api_client


@pytest.fixture(scope="module")
def stack(control_plane: ControlPlane, api: Any) -> Iterator[ControlPlane]:
    """k8s/overlays/lab rendered by kustomize, applied, every workload Running; removed after
    (the session's control plane is shared with other test modules)."""
    started = time.monotonic()
    docs = [LEDGER_VOLUME, *kustomize_build(ROOT / "k8s" / "overlays" / "lab")]
    apply(api, docs)
    try:
        eventually(lambda: workloads_settled(api), 120, "stack settled")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {unsettled(api)}") from exc
    print(f"\nk8s lab stack applied and Running in {time.monotonic() - started:.1f}s")
    yield control_plane
    remove(api, docs)


def remove(api: Any, docs: list[dict[str, Any]]) -> None:
    """The namespace with everything in it (waited for), then what lives outside one."""
    core = client.CoreV1Api(api)
    core.delete_namespace(NS)
    core.delete_collection_namespaced_pod(NS, grace_period_seconds=0)  # simulated: no grace
    eventually(lambda: NS not in {n.metadata.name for n in core.list_namespace().items}, 90,
               "namespace removed")
    rbac, scheduling = client.RbacAuthorizationV1Api(api), client.SchedulingV1Api(api)
    delete = {"ClusterRole": rbac.delete_cluster_role,
              "ClusterRoleBinding": rbac.delete_cluster_role_binding,
              "PriorityClass": scheduling.delete_priority_class,
              "PersistentVolume": core.delete_persistent_volume}
    for doc in docs:
        if doc["kind"] in delete:
            try:
                delete[doc["kind"]](doc["metadata"]["name"])
            except ApiException as exc:
                if exc.status != 404:
                    raise


@pytest.fixture
def platform(stack: ControlPlane, api: Any) -> Iterator[KubernetesPlatform]:
    eventually(lambda: workloads_settled(api), 120, "stack settled before the test")
    plane = KubernetesPlatform(kubeconfig=str(stack.kubeconfig), namespace=NS, scope=SCOPE,
                               run="it-run")
    yield plane
    for node in stack.nodes:  # whatever a failing test left, the next one starts clean
        plane.restore_node(node, "drain")


def node_clean(api: Any, name: str) -> bool:
    node = client.CoreV1Api(api).read_node(name)
    ours = [t for t in node.spec.taints or [] if t.key.startswith("chaoskit.io/")]
    marks = [k for k in node.metadata.annotations or {} if k.startswith("chaoskit.io/")]
    return not node.spec.unschedulable and not ours and not marks


def test_the_platform_sees_the_lab_on_the_simulated_nodes(
        platform: KubernetesPlatform, stack: ControlPlane) -> None:
    nodes = {n.name: n for n in platform.nodes()}
    assert set(nodes) == set(stack.nodes)
    assert {"gateway", "worker", "scheduler", "postgres"} <= {r for n in nodes.values()
                                                              for r in n.roles}
    assert role_node(platform, "scheduler-leader") in nodes
    assert asyncio.run(platform.preflight()) == []


def test_kill_deletes_the_nodes_pods_and_the_controllers_replace_them(
        platform: KubernetesPlatform, api: Any) -> None:
    node = role_node(platform, "gateway")
    before = pods_by_node(api)[node]
    facts = platform.lose_node(node, "kill")
    assert len(facts["deleted"]) == len(before) > 0
    eventually(lambda: workloads_settled(api), 60, "replacements Running")
    assert not before & {uid for uids in pods_by_node(api).values() for uid in uids}
    assert platform.node_residue(node) == []


def test_drain_evicts_honouring_budgets_reports_the_refusal_and_reverts_clean(
        platform: KubernetesPlatform, api: Any) -> None:
    postgres = client.CoreV1Api(api).read_namespaced_pod("postgres-0", NS)
    node = postgres.spec.node_name
    facts = platform.lose_node(node, "drain")
    assert list(facts["refused"]) == [f"{NS}/postgres-0"]  # its budget: minAvailable 1 of 1
    assert "disruption budget" in facts["refused"][f"{NS}/postgres-0"]
    assert facts["evicted"], "the other pods on the node are evicted"
    eventually(lambda: workloads_settled(api), 60, "evicted pods rescheduled")
    evicted = {key.split("/")[1] for key in facts["evicted"]}
    on_node = {p.metadata.name for p in client.CoreV1Api(api).list_namespaced_pod(
        NS, field_selector=f"spec.nodeName={node}").items}
    assert not evicted & on_node and on_node == {"postgres-0"}  # only the refused one stayed
    assert any("cordoned" in r for r in platform.node_residue(node))
    platform.restore_node(node, "drain")
    assert platform.node_residue(node) == [] and node_clean(api, node)


def test_node_down_taints_the_node_its_pods_go_elsewhere_and_revert_is_clean(
        platform: KubernetesPlatform, api: Any) -> None:
    node = role_node(platform, "worker-most-leases")
    platform.lose_node(node, "node-down")
    eventually(lambda: node not in pods_by_node(api) and workloads_settled(api), 90,
               "taint manager evicted the node's pods and they run elsewhere")
    platform.restore_node(node, "node-down")
    assert platform.node_residue(node) == [] and node_clean(api, node)


def test_isolate_puts_a_deny_all_policy_on_the_nodes_pods_and_removes_it(
        platform: KubernetesPlatform, api: Any) -> None:
    node = role_node(platform, "gateway")
    facts = platform.lose_node(node, "isolate")
    policy = client.NetworkingV1Api(api).read_namespaced_network_policy(
        f"chaoskit-isolate-{node}", NS)
    assert policy.spec.policy_types == ["Ingress", "Egress"] and not policy.spec.ingress
    selected = client.CoreV1Api(api).list_namespaced_pod(
        NS, label_selector=f"chaoskit.io/isolated={node}").items
    assert {f"{NS}/{p.metadata.name}" for p in selected} == set(facts["isolated"])
    assert platform.node_residue(node)
    platform.restore_node(node, "isolate")
    assert platform.node_residue(node) == []


def test_recover_cluster_reverts_a_crashed_runs_changes_without_its_journal(
        platform: KubernetesPlatform, api: Any, stack: ControlPlane,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = stack.nodes[0], stack.nodes[1]
    platform.lose_node(first, "node-down")
    platform.lose_node(second, "isolate")  # then the runner "dies": only the cluster remembers
    monkeypatch.setenv("KUBECONFIG", str(stack.kubeconfig))
    assert cli.main(["recover", "--cluster", "--namespace", NS, "--run", "it-run"]) == 0
    assert "nothing of run it-run is left" in capsys.readouterr().out
    assert node_clean(api, first) and node_clean(api, second)
    assert platform.node_residue(first) == [] and platform.node_residue(second) == []


# -- the shipped Kubernetes experiments on the simulated nodes ---------------------------------
def pointed_at(path: Path, plane: ControlPlane, tmp: Path) -> Path:
    """The shipped file with the test cluster's kubeconfig added to its target, and without
    its database (no ledger runs on simulated nodes: the leader's role is then its first pod)."""
    text = path.read_text().replace("  platform: kubernetes\n",
                                    f"  platform: kubernetes\n  kubeconfig: {plane.kubeconfig}\n")
    text = "\n".join(line for line in text.splitlines() if not line.startswith("  database:"))
    copy = tmp / path.name
    copy.write_text(text)
    if (path.parent / "systems").is_dir():  # the system files it includes, beside it
        shutil.copytree(path.parent / "systems", tmp / "systems", dirs_exist_ok=True)
    return copy


@pytest.mark.parametrize("name", ["k8s-node-loss-final-payment-window",
                                  "k8s-offline-batch-at-8pm"])
def test_shipped_experiment_dry_runs_then_its_faults_inject_and_revert(
        name: str, platform: KubernetesPlatform, stack: ControlPlane, api: Any,
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = pointed_at(ROOT / "experiments" / f"{name}.yaml", stack, tmp_path)
    assert cli.main(["run", str(path), "--dry-run", "--seed", "1"]) == 0
    assert "nothing was injected" in capsys.readouterr().out
    experiment = load_experiment(path)
    target = KubernetesPlatform.from_target(experiment.target)
    for planned in asyncio.run(plan_faults(experiment, target, random.Random(1), "run-1")):
        driver = build_driver(planned.type, target, "run-1")
        assert asyncio.run(driver.preflight(planned.intent)) == []
        facts = asyncio.run(driver.inject(planned.intent))
        check_effect(planned.type, planned.intent, facts, api)
        if planned.type == "node-loss":  # the cluster healed: measured, not assumed
            effect = asyncio.run(driver.measure_effect(planned.intent))
            assert effect["recovered"] and effect["waiting_for"] == [], effect
        asyncio.run(driver.revert(planned.intent))
        assert asyncio.run(driver.verify_reverted(planned.intent)) == []
    assert all(node_clean(api, n) for n in stack.nodes)


def check_effect(kind: str, intent: dict[str, Any], facts: dict[str, Any], api: Any) -> None:
    """What the fault did, seen on the cluster while it is applied."""
    if kind == "node-loss":
        eventually(lambda: intent["node"] not in pods_by_node(api), 90, "node emptied")
        return
    pods = offline_pods(api, intent["tag"])
    assert {p.spec.node_name for p in pods} == set(intent["nodes"])  # the gateway's node
    assert {p.spec.priority for p in pods} == {1000}  # payments-offline: yields to online
    assert {p.metadata.labels["job-name"] for p in pods} == set(facts["processes"])


def offline_pods(api: Any, tag: str) -> list[Any]:
    """A colocate fault's pods once placed (KWOK completes Job pods at once: nothing runs)."""
    return eventually(lambda: [p for p in client.CoreV1Api(api).list_namespaced_pod(
        NS, label_selector=f"chaoskit.io/colocated={tag}").items
        if p.status.phase in ("Running", "Succeeded") and p.spec.node_name], 60,
        "offline pods placed")  # type: ignore[no-any-return]


def test_colocate_without_isolation_runs_the_same_job_without_the_low_priority(
        platform: KubernetesPlatform, api: Any) -> None:
    node = role_node(platform, "gateway")
    work = OfflineWork("burner", isolation=False, lifetime=60.0, cpu=1)
    platform.start_offline(node, "no-isolation", work)
    try:
        pods = offline_pods(api, "no-isolation")
        assert pods[0].spec.node_name == node and not pods[0].spec.priority_class_name
        assert (pods[0].spec.priority or 0) < 1000
        assert pods[0].spec.containers[0].resources.requests["cpu"] == "500m"
    finally:
        platform.stop_offline("no-isolation")
    assert platform.offline_residue("no-isolation") == []


def test_scale_out_adds_replicas_the_scheduler_places_and_gives_them_back(
        platform: KubernetesPlatform, api: Any) -> None:
    driver = Scale(platform)
    intent = driver.plan("more", {}, ScaleConfig(nodes=1), random.Random())
    facts = asyncio.run(driver.inject(intent))  # waits until every added replica is ready
    assert facts["added"] == ["capacity-1"] and facts["in_rotation_s"] is not None
    apps = client.AppsV1Api(api)
    assert apps.read_namespaced_deployment("gateway", NS).status.ready_replicas == 3
    asyncio.run(driver.revert(intent))
    assert asyncio.run(driver.verify_reverted(intent)) == []
    eventually(lambda: workloads_settled(api), 60, "back to two replicas")
    gateway = apps.read_namespaced_deployment("gateway", NS)
    assert gateway.spec.replicas == 2
    assert not any(k.startswith("chaoskit.io/") for k in gateway.metadata.annotations or {})


# -- a guardrail aborting mid-drain ------------------------------------------------------------
class Switch(BaseHTTPRequestHandler):
    """GET answers 200 while `healthy`, else 503: the guardrail's signal."""

    healthy = True

    def do_GET(self) -> None:  # noqa: N802 - the handler's name is the stdlib's
        self.send_response(200 if Switch.healthy else 503)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def switch() -> Iterator[str]:
    Switch.healthy = True
    server = ThreadingHTTPServer(("127.0.0.1", 0), Switch)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/health"
    server.shutdown()
    server.server_close()


def drain_experiment(plane: ControlPlane, url: str) -> Experiment:
    return Experiment.model_validate({
        "apiVersion": "chaoskit/v1", "kind": "Experiment",
        "metadata": {"name": "k8s-drain-guardrail", "description": "abort mid-drain",
                     "owner": "tests"},
        "target": {"platform": "kubernetes", "kubeconfig": str(plane.kubeconfig),
                   "namespace": NS, "scope": SCOPE},
        "system": reference(), "phases": {"baseline": "1s", "recover": "1s"},
        "faults": [{"name": "drain-db", "type": "node-loss", "mode": "drain",
                    "target": {"role": "gateway"}, "start": "500ms", "duration": "50s",
                    "recovery_timeout": 1}],
        "hypothesis": [{"name": "healthy", "probe": {"type": "http", "url": url,
                                                     "interval": "200ms"}, "expect": "== 1"}],
        "guardrails": [{"name": "stack-down", "probe": {"type": "http", "url": url,
                                                        "interval": "200ms"},
                        "abort_when": "< 1"}]})


def test_a_guardrail_abort_mid_drain_reverts_the_drain(
        stack: ControlPlane, api: Any, switch: str, tmp_path: Path) -> None:
    experiment = drain_experiment(stack, switch)
    node = role_node(KubernetesPlatform.from_target(experiment.target), "gateway")

    def flip_once_cordoned() -> None:  # the stack "breaks" while the node is drained
        eventually(lambda: client.CoreV1Api(api).read_node(node).spec.unschedulable, 30)
        Switch.healthy = False

    flipper = threading.Thread(target=flip_once_cordoned, daemon=True)
    flipper.start()
    started = time.monotonic()
    result = run_experiment(experiment, "test", RunOptions(seed=3, out_dir=tmp_path,
                                                           watchdog=False))
    flipper.join(timeout=5)
    assert time.monotonic() - started < 40, "the abort did not wait for the fault's end"
    records = read_journal(result.journal)
    assert any(r["kind"] == "abort" and r["by"] == "guardrail" for r in records)
    applied = next(r for r in records if r["kind"] == "applied")
    assert applied["facts"]["node"] == node and "evicted" in applied["facts"]
    assert any(r["kind"] == "reverted" and r["fault"] == "drain-db" for r in records)
    assert records[-1]["audit"]["clean"] and result.status != "passed"
    assert node_clean(api, node)
    described = records[0]["platform"]  # enough to rebuild the platform in recover/watchdog
    assert described["platform"] == "kubernetes" and described["run"]
    assert described["kubeconfig"] == str(stack.kubeconfig)


def test_recover_from_the_journal_rebuilds_the_platform_and_reverts_a_dead_runs_fault(
        platform: KubernetesPlatform, api: Any, tmp_path: Path) -> None:
    """What `chaoskit recover JOURNAL` and the watchdog do when a runner died mid-fault."""
    driver = NodeLoss(platform)
    intent = driver.plan("down", {"node": role_node(platform, "gateway")},
                         NodeLossConfig(mode="node-down"),
                         random.Random(0))
    journal = JournalWriter(tmp_path / "journal.jsonl")
    journal.write("header", run_id="dead-run", platform=platform.describe())
    journal.write("intent", fault="down", type="node-loss", intent=intent)
    asyncio.run(driver.inject(intent))
    journal.write("applied", fault="down", type="node-loss", facts={})
    journal.close()  # the runner is gone; only the journal and the cluster remember
    assert not node_clean(api, intent["node"])
    assert asyncio.run(recover_journal(tmp_path / "journal.jsonl", "test recovery"))
    assert node_clean(api, intent["node"])
    assert read_journal(tmp_path / "journal.jsonl")[-1]["audit"]["clean"]
