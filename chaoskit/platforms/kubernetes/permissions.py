"""What each fault needs to be allowed to do, checked with SelfSubjectAccessReview."""

from __future__ import annotations

from chaoskit.platforms.kubernetes.cluster import Access, ClusterApi

_READ_PODS = (Access("list", "pods"),)
_NODES = (Access("list", "nodes", namespaced=False), Access("patch", "nodes", namespaced=False))

NEEDS: dict[tuple[str, str], tuple[Access, ...]] = {
    ("node-loss", "kill"): (*_READ_PODS, Access("delete", "pods"),
                            Access("list", "nodes", namespaced=False)),
    ("node-loss", "drain"): (*_READ_PODS, Access("create", "pods", subresource="eviction"),
                             *_NODES),
    ("node-loss", "node-down"): (*_READ_PODS, *_NODES),
    ("node-loss", "isolate"): (*_READ_PODS, Access("patch", "pods"), *_NODES,
                               Access("create", "networkpolicies", "networking.k8s.io"),
                               Access("list", "networkpolicies", "networking.k8s.io"),
                               Access("delete", "networkpolicies", "networking.k8s.io")),
    ("scale", ""): (Access("list", "deployments", "apps"), Access("patch", "deployments", "apps"),
                    Access("patch", "deployments", "apps", "scale"),
                    Access("get", "deployments", "apps", "scale")),
    ("colocate", ""): (*_READ_PODS, Access("create", "jobs", "batch"),
                       Access("list", "jobs", "batch"), Access("delete", "jobs", "batch")),
    ("load-job", ""): (Access("create", "jobs", "batch"), Access("delete", "jobs", "batch"),
                       Access("list", "configmaps"), Access("get", "configmaps")),
}


def needs(fault_type: str, mode: str = "") -> tuple[Access, ...]:
    return NEEDS.get((fault_type, mode), NEEDS.get((fault_type, ""), ()))


def missing(cluster: ClusterApi, accesses: tuple[Access, ...],
            namespaces: tuple[str, ...]) -> list[str]:
    """One line per verb on resource the current identity may not use, e.g.
    'create on pods/eviction in namespace payments'."""
    problems = []
    for access in accesses:
        places = namespaces if access.namespaced else (None,)
        problems += [f"missing permission: {access.describe(ns)}" for ns in places
                     if not cluster.can_i(access, ns)]
    return problems
