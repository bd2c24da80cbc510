"""`chaoskit recover --cluster`: revert everything chaoskit marked on a cluster, journal or not."""

from __future__ import annotations

from dataclasses import dataclass, field

from chaoskit.platforms.kubernetes import nodeops, workloads
from chaoskit.platforms.kubernetes.cluster import (
    ISOLATED,
    MANAGED,
    REPLICAS,
    RUN,
    ClusterApi,
    PodScope,
)
from chaoskit.platforms.kubernetes.load_job import LOAD_JOB


@dataclass
class ClusterRecovery:
    """What was undone, and what is still left after undoing (empty `left`: clean)."""

    undone: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.left


def _ours(annotations: dict[str, str], run: str | None) -> bool:
    return RUN in annotations and (run is None or annotations[RUN] == run)


def recover(cluster: ClusterApi, namespaces: tuple[str, ...],
            run: str | None = None) -> ClusterRecovery:
    """Nodes (cordon, taint, marks), policies, pod labels, scaled Deployments, chaoskit Jobs;
    only `run`'s when given. Then look again for anything of ours still there."""
    result = ClusterRecovery()
    scope = PodScope(namespaces)
    nodes = [n.name for n in cluster.list_nodes() if _ours(n.annotations, run)]
    for node in nodes:
        result.undone += [f"node {node}: {u}" for u in nodes_undone(cluster, scope, node)]
    for namespace in namespaces:
        result.undone += _namespace(cluster, namespace, run)
    result.left = [r for node in nodes for r in nodeops.residue(cluster, scope, node)]
    result.left += [f"{o.kind} {o.namespace}/{o.name} remains" for ns in namespaces
                    for kind in ("NetworkPolicy", "Job")
                    for o in cluster.list_objects(kind, ns, f"{MANAGED}=true")
                    if _ours(o.annotations, run)]
    return result


def nodes_undone(cluster: ClusterApi, scope: PodScope, node: str) -> list[str]:
    return list(nodeops.restore(cluster, scope, node)["undone"]) or ["marks removed"]


def _namespace(cluster: ClusterApi, namespace: str, run: str | None) -> list[str]:
    undone = []
    for kind in ("NetworkPolicy", "Job"):
        for item in cluster.list_objects(kind, namespace, f"{MANAGED}=true"):
            if _ours(item.annotations, run):
                cluster.delete_object(kind, namespace, item.name)
                undone.append(f"deleted {kind} {namespace}/{item.name}")
    if run is None:  # load reports a dead runner never collected (pods do not know the run)
        for report in cluster.list_objects("ConfigMap", namespace, LOAD_JOB):
            cluster.delete_object("ConfigMap", namespace, report.name)
            undone.append(f"deleted load report {namespace}/{report.name}")
    for pod in cluster.list_pods(namespace, ISOLATED):
        if _ours(pod.annotations, run) or run is None:
            cluster.patch_pod(namespace, pod.name, {"metadata": {
                "labels": {ISOLATED: None}, "annotations": {RUN: None}}})
            undone.append(f"unlabelled pod {namespace}/{pod.name}")
    for item in cluster.list_objects("Deployment", namespace):
        if REPLICAS in item.annotations and _ours(item.annotations, run):
            facts = workloads.scale_back(cluster, namespace, item.name)
            undone.append(f"scaled Deployment {namespace}/{item.name} back to "
                          f"{facts['restored']}")
    return undone


def recover_command(namespaces: list[str], context: str | None, run: str | None) -> int:
    """`chaoskit recover --cluster`: print what was undone and what is left; exit 0 when clean."""
    from chaoskit.platforms.kubernetes.kube import KubeCluster, api_client

    api = api_client(None, context)
    names = tuple(namespaces) or (context_namespace(context),)
    with api:
        result = recover(KubeCluster(api), names, run)
    for line in result.undone:
        print(f"undone: {line}")
    for line in result.left:
        print(f"still there: {line}")
    which = f"run {run}" if run else "any run"
    print(f"cluster ({', '.join(names)}): " + (f"nothing of {which} is left" if result.clean
                                                else "some changes could not be undone"))
    return 0 if result.clean else 4


def context_namespace(context: str | None) -> str:
    """The namespace of the kubeconfig context (what kubectl would use), else `default`."""
    from kubernetes import config

    try:
        contexts, active = config.list_kube_config_contexts()
    except (config.ConfigException, OSError):
        return "default"
    chosen = next((c for c in contexts if c["name"] == context), active) if context else active
    return str((chosen or {}).get("context", {}).get("namespace") or "default")
