"""As the chaoskit-runner service account of k8s/: enough for the shipped experiments, refused
elsewhere (the API server's own RBAC decides), and the load Indexed Job created with its shares."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from chaoskit.engine.faultline import plan_faults
from chaoskit.engine.lifecycle import build_driver
from chaoskit.faults.scale import Scale, ScaleConfig
from chaoskit.load.drive import plan_for
from chaoskit.load.schedule import ArrivalSchedule
from chaoskit.platforms.kubernetes.kube import KubeCluster, api_client
from chaoskit.platforms.kubernetes.load_job import PLAN_ENV, index_shares, load_job
from chaoskit.platforms.kubernetes.platform import KubernetesPlatform
from chaoskit.spec.load import LoadSpec
from chaoskit.spec.loader import load_experiment
from tests.fixtures.control_plane import ROOT, ControlPlane
from tests.fixtures.systems import reference_flows, simple_flows
from tests.integration import test_k8s_platform as k8s
from tests.integration.test_k8s_platform import NS, SCOPE, eventually, pointed_at, workloads_settled

pytestmark = [pytest.mark.integration, pytest.mark.k8s]
SHIPPED = sorted((ROOT / "experiments").glob("k8s-*.yaml"))
api, stack = k8s.api, k8s.stack  # the same module fixtures: the lab applied, the admin client


@pytest.fixture(scope="module")
def runner(stack: ControlPlane, api: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kubeconfig holding a TokenRequest token of payments/chaoskit-runner."""
    token = client.CoreV1Api(api).create_namespaced_service_account_token(
        "chaoskit-runner", NS, {"spec": {"expirationSeconds": 3600}}).status.token
    config = yaml.safe_load(stack.kubeconfig.read_text())
    config["users"] = [{"name": "admin", "user": {"token": token}}]  # same context, new identity
    path = tmp_path_factory.mktemp("runner") / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def as_runner(runner: Path, api: Any) -> KubernetesPlatform:
    eventually(lambda: workloads_settled(api), 120, "stack settled before the test")
    return KubernetesPlatform(kubeconfig=str(runner), namespace=NS, scope=SCOPE, run="rbac-run")


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_the_runner_role_is_enough_for_each_shipped_kubernetes_experiment(
        path: Path, runner: Path, as_runner: KubernetesPlatform, tmp_path: Path) -> None:
    del as_runner  # only for the settled stack
    plane = ControlPlane(tmp_path, "", "", runner)  # pointed_at needs only the kubeconfig
    experiment = load_experiment(pointed_at(path, plane, tmp_path))
    target = KubernetesPlatform.from_target(experiment.target)
    assert asyncio.run(target.preflight()) == []
    planned = asyncio.run(plan_faults(experiment, target, random.Random(1), "run-1"))
    assert planned, "every shipped Kubernetes experiment injects something"
    for fault in planned:
        driver = build_driver(fault.type, target, "run-1")
        assert asyncio.run(driver.preflight(fault.intent)) == []
        assert target.missing_access(fault.type, fault.intent.get("mode", "")) == []
    assert target.missing_access("load-job") == []
    for mode in ("kill", "drain", "node-down", "isolate"):  # every node-loss mode, isolate too
        assert target.missing_access("node-loss", mode) == [], mode


def test_the_runner_is_refused_outside_its_namespace_and_for_node_deletion(
        runner: Path) -> None:
    elsewhere = KubernetesPlatform(kubeconfig=str(runner), namespace="kube-system")
    missing = elsewhere.missing_access("node-loss", "drain")
    assert "missing permission: list on pods in namespace kube-system" in missing
    assert "missing permission: create on pods/eviction in namespace kube-system" in missing
    assert not any("nodes" in m for m in missing)  # its ClusterRole covers nodes
    with api_client(str(runner), None) as api_as_runner:
        core = client.CoreV1Api(api_as_runner)
        with pytest.raises(ApiException) as refused:
            core.delete_namespaced_pod("anything", "kube-system")
        assert refused.value.status == 403
        with pytest.raises(ApiException) as refused:
            core.delete_node("kwok-node-1")
        assert refused.value.status == 403


def test_scale_as_the_runner_adds_capacity_and_gives_it_back(
        as_runner: KubernetesPlatform, api: Any) -> None:
    driver = Scale(as_runner)
    intent = driver.plan("more-capacity", {}, ScaleConfig(nodes=2), random.Random())
    asyncio.run(driver.inject(intent))
    apps = client.AppsV1Api(api)
    assert apps.read_namespaced_deployment("worker", NS).status.ready_replicas == 4
    assert asyncio.run(driver.verify_reverted(intent))  # still applied: residue reported
    asyncio.run(driver.revert(intent))
    assert asyncio.run(driver.verify_reverted(intent)) == []
    worker = apps.read_namespaced_deployment("worker", NS)
    assert worker.spec.replicas == 2
    assert not any(k.startswith("chaoskit.io/") for k in worker.metadata.annotations or {})


def load_spec() -> LoadSpec:
    return LoadSpec.model_validate({
        "duration": "2s", "workers": 2, "mix": {"pay": 0.5, "final_payment": 0.5},
        "profile": [{"shape": "constant", "rate": "600/s"}]})


@pytest.fixture
def indexed_job(as_runner: KubernetesPlatform, runner: Path) -> Iterator[dict[str, Any]]:
    plan = plan_for(load_spec(), "http://gateway.payments:8080", reference_flows(), seed=11,
                    ack_path=None)
    job = load_job(plan, name="chaoskit-load-test", pods=3, image="chaoskit/payment-stack:0.1.0",
                   run=as_runner.run, start_at=0.0)
    with api_client(str(runner), None) as api_as_runner:  # created as the runner: RBAC allows
        cluster = KubeCluster(api_as_runner)
        cluster.create_object("Job", NS, job)
        yield job
        cluster.delete_object("Job", NS, "chaoskit-load-test")


def test_the_load_indexed_job_runs_one_pod_per_index_with_its_share(
        indexed_job: dict[str, Any], api: Any) -> None:
    created = client.BatchV1Api(api).read_namespaced_job("chaoskit-load-test", NS)
    assert created.spec.completion_mode == "Indexed"
    assert created.spec.completions == created.spec.parallelism == 3
    pods = eventually(lambda: (p := client.CoreV1Api(api).list_namespaced_pod(
        NS, label_selector="job-name=chaoskit-load-test").items) and len(p) >= 3 and p, 60)
    by_index: dict[int, Any] = {}
    for pod in pods:
        by_index[int(pod.metadata.annotations["batch.kubernetes.io/job-completion-index"])] = pod
    assert sorted(by_index) == [0, 1, 2]
    counts = []
    for index, pod in sorted(by_index.items()):
        env = {e.name: e for e in pod.spec.containers[0].env}
        # the job controller hands each pod its index; the plan is the same for all
        assert env["JOB_COMPLETION_INDEX"].value_from.field_ref.field_path.endswith(
            "batch.kubernetes.io/job-completion-index']")
        counts.append(arrivals_of(env[PLAN_ENV].value, index))
    whole = arrivals_of(indexed_job["spec"]["template"]["spec"]["containers"][0]["env"][0]
                        ["value"], 0, workers=1)
    assert counts == index_shares(whole, 3) and sum(counts) == whole
    assert whole == pytest.approx(600 * 2, abs=2)  # the asked rate, over all pods together


def arrivals_of(plan_json: str, index: int, workers: int | None = None) -> int:
    from chaoskit.load.plan import LoadPlan

    plan = LoadPlan.from_json(plan_json)
    schedule = ArrivalSchedule(plan.curve(), seed=plan.seed, weights=plan.weights, worker=index,
                               workers=workers or plan.workers)
    return sum(1 for _ in schedule)


class Gateway(BaseHTTPRequestHandler):
    """Answers every payment 200 on a kept-alive connection: the pods' target, on loopback."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def gateway() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Gateway)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_load_pods_report_through_configmaps_and_the_runner_merges_them(
        as_runner: KubernetesPlatform, runner: Path, gateway: str, api: Any) -> None:
    """KWOK runs no containers, so the three indexed pods run here as processes, each with the
    environment the cluster stored for the Job plus its index, and the runner's credentials."""
    spec = LoadSpec.model_validate({"duration": "2s", "workers": 1, "max_in_flight": 200,
                                    "profile": [{"shape": "constant", "rate": "150/s"}]})
    plan = plan_for(spec, gateway, simple_flows(), seed=5, ack_path=None)
    job = as_runner.start_load_job(plan, pods=3, image="chaoskit/payment-stack:0.1.0",
                                   start_at=time.time() + 4)
    stored = client.BatchV1Api(api).read_namespaced_job(job, NS)
    env = {e.name: e.value for e in stored.spec.template.spec.containers[0].env}
    pods = [subprocess.Popen(
        [sys.executable, "-m", "chaoskit.platforms.kubernetes.load_pod"],
        env={**os.environ, **env, "JOB_COMPLETION_INDEX": str(index), "KUBECONFIG": str(runner),
             "POD_NAMESPACE": NS, "PYTHONPATH": str(ROOT)}) for index in range(3)]
    try:
        assert [p.wait(timeout=60) for p in pods] == [0, 0, 0]
    finally:
        for pod in pods:
            if pod.poll() is None:
                pod.kill()
    merged = as_runner.collect_load(job, pods=3, timeout=10)
    whole = arrivals_of(plan.to_json(), 0, workers=1)
    assert merged["missing"] == [] and merged["indexes"] == [0, 1, 2]
    assert merged["intended"] == whole == pytest.approx(300, abs=2)  # the asked rate, in total
    assert merged["ok"] == merged["sent"] == whole and merged["errors"] == 0
    assert merged["latency_ms"]["p50"] is not None
    leftovers = client.CoreV1Api(api).list_namespaced_config_map(
        NS, label_selector=f"chaoskit.io/load-job={job}").items
    assert leftovers == []
