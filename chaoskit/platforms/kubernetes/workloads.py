"""Elastic capacity and co-location on a cluster: scale a Deployment, pin offline Jobs to a node."""

from __future__ import annotations

import secrets
from typing import Any

from chaoskit.errors import PlatformError
from chaoskit.platforms.kubernetes.cluster import MANAGED, REPLICAS, RUN, ClusterApi

OFFLINE_CLASS = "payments-offline"
COLOCATED = "chaoskit.io/colocated"  # label: the fault a co-located Job belongs to


def _deployment(cluster: ClusterApi, namespace: str, name: str) -> Any:
    for item in cluster.list_objects("Deployment", namespace):
        if item.name == name:
            return item
    raise PlatformError(f"no Deployment {namespace}/{name}",
                        hint="check the scale fault's target against `kubectl get deploy`")


def scale_out(cluster: ClusterApi, namespace: str, name: str, replicas: int,
              run: str) -> dict[str, Any]:
    """Scale to `replicas`, first marking the original count on the Deployment itself."""
    item = _deployment(cluster, namespace, name)
    original = int(item.annotations.get(REPLICAS, item.replicas or 0))
    cluster.patch_object("Deployment", namespace, name, {"metadata": {"annotations": {
        RUN: run, REPLICAS: str(original)}}})
    cluster.scale_deployment(namespace, name, replicas)
    return {"deployment": f"{namespace}/{name}", "from": original, "to": replicas}


def scale_back(cluster: ClusterApi, namespace: str, name: str,
               original: int | None = None) -> dict[str, Any]:
    """Back to the marked (or journaled) count, then drop the marks; nothing marked: no-op."""
    item = _deployment(cluster, namespace, name)
    marked = item.annotations.get(REPLICAS)
    target = int(marked) if marked is not None else original
    if target is None:
        return {"deployment": f"{namespace}/{name}", "restored": None}
    if item.replicas != target:
        cluster.scale_deployment(namespace, name, target)
    cluster.patch_object("Deployment", namespace, name, {"metadata": {"annotations": {
        RUN: None, REPLICAS: None}}})
    return {"deployment": f"{namespace}/{name}", "restored": target}


def scale_residue(cluster: ClusterApi, namespace: str, name: str, original: int) -> list[str]:
    item = _deployment(cluster, namespace, name)
    found = [f"Deployment {namespace}/{name} still annotated {k}" for k in (RUN, REPLICAS)
             if k in item.annotations]
    if item.replicas != original:
        found.append(f"Deployment {namespace}/{name} has {item.replicas} replicas, "
                     f"not {original}")
    return found


def offline_job(fault: str, node: str, run: str, options: dict[str, Any]) -> dict[str, Any]:
    """Offline batch pods pinned to `node` by required node affinity (the scheduler still
    places them, so priority and preemption apply), low priority when isolated."""
    count = int(options.get("count", 1))
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}},
        "containers": [{"name": "offline", "image": options.get("image",
                                                                "chaoskit/payment-stack:0.1.0"),
                        "args": list(options.get("args", ["offline"])),
                        "resources": {"requests": {"cpu": options.get("cpu", "500m"),
                                                   "memory": options.get("memory", "128Mi")}}}],
    }
    if options.get("isolation", True):
        spec["priorityClassName"] = OFFLINE_CLASS
    labels = {MANAGED: "true", COLOCATED: fault}
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": f"chaoskit-{fault}-{secrets.token_hex(3)}"[:63],
                         "labels": labels, "annotations": {RUN: run}},
            "spec": {"parallelism": count, "completions": count, "backoffLimit": 0,
                     "activeDeadlineSeconds": int(options.get("deadline", 3600)),
                     "template": {"metadata": {"labels": labels}, "spec": spec}}}


def colocated(cluster: ClusterApi, namespace: str, fault: str) -> list[str]:
    return [j.name for j in cluster.list_objects("Job", namespace, f"{COLOCATED}={fault}")]


def remove_colocated(cluster: ClusterApi, namespace: str, fault: str) -> dict[str, Any]:
    names = colocated(cluster, namespace, fault)
    for name in names:
        cluster.delete_object("Job", namespace, name)
    return {"deleted_jobs": names}
