"""Node loss on a cluster: kill, drain, node-down and isolate one node, and the one way back.

Every change is marked on the object it changes (annotations, a label, a taint key of ours), and
`restore` undoes exactly what those marks say, so it is idempotent and works without a journal:
a node an administrator cordoned before the run stays cordoned.
"""

from __future__ import annotations

import time
from typing import Any

from chaoskit.platforms.kubernetes.cluster import (
    CORDONED,
    ISOLATED,
    MANAGED,
    NODE_DOWN,
    RUN,
    ClusterApi,
    EvictionRefused,
    NodeView,
    PodScope,
    PodView,
)

EVICTION_RETRIES = 3   # a budget can free up while the others go; retry refusals a little
RETRY_PAUSE = 1.0


def policy_name(node: str) -> str:
    return f"chaoskit-isolate-{node}"


def find_node(cluster: ClusterApi, name: str) -> NodeView:
    from chaoskit.errors import PlatformError

    for node in cluster.list_nodes():
        if node.name == name:
            return node
    raise PlatformError(f"no node '{name}' on the cluster",
                        hint="check target.scope.nodes against `kubectl get nodes`")


def pods_on(cluster: ClusterApi, scope: PodScope, node: str) -> list[PodView]:
    """The node's live pods inside the scope; DaemonSet pods stay (as kubectl drain leaves them)."""
    pods = []
    for namespace in scope.namespaces:
        pods += [p for p in cluster.list_pods(namespace, scope.selector, node)
                 if not p.deleting and p.owner_kind != "DaemonSet"]
    return pods


def kill(cluster: ClusterApi, scope: PodScope, node: str) -> dict[str, Any]:
    """Delete the node's pods in scope at once (grace 0): a crash, not a shutdown."""
    pods = pods_on(cluster, scope, node)
    for pod in pods:
        cluster.delete_pod(pod.namespace, pod.name, grace=0)
    return {"deleted": [f"{p.namespace}/{p.name}" for p in pods]}


def cordon(cluster: ClusterApi, node: str, run: str, fault: str) -> None:
    view = find_node(cluster, node)
    annotations: dict[str, Any] = {RUN: run, NODE_DOWN: fault}
    spec: dict[str, Any] = {}
    if not view.unschedulable:  # only undo a cordon we made
        annotations[CORDONED] = "true"
        spec["unschedulable"] = True
    cluster.patch_node(node, {"metadata": {"annotations": annotations}, "spec": spec})


def drain(cluster: ClusterApi, scope: PodScope, node: str, run: str) -> dict[str, Any]:
    """Cordon, then evict through the Eviction API so PodDisruptionBudgets have their say."""
    cordon(cluster, node, run, "drain")
    pending = pods_on(cluster, scope, node)
    evicted: list[str] = []
    refused: dict[str, str] = {}
    for attempt in range(EVICTION_RETRIES):
        if attempt:
            time.sleep(RETRY_PAUSE)
        refused = {}
        for pod in pending:
            key = f"{pod.namespace}/{pod.name}"
            try:
                cluster.evict_pod(pod.namespace, pod.name)
                evicted.append(key)
            except EvictionRefused as exc:
                refused[key] = exc.reason
        pending = [p for p in pending if f"{p.namespace}/{p.name}" in refused]
        if not pending:
            break
    return {"evicted": evicted, "refused": refused, "evictions_refused": len(refused)}


def node_down(cluster: ClusterApi, scope: PodScope, node: str, run: str) -> dict[str, Any]:
    """Cordon plus NoSchedule and NoExecute taints: the taint manager evicts what does not
    tolerate it, as it does for a node that stopped being Ready."""
    cordon(cluster, node, run, "node-down")
    view = find_node(cluster, node)
    ours = [{"key": NODE_DOWN, "value": "true", "effect": e} for e in ("NoSchedule", "NoExecute")]
    kept = [t for t in view.taints if t["key"] != NODE_DOWN]
    cluster.patch_node(node, {"spec": {"taints": kept + ours}})
    return {"tainted": NODE_DOWN, "pods_on_node": len(pods_on(cluster, scope, node))}


def isolate(cluster: ClusterApi, scope: PodScope, node: str, run: str) -> dict[str, Any]:
    """Label the node's pods and put a deny-all (ingress and egress) policy on that label."""
    pods = pods_on(cluster, scope, node)
    for namespace in scope.namespaces:
        cluster.create_object("NetworkPolicy", namespace, _deny_all(node, run))
    for pod in pods:
        cluster.patch_pod(pod.namespace, pod.name, {"metadata": {
            "labels": {ISOLATED: node}, "annotations": {RUN: run}}})
    return {"isolated": [f"{p.namespace}/{p.name}" for p in pods]}


def _deny_all(node: str, run: str) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": policy_name(node), "labels": {MANAGED: "true"},
                         "annotations": {RUN: run}},
            "spec": {"podSelector": {"matchLabels": {ISOLATED: node}},
                     "policyTypes": ["Ingress", "Egress"]}}


def restore(cluster: ClusterApi, scope: PodScope, node: str) -> dict[str, Any]:
    """Undo whatever our marks on and around the node say chaoskit did; safe to repeat."""
    view = find_node(cluster, node)
    undone: list[str] = []
    if NODE_DOWN in {t["key"] for t in view.taints}:
        kept = [t for t in view.taints if t["key"] != NODE_DOWN]
        cluster.patch_node(node, {"spec": {"taints": kept}})
        undone.append("taint")
    spec = {"unschedulable": False} if CORDONED in view.annotations else {}
    marks = {k: None for k in (RUN, CORDONED, NODE_DOWN) if k in view.annotations}
    if marks:
        cluster.patch_node(node, {"metadata": {"annotations": marks}, "spec": spec})
        undone += ["cordon"] if spec else []
    for namespace in scope.namespaces:
        undone += _unisolate(cluster, namespace, node)
    return {"undone": undone}


def _unisolate(cluster: ClusterApi, namespace: str, node: str) -> list[str]:
    undone = []
    for policy in cluster.list_objects("NetworkPolicy", namespace, f"{MANAGED}=true"):
        if policy.name == policy_name(node):
            cluster.delete_object("NetworkPolicy", namespace, policy.name)
            undone.append(f"policy {namespace}/{policy.name}")
    for pod in cluster.list_pods(namespace, f"{ISOLATED}={node}"):
        cluster.patch_pod(namespace, pod.name, {"metadata": {
            "labels": {ISOLATED: None}, "annotations": {RUN: None}}})
        undone.append(f"label {namespace}/{pod.name}")
    return undone


def residue(cluster: ClusterApi, scope: PodScope, node: str) -> list[str]:
    """What of ours is still on the cluster for this node (empty: clean)."""
    view = find_node(cluster, node)
    found = []
    if CORDONED in view.annotations and view.unschedulable:
        found.append(f"node {node} is cordoned by chaoskit")
    found += [f"node {node} has taint {t['key']}:{t['effect']}" for t in view.taints
              if t["key"] == NODE_DOWN]
    found += [f"node {node} has annotation {k}" for k in (RUN, CORDONED, NODE_DOWN)
              if k in view.annotations]
    for namespace in scope.namespaces:
        found += [f"NetworkPolicy {namespace}/{p.name} remains"
                  for p in cluster.list_objects("NetworkPolicy", namespace, f"{MANAGED}=true")
                  if p.name == policy_name(node)]
        found += [f"pod {namespace}/{p.name} still labelled {ISOLATED}"
                  for p in cluster.list_pods(namespace, f"{ISOLATED}={node}")]
    return found
