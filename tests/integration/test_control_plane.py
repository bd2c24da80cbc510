"""The test control plane is real: Deployments schedule onto simulated nodes and heal after loss."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from kubernetes import client, utils

from tests.fixtures.waiting import eventually

if TYPE_CHECKING:
    from tests.fixtures.control_plane import ControlPlane

# Registers the control_plane fixture even before tests/conftest.py lists the plug-in (and is
# imported only through it, so pytest can still rewrite its asserts).
pytest_plugins = ["tests.fixtures.control_plane"]
ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration, pytest.mark.k8s]
SMOKE = "smoke"



@pytest.fixture
def api(control_plane: ControlPlane) -> Iterator[Any]:
    with control_plane.api_client() as api_client:
        yield api_client


def deployment(name: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": SMOKE},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "app", "image": "smoke:1"}]}}},
    }


def running_pods(core: client.CoreV1Api, namespace: str, selector: str) -> list[Any]:
    pods = core.list_namespaced_pod(namespace, label_selector=selector).items
    return [p for p in pods if p.status.phase == "Running" and not p.metadata.deletion_timestamp]


def namespace_gone(core: client.CoreV1Api, name: str) -> bool:
    try:
        core.read_namespace(name)
    except client.ApiException as error:
        return error.status == 404
    return False


def remove_namespace(api: Any, name: str) -> None:
    """Delete a namespace and wait until the namespace controller has emptied and removed it."""
    core = client.CoreV1Api(api)
    core.delete_namespace(name)
    # simulated pods need no grace period; waiting out theirs would only slow the suite
    core.delete_collection_namespaced_pod(name, grace_period_seconds=0)
    eventually(lambda: namespace_gone(core, name), timeout=90)


@pytest.fixture
def smoke_namespace(api: Any) -> Iterator[str]:
    client.CoreV1Api(api).create_namespace({"metadata": {"name": SMOKE}})
    yield SMOKE
    remove_namespace(api, SMOKE)  # the session's control plane is shared with other tests


def test_pods_run_on_simulated_nodes_and_are_rescheduled_after_deletion(
        control_plane: ControlPlane, api: Any, smoke_namespace: str) -> None:
    core = client.CoreV1Api(api)
    eventually(lambda: core.list_namespaced_service_account(SMOKE).items)  # pods need `default`
    client.AppsV1Api(api).create_namespaced_deployment(SMOKE, deployment("web", 3))

    first = eventually(lambda: (p := running_pods(core, SMOKE, "app=web")) and len(p) == 3 and p)
    assert {p.spec.node_name for p in first} <= set(control_plane.nodes)
    for pod in first:
        core.delete_namespaced_pod(pod.metadata.name, SMOKE, grace_period_seconds=0)

    old = {p.metadata.uid for p in first}
    healed = eventually(lambda: (p := running_pods(core, SMOKE, "app=web")) and len(p) == 3
                        and not old & {x.metadata.uid for x in p} and p)
    assert {p.spec.node_name for p in healed} <= set(control_plane.nodes)
    eventually(lambda: not {p.metadata.uid for p in core.list_namespaced_pod(SMOKE).items} & old)


LEDGER_VOLUME = {
    "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "lab-ledger"},
    "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
             "hostPath": {"path": "/var/lib/chaoskit-lab-ledger"}},
}


def wait_running(core: client.CoreV1Api, namespace: str, labels: dict[str, str],
                 count: int) -> list[Any]:
    selector = ",".join(f"{key}={value}" for key, value in labels.items())
    return eventually(lambda: (p := running_pods(core, namespace, selector)) and len(p) == count
                      and p)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def lab(control_plane: ControlPlane) -> Iterator[list[dict[str, Any]]]:
    """k8s/overlays/lab, rendered by kustomize, created on the control plane, removed after."""
    from tests.fixtures.control_plane import kustomize_build

    docs = kustomize_build(ROOT / "k8s" / "overlays" / "lab")
    with control_plane.api_client() as api_client:
        # no storage provisioner here: a static volume for the ledger's claim to bind to
        client.CoreV1Api(api_client).create_persistent_volume(LEDGER_VOLUME)
        for doc in docs:
            utils.create_from_dict(api_client, doc)
        yield docs
        remove_cluster_objects(api_client, docs)


def remove_cluster_objects(api: Any, docs: list[dict[str, Any]]) -> None:
    """Undo the lab: its namespace (with everything in it), then what lives outside one."""
    remove_namespace(api, "payments")
    rbac, scheduling = client.RbacAuthorizationV1Api(api), client.SchedulingV1Api(api)
    delete = {"ClusterRole": rbac.delete_cluster_role,
              "ClusterRoleBinding": rbac.delete_cluster_role_binding,
              "PriorityClass": scheduling.delete_priority_class}
    for doc in docs:
        if doc["kind"] in delete:
            delete[doc["kind"]](doc["metadata"]["name"])
    client.CoreV1Api(api).delete_persistent_volume(LEDGER_VOLUME["metadata"]["name"])


def test_the_lab_manifests_apply_and_every_workload_runs(
        control_plane: ControlPlane, api: Any, lab: list[dict[str, Any]]) -> None:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    deployments = apps.list_namespaced_deployment("payments").items
    assert {d.metadata.name for d in deployments} == {
        doc["metadata"]["name"] for doc in lab if doc["kind"] == "Deployment"}
    for item in deployments:
        pods = wait_running(core, "payments", item.spec.selector.match_labels, item.spec.replicas)
        assert {p.spec.node_name for p in pods} <= set(control_plane.nodes)
        assert all(p.spec.priority == 100000 for p in pods)  # payments-online resolved
    ledger = wait_running(core, "payments", {"app.kubernetes.io/name": "postgres"}, 1)
    assert ledger[0].spec.node_name in control_plane.nodes
    scheduler = running_pods(core, "payments", "app.kubernetes.io/name=scheduler")
    assert len({p.spec.node_name for p in scheduler}) == 2  # leader and standby apart


def test_the_runner_role_is_allowed_in_its_namespace_and_refused_outside(
        api: Any, lab: list[dict[str, Any]]) -> None:
    del lab  # only its Role and bindings matter here
    authz = client.AuthorizationV1Api(api)
    user = "system:serviceaccount:payments:chaoskit-runner"

    def allowed(verb: str, resource: str, namespace: str | None, sub: str = "") -> bool:
        attributes = {"verb": verb, "resource": resource, "subresource": sub,
                      "namespace": namespace, "group": "apps" if "deploy" in resource else ""}
        review = authz.create_subject_access_review(
            {"spec": {"user": user, "resourceAttributes": attributes}})
        return bool(review.status.allowed)

    assert allowed("delete", "pods", "payments")
    assert allowed("create", "pods", "payments", sub="eviction")
    assert allowed("patch", "deployments", "payments", sub="scale")
    assert allowed("patch", "nodes", None)
    assert not allowed("delete", "pods", "kube-system")
    assert not allowed("delete", "pods", SMOKE)
    assert not allowed("get", "secrets", "payments")
    assert not allowed("delete", "nodes", None)
