"""KubernetesPlatform against an in-memory cluster at our own seam (ClusterApi)."""

from __future__ import annotations

import asyncio
import copy
import random
from typing import Any

import pytest

from chaoskit.errors import PlatformError
from chaoskit.faults.node_loss import NodeLoss, NodeLossConfig
from chaoskit.faults.scale import Scale, ScaleConfig
from chaoskit.platforms.abilities import missing
from chaoskit.platforms.kubernetes import nodeops, recovery
from chaoskit.platforms.kubernetes.cluster import (
    CORDONED,
    ISOLATED,
    NODE_DOWN,
    RUN,
    Access,
    EvictionRefused,
    NodeView,
    ObjectView,
    PodView,
)
from chaoskit.platforms.kubernetes.platform import KubernetesPlatform
from tests.fixtures.systems import role_node

NS = "payments"


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value


class FakeCluster:
    """Nodes, pods, objects and RBAC in dicts; evictions of `protected` pods are refused."""

    def __init__(self) -> None:
        self.nodes = {n: {"labels": {"kubernetes.io/hostname": n}, "annotations": {},
                          "unschedulable": False, "taints": []} for n in ("n1", "n2", "n3")}
        self.pods: dict[str, dict[str, Any]] = {}
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.protected: set[str] = set()
        self.denied: set[tuple[str, str, str]] = set()  # (verb, resource/sub, namespace)
        self.evicted: list[str] = []

    def add_pod(self, name: str, node: str, app: str) -> None:
        self.pods[name] = {"node": node, "labels": {"app.kubernetes.io/name": app},
                           "annotations": {}}

    def list_nodes(self) -> list[NodeView]:
        return [NodeView(n, "10.0.0.1", dict(v["labels"]), dict(v["annotations"]),
                         v["unschedulable"], tuple(v["taints"])) for n, v in self.nodes.items()]

    def patch_node(self, name: str, body: dict[str, Any]) -> None:
        node = self.nodes[name]
        _merge(node["annotations"], body.get("metadata", {}).get("annotations", {}))
        spec = body.get("spec", {})
        node["unschedulable"] = spec.get("unschedulable", node["unschedulable"])
        node["taints"] = copy.deepcopy(spec.get("taints", node["taints"]))

    def list_pods(self, namespace: str, selector: str = "", node: str = "") -> list[PodView]:
        wanted = [s.split("=", 1) for s in selector.split(",") if s]
        return [PodView(n, namespace, p["node"], dict(p["labels"]), dict(p["annotations"]))
                for n, p in sorted(self.pods.items())
                if (not node or p["node"] == node)
                and all(k in p["labels"] and (len(kv) == 1 or p["labels"][k] == kv[1])
                        for kv in wanted for k in kv[:1])]

    def delete_pod(self, namespace: str, name: str, grace: int = 0) -> None:
        self.pods.pop(name, None)

    def evict_pod(self, namespace: str, name: str) -> None:
        if name in self.protected:
            raise EvictionRefused(429, "Cannot evict pod as it would violate the pod's "
                                       "disruption budget.")
        self.evicted.append(name)
        self.pods.pop(name, None)

    def patch_pod(self, namespace: str, name: str, body: dict[str, Any]) -> None:
        _merge(self.pods[name]["labels"], body["metadata"].get("labels", {}))
        _merge(self.pods[name]["annotations"], body["metadata"].get("annotations", {}))

    def list_objects(self, kind: str, namespace: str, selector: str = "") -> list[ObjectView]:
        key, eq, value = selector.partition("=")
        return [ObjectView(kind, name, namespace, dict(o["labels"]), dict(o["annotations"]),
                           o.get("replicas"), o.get("ready"))
                for (k, name), o in sorted(self.objects.items())
                if k == kind and (not key or (o["labels"].get(key) == value if eq
                                              else key in o["labels"]))]

    def create_object(self, kind: str, namespace: str, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        self.objects[(kind, meta["name"])] = {"labels": dict(meta.get("labels", {})),
                                              "annotations": dict(meta.get("annotations", {})),
                                              "body": body}

    def delete_object(self, kind: str, namespace: str, name: str) -> None:
        self.objects.pop((kind, name), None)

    def patch_object(self, kind: str, namespace: str, name: str, body: dict[str, Any]) -> None:
        _merge(self.objects[(kind, name)]["annotations"], body["metadata"]["annotations"])

    def scale_deployment(self, namespace: str, name: str, replicas: int) -> int:
        before = self.objects[("Deployment", name)]["replicas"]
        self.objects[("Deployment", name)].update(replicas=replicas, ready=replicas)
        return int(before)

    def can_i(self, access: Access, namespace: str | None) -> bool:
        what = f"{access.resource}/{access.subresource}".rstrip("/")
        return (access.verb, what, namespace or "") not in self.denied

    def service_address(self, namespace: str, name: str, port: str) -> str | None:
        return {("toxiproxy", "api"): "10.96.0.7:8474"}.get((name, port))


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> FakeCluster:
    monkeypatch.setattr(nodeops, "RETRY_PAUSE", 0.0)  # our own pause between eviction rounds
    fake = FakeCluster()
    for name, node, app in [("gateway-a", "n1", "gateway"), ("gateway-b", "n2", "gateway"),
                            ("scheduler-a", "n1", "scheduler"), ("postgres-0", "n1", "postgres"),
                            ("worker-a", "n3", "worker")]:
        fake.add_pod(name, node, app)
    for deployment in ("gateway", "worker"):
        fake.objects[("Deployment", deployment)] = {"labels": {}, "annotations": {},
                                                    "replicas": 2, "ready": 2}
    return fake


@pytest.fixture
def platform(cluster: FakeCluster) -> KubernetesPlatform:
    return KubernetesPlatform(namespace=NS, run="run-1", cluster=cluster,
                              scope={"namespaces": [NS], "nodes": ["n1", "n2", "n3"]})


def test_describe_round_trips_and_carries_the_run(platform: KubernetesPlatform) -> None:
    again = KubernetesPlatform.from_description(platform.describe())
    assert again.describe() == platform.describe()
    assert again.run == "run-1" and again.scope.namespaces == (NS,)


def test_nodes_carry_the_apps_they_host_and_declared_roles_resolve_to_them(
        platform: KubernetesPlatform) -> None:
    nodes = {n.name: n for n in platform.nodes()}
    assert nodes["n1"].roles == ("gateway", "postgres", "scheduler")
    # the reference stack's declared finders: its metrics are out of reach here and no
    # database is given, so the pod selectors decide
    assert role_node(platform, "scheduler-leader") == "n1"
    assert role_node(platform, "worker-most-leases") == "n3"
    assert platform.nodes_of_pods("app.kubernetes.io/name=worker") == ["n3"]


def test_drain_cordons_evicts_reports_refusals_and_restore_uncordons(
        platform: KubernetesPlatform, cluster: FakeCluster) -> None:
    cluster.protected.add("postgres-0")
    facts = platform.lose_node("n1", "drain")
    assert sorted(facts["evicted"]) == [f"{NS}/gateway-a", f"{NS}/scheduler-a"]
    assert list(facts["refused"]) == [f"{NS}/postgres-0"] and facts["evictions_refused"] == 1
    assert cluster.nodes["n1"]["unschedulable"]
    assert cluster.nodes["n1"]["annotations"][RUN] == "run-1"
    assert platform.node_residue("n1")
    platform.restore_node("n1", "drain")
    assert not cluster.nodes["n1"]["unschedulable"] and not cluster.nodes["n1"]["annotations"]
    assert platform.node_residue("n1") == []


def test_a_node_cordoned_by_someone_else_stays_cordoned(
        platform: KubernetesPlatform, cluster: FakeCluster) -> None:
    cluster.nodes["n2"]["unschedulable"] = True
    platform.lose_node("n2", "drain")
    assert CORDONED not in cluster.nodes["n2"]["annotations"]
    platform.restore_node("n2", "drain")
    assert cluster.nodes["n2"]["unschedulable"]
    assert platform.node_residue("n2") == []


def test_node_down_taints_and_restore_keeps_foreign_taints(
        platform: KubernetesPlatform, cluster: FakeCluster) -> None:
    foreign = {"key": "dedicated", "value": "db", "effect": "NoSchedule"}
    cluster.nodes["n3"]["taints"] = [foreign]
    platform.lose_node("n3", "node-down")
    effects = {t["effect"] for t in cluster.nodes["n3"]["taints"] if t["key"] == NODE_DOWN}
    assert effects == {"NoSchedule", "NoExecute"}
    assert any("taint" in r for r in platform.node_residue("n3"))
    platform.restore_node("n3", "node-down")
    platform.restore_node("n3", "node-down")  # idempotent
    assert cluster.nodes["n3"]["taints"] == [foreign]
    assert platform.node_residue("n3") == []


def test_isolate_labels_pods_under_a_deny_all_policy_and_revert_removes_both(
        platform: KubernetesPlatform, cluster: FakeCluster) -> None:
    platform.lose_node("n2", "isolate")
    policy = cluster.objects[("NetworkPolicy", "chaoskit-isolate-n2")]["body"]
    assert policy["spec"]["podSelector"] == {"matchLabels": {ISOLATED: "n2"}}
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in policy
    assert cluster.pods["gateway-b"]["labels"][ISOLATED] == "n2"
    platform.restore_node("n2", "isolate")
    assert ("NetworkPolicy", "chaoskit-isolate-n2") not in cluster.objects
    assert ISOLATED not in cluster.pods["gateway-b"]["labels"]
    assert platform.node_residue("n2") == []


def test_kill_deletes_only_the_nodes_pods_in_scope(
        platform: KubernetesPlatform, cluster: FakeCluster) -> None:
    facts = platform.lose_node("n1", "kill")
    assert sorted(facts["deleted"]) == [f"{NS}/gateway-a", f"{NS}/postgres-0",
                                        f"{NS}/scheduler-a"]
    assert set(cluster.pods) == {"gateway-b", "worker-a"}


def test_missing_permissions_name_the_verb_and_resource(
        platform: KubernetesPlatform, cluster: FakeCluster) -> None:
    assert platform.missing_access("node-loss", "drain") == []
    cluster.denied.add(("create", "pods/eviction", NS))
    cluster.denied.add(("patch", "nodes", ""))
    assert platform.missing_access("node-loss", "drain") == [
        f"missing permission: create on pods/eviction in namespace {NS}",
        "missing permission: patch on nodes"]


def test_node_loss_driver_drives_the_cluster_modes_through_the_platform(
        platform: KubernetesPlatform, cluster: FakeCluster) -> None:
    cluster.protected.add("postgres-0")
    driver = NodeLoss(platform)
    intent = driver.plan("drain-db", {"node": role_node(platform, "scheduler-leader")},
                         NodeLossConfig(mode="drain", recovery_timeout=0.1), random.Random(1))
    assert intent["node"] == "n1"
    assert asyncio.run(driver.preflight(intent)) == []
    facts = asyncio.run(driver.inject(intent))
    assert facts["evictions_refused"] == 1
    asyncio.run(driver.revert(intent))
    assert asyncio.run(driver.verify_reverted(intent)) == []
    cluster.denied.add(("create", "pods/eviction", NS))
    assert "create on pods/eviction" in asyncio.run(driver.preflight(intent))[0]


def test_scale_adds_capacity_units_as_replicas_and_recovery_without_journal_removes_them(
        platform: KubernetesPlatform, cluster: FakeCluster) -> None:
    driver = Scale(platform)  # the one `scale` driver, asking this platform
    intent = driver.plan("more", {}, ScaleConfig(nodes=2), random.Random())
    assert intent["nodes"] == ["capacity-1", "capacity-2"]
    assert asyncio.run(driver.preflight(intent)) == []
    facts = asyncio.run(driver.inject(intent))
    assert facts["added"] == ["capacity-1", "capacity-2"]
    gateway, worker = (cluster.objects[("Deployment", d)] for d in ("gateway", "worker"))
    assert gateway["replicas"] == worker["replicas"] == 4
    assert gateway["annotations"][RUN] == "run-1"
    assert asyncio.run(driver.verify_reverted(intent))  # applied: residue is reported
    result = recovery.recover(cluster, (NS,))  # the journal is lost: the marks are enough
    assert result.clean and gateway["replicas"] == worker["replicas"] == 2
    assert not gateway["annotations"] and asyncio.run(driver.verify_reverted(intent)) == []


def test_scale_revert_gives_back_each_unit(platform: KubernetesPlatform,
                                           cluster: FakeCluster) -> None:
    driver = Scale(platform)
    intent = driver.plan("more", {}, ScaleConfig(nodes=1), random.Random())
    asyncio.run(driver.inject(intent))
    asyncio.run(driver.revert(intent))
    assert cluster.objects[("Deployment", "worker")]["replicas"] == 2
    assert asyncio.run(driver.verify_reverted(intent)) == []
    needs = driver.needs(ScaleConfig(nodes=-1))  # no retiring of capacity on a cluster
    assert missing(platform, needs) == [
        "the kubernetes platform cannot take capacity out (scale -N)"]


def test_cluster_recovery_undoes_every_mark_of_one_run_only(
        platform: KubernetesPlatform, cluster: FakeCluster) -> None:
    platform.lose_node("n3", "node-down")
    platform.lose_node("n2", "isolate")
    other = KubernetesPlatform(namespace=NS, run="run-2", cluster=cluster,
                               scope={"namespaces": [NS]})
    other.lose_node("n1", "drain")
    result = recovery.recover(cluster, (NS,), run="run-1")
    assert result.clean and result.undone
    assert platform.node_residue("n3") == [] and platform.node_residue("n2") == []
    assert cluster.nodes["n1"]["annotations"][RUN] == "run-2"  # not ours to undo
    assert recovery.recover(cluster, (NS,)).clean
    assert platform.node_residue("n1") == []


def test_recovery_after_node_down_waits_for_the_node_to_empty_and_workloads_to_be_ready(
        platform: KubernetesPlatform, cluster: FakeCluster) -> None:
    platform.lose_node("n3", "node-down")  # no taint manager here: worker-a stays till moved
    pending = asyncio.run(platform.watch_recovery("n3", "node-down", 0.3))
    assert not pending["recovered"] and pending["waiting_for"] == ["1 pods still on n3"]
    cluster.pods["worker-a"]["node"] = "n1"
    cluster.objects[("Deployment", "gateway")]["ready"] = 1
    short = asyncio.run(platform.watch_recovery("n3", "node-down", 0.3))
    assert short["waiting_for"] == [f"Deployment {NS}/gateway: 1/2 ready"]
    cluster.objects[("Deployment", "gateway")]["ready"] = 2
    healed = asyncio.run(NodeLoss(platform).measure_effect(
        {"fault": "f", "node": "n3", "mode": "node-down", "recovery_timeout": 1}))
    assert healed["recovered"] and healed["recovery_s"] is not None


def test_toxiproxy_is_the_explicit_url_or_the_service_from_inside_the_cluster(
        platform: KubernetesPlatform, cluster: FakeCluster,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(PlatformError, match="only reachable inside") as outside:
        platform.toxiproxy_url()
    assert "port-forward svc/toxiproxy" in outside.value.hint
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    assert platform.toxiproxy_url() == "http://10.96.0.7:8474"
    forwarded = KubernetesPlatform(namespace=NS, cluster=cluster, toxiproxy="http://127.0.0.1:1")
    assert forwarded.toxiproxy_url() == "http://127.0.0.1:1"
    with pytest.raises(PlatformError, match="database"):
        platform.database_url()


def test_preflight_names_what_is_outside_reach(cluster: FakeCluster) -> None:
    wrong = KubernetesPlatform(namespace=NS, cluster=cluster,
                               scope={"namespaces": [NS], "nodes": ["n9"],
                                      "selectors": {"app.kubernetes.io/name": "nothing"}})
    assert asyncio.run(wrong.preflight()) == ["scope node n9 is not on the cluster"]
    cluster.denied.add(("list", "pods", NS))
    denied = asyncio.run(wrong.preflight())
    assert denied[0] == f"missing permission: list on pods in namespace {NS}"
    empty = KubernetesPlatform(namespace=NS, cluster=FakeCluster(), scope={"namespaces": [NS]})
    assert "the scope selects nothing" in asyncio.run(empty.preflight())[0]


def test_cluster_recovery_without_a_run_also_removes_uncollected_load_reports(
        cluster: FakeCluster) -> None:
    cluster.create_object("ConfigMap", NS, {"metadata": {
        "name": "chaoskit-load-1-0", "labels": {"chaoskit.io/load-job": "chaoskit-load-1"}}})
    assert recovery.recover(cluster, (NS,), run="someone").clean
    assert ("ConfigMap", "chaoskit-load-1-0") in cluster.objects  # not provably that run's
    result = recovery.recover(cluster, (NS,))
    assert result.clean and ("ConfigMap", "chaoskit-load-1-0") not in cluster.objects
