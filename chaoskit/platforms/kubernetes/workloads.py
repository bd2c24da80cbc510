"""Capacity and co-location on a cluster, in the shapes the `scale` and `colocate` drivers ask for.

Scale: one capacity unit (what a lab node carries) is one more replica of each UNIT Deployment;
the original replica count and the units added are annotations on the Deployment, so a revert or
`recover --cluster` needs nothing else. Colocate: one Job per node, pinned by node affinity, at
the low PriorityClass when isolated; its pods are the "offline processes".
"""

from __future__ import annotations

import zlib
from typing import Any

from chaoskit.errors import PlatformError
from chaoskit.platforms.kubernetes.cluster import MANAGED, REPLICAS, RUN, ClusterApi, ObjectView

UNIT = ("gateway", "worker")         # a capacity unit: one replica of each
UNITS = "chaoskit.io/capacity-units"  # on those Deployments: the units added, comma-separated
OFFLINE_CLASS = "payments-offline"
COLOCATED = "chaoskit.io/colocated"  # label on Jobs and pods: the colocate fault's tag
IMAGE = "chaoskit/payment-stack:0.1.0"


def _deployment(cluster: ClusterApi, namespace: str, name: str) -> ObjectView:
    for item in cluster.list_objects("Deployment", namespace):
        if item.name == name:
            return item
    raise PlatformError(f"no Deployment {namespace}/{name}",
                        hint="apply k8s/ (the stack) in the target namespace")


def _units(item: ObjectView) -> list[str]:
    return [u for u in item.annotations.get(UNITS, "").split(",") if u]


def units(cluster: ClusterApi, namespace: str) -> list[str]:
    return _units(_deployment(cluster, namespace, UNIT[0]))


def set_units(cluster: ClusterApi, namespace: str, wanted: list[str], run: str) -> None:
    """Scale every UNIT Deployment to original + len(wanted); no units left: marks removed."""
    for name in UNIT:
        item = _deployment(cluster, namespace, name)
        original = int(item.annotations.get(REPLICAS, item.replicas or 0))
        marks: dict[str, Any] = {RUN: run, REPLICAS: str(original), UNITS: ",".join(wanted)}
        body = {"metadata": {"annotations": marks if wanted else dict.fromkeys(marks)}}
        if wanted:  # mark before scaling: a crash in between still knows the original
            cluster.patch_object("Deployment", namespace, name, body)
        cluster.scale_deployment(namespace, name, original + len(wanted))
        if not wanted:
            cluster.patch_object("Deployment", namespace, name, body)


def unit_states(cluster: ClusterApi, namespace: str) -> dict[str, str]:
    """Each added unit 'UP' once every UNIT Deployment has all its replicas ready."""
    items = [_deployment(cluster, namespace, name) for name in UNIT]
    ready = all((i.ready or 0) >= (i.replicas or 0) for i in items)
    return dict.fromkeys(_units(items[0]), "UP" if ready else "DOWN")


def unit_residue(cluster: ClusterApi, namespace: str, unit: str) -> list[str]:
    found = []
    for name in UNIT:
        item = _deployment(cluster, namespace, name)
        if unit in _units(item):
            found.append(f"Deployment {namespace}/{name} still carries capacity unit {unit}")
        if REPLICAS in item.annotations and not _units(item):
            found.append(f"Deployment {namespace}/{name} still annotated {REPLICAS}")
    return found


def scale_back(cluster: ClusterApi, namespace: str, name: str) -> dict[str, Any]:
    """A Deployment back to its marked original count, marks removed (for recovery)."""
    item = _deployment(cluster, namespace, name)
    if REPLICAS not in item.annotations:
        return {"deployment": f"{namespace}/{name}", "restored": None}
    original = int(item.annotations[REPLICAS])
    cluster.scale_deployment(namespace, name, original)
    cluster.patch_object("Deployment", namespace, name, {"metadata": {"annotations": {
        RUN: None, REPLICAS: None, UNITS: None}}})
    return {"deployment": f"{namespace}/{name}", "restored": original}


def offline_job(node: str, tag: str, work: Any, run: str) -> dict[str, Any]:
    """Offline work pinned to `node` by required node affinity (the scheduler still places it,
    so priority and preemption apply); low priority and a small request when isolated."""
    labels = {MANAGED: "true", COLOCATED: tag, "chaoskit.io/work": work.work}
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}},
        "containers": [_container(work)],
    }
    if work.isolation:
        spec["priorityClassName"] = OFFLINE_CLASS
    name = f"chaoskit-{tag}"[:52] + f"-{zlib.crc32(node.encode()) % 10**6:06d}"
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "labels": labels, "annotations": {RUN: run}},
            "spec": {"parallelism": 1, "completions": 1, "backoffLimit": 0,
                     "activeDeadlineSeconds": max(1, int(work.lifetime)),  # a lost revert ends
                     "template": {"metadata": {"labels": labels}, "spec": spec}}}


def _container(work: Any) -> dict[str, Any]:
    cpu = "50m" if work.isolation else "500m"  # isolated: a tiny CPU weight, as k8s/ does
    if work.work == "burner":
        return {"name": "offline", "image": IMAGE, "resources": {"requests": {"cpu": cpu}},
                "command": ["python", "-m", "chaoskit.lab.offline", "--cpu",
                            str(work.cpu), "--memory", str(work.memory), "--seconds",
                            f"{work.lifetime:g}"]}
    env = [{"name": "CHAOSKIT_DATABASE_URL", "valueFrom": {"secretKeyRef": {
               "name": "payments-db", "key": "CHAOSKIT_DATABASE_URL"}}},
           {"name": "CHAOSKIT_OFFLINE_WINDOW", "value": f"{work.window:g}s"}]
    env += [{"name": "CHAOSKIT_OFFLINE_UNITS", "value": str(work.units)}] if work.units else []
    env += [{"name": "CHAOSKIT_OFFLINE_ROUNDS", "value": str(work.rounds)}] if work.rounds else []
    return {"name": "offline", "image": IMAGE, "args": ["offline"], "env": env,
            "envFrom": [{"configMapRef": {"name": "payment-stack"}}],
            "resources": {"requests": {"cpu": cpu, "memory": "128Mi"}}}
