"""KubernetesPlatform: what fault drivers, probes and the engine may ask of a cluster."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
from typing import Any

from pydantic import Field

from chaoskit.errors import PlatformError
from chaoskit.load.plan import LoadPlan
from chaoskit.platforms.abilities import NodeInfo, OfflineProcess, PlatformConfig
from chaoskit.platforms.kubernetes import load_job, nodeops, permissions, workloads
from chaoskit.platforms.kubernetes.cluster import ClusterApi, PodScope, PodView
from chaoskit.spec import scope as scope_rules

APP = "app.kubernetes.io/name"
CAPACITY_UNIT = "chaoskit.io/capacity-unit"
STOP_TIMEOUT = 30.0  # seconds stop_offline waits for the Jobs' pods to be gone
_NODE_OPS = {"kill": nodeops.kill, "drain": nodeops.drain, "node-down": nodeops.node_down,
             "isolate": nodeops.isolate}


class KubernetesConfig(PlatformConfig):
    kubeconfig: str | None = Field(default=None, description="default: $KUBECONFIG, ~/.kube")
    context: str | None = Field(default=None, description="default: the current context")
    namespace: str | None = Field(default=None, description="the stack's namespace")


class KubernetesPlatform:
    """A cluster seen through one identity, limited to the experiment's namespaces, selectors
    and nodes. Blocking API calls happen in the sync methods; drivers call them in a thread."""

    name = "kubernetes"
    Config = KubernetesConfig

    def __init__(self, *, kubeconfig: str | None = None, context: str | None = None,
                 namespace: str | None = None, scope: dict[str, Any] | None = None,
                 toxiproxy: str | None = None, database: str | None = None,
                 entry: str | None = None, run: str | None = None,
                 cluster: ClusterApi | None = None,
                 proxies: list[dict[str, str]] | None = None) -> None:
        scope = scope or {}
        self.kubeconfig, self.context = kubeconfig, context
        self.namespace = namespace or "default"
        self.scope = PodScope.of(list(scope.get("namespaces") or [self.namespace]),
                                 dict(scope.get("selectors") or {}))
        nodes = scope.get("nodes") or []
        self.scope_nodes = [nodes] if isinstance(nodes, str) else list(nodes)
        self._toxiproxy, self._database, self._entry = toxiproxy, database, entry
        self._declared = list(proxies or [])
        self.run = run or f"chaoskit-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
        self._cluster = cluster

    @classmethod
    def from_target(cls, target: Any) -> KubernetesPlatform:
        config = KubernetesConfig.model_validate(target.options())
        return cls(kubeconfig=config.kubeconfig, context=config.context,
                   namespace=config.namespace, scope=target.scope.model_dump(),
                   toxiproxy=target.toxiproxy, database=target.database, entry=target.entry,
                   proxies=[p.model_dump() for p in target.proxies])

    @classmethod
    def from_description(cls, desc: dict[str, Any]) -> KubernetesPlatform:
        return cls(kubeconfig=desc.get("kubeconfig"), context=desc.get("context"),
                   namespace=desc.get("namespace"), scope=desc.get("scope"),
                   toxiproxy=desc.get("toxiproxy"), database=desc.get("database"),
                   entry=desc.get("entry"), run=desc.get("run"),
                   proxies=desc.get("proxies"))

    def describe(self) -> dict[str, Any]:
        return {"platform": "kubernetes", "kubeconfig": self.kubeconfig, "context": self.context,
                "namespace": self.namespace, "toxiproxy": self._toxiproxy,
                "database": self._database, "entry": self._entry, "run": self.run,
                "proxies": self._declared,
                "scope": {"namespaces": list(self.scope.namespaces),
                          "selectors": dict(_pairs(self.scope.selector)),
                          "nodes": self.scope_nodes}}

    def identity(self) -> str:
        return f"kubernetes:{self.kubeconfig or '~'}:{self.context or '-'}:{self.namespace}"

    def bind_run(self, run_id: str) -> None:
        """Mark changes with the engine's run id (call before anything is injected)."""
        self.run = run_id

    @property
    def cluster(self) -> ClusterApi:
        if self._cluster is None:
            from chaoskit.platforms.kubernetes.kube import KubeCluster, api_client

            self._cluster = KubeCluster(api_client(self.kubeconfig, self.context))
        return self._cluster

    # -- addresses -------------------------------------------------------------------------
    def toxiproxy_url(self) -> str:
        """An explicit URL (a port forward) wins; else the in-cluster `toxiproxy` Service."""
        if self._toxiproxy:
            return self._toxiproxy
        address = self._in_cluster_service("toxiproxy", "api", "target.toxiproxy")
        if address is None:
            raise PlatformError(f"no toxiproxy Service with an `api` port in {self.namespace}",
                                hint="apply k8s/ or set target.toxiproxy to a port-forward URL")
        return f"http://{address}"

    def declared_proxies(self) -> list[dict[str, str]]:
        """Proxies the experiment declares (created in the cluster's Toxiproxy if missing)."""
        return list(self._declared)

    def database_url(self) -> str:
        if not self._database:
            raise PlatformError("the kubernetes platform has no ledger database URL",
                                hint="set target.database (e.g. through a port forward)")
        return self._database

    def entry_url(self) -> str:
        if self._entry:
            return self._entry
        address = self._in_cluster_service("gateway", "http", "target.entry")
        if address is None:
            raise PlatformError("no gateway Service", hint="set target.entry")
        return f"http://{address}"

    def _in_cluster_service(self, service: str, port: str, field: str) -> str | None:
        """A Service's cluster address, only from inside the cluster: from outside a cluster
        IP is not routable, so the user gives a port-forward URL in `field` instead."""
        if not os.environ.get("KUBERNETES_SERVICE_HOST"):
            raise PlatformError(f"the {service} Service is only reachable inside the cluster",
                                hint=f"port-forward it (kubectl -n {self.namespace} "
                                     f"port-forward svc/{service} ...) and set {field}")
        return self.cluster.service_address(self.namespace, service, port)

    def metrics_targets(self, exclude_node: str | None = None) -> dict[str, str]:
        """None: on a cluster the stack's metrics are read through its Prometheus (the
        `prometheus` probe); pod addresses are not reachable from an outside runner."""
        del exclude_node
        return {}

    # -- nodes -----------------------------------------------------------------------------
    def nodes(self) -> list[NodeInfo]:
        roles: dict[str, set[str]] = {}
        for namespace in self.scope.namespaces:
            for pod in self.cluster.list_pods(namespace, self.scope.selector):
                if pod.node and APP in pod.labels:
                    roles.setdefault(pod.node, set()).add(pod.labels[APP])
        found = [NodeInfo(n.name, n.address, tuple(sorted(roles.get(n.name, ()))), n.labels)
                 for n in self.cluster.list_nodes()
                 if not self.scope_nodes or scope_rules.admits(self.scope_nodes, n.name)]
        # capacity units a scale fault added count as nodes (the scale driver finds them
        # here to give them back); node operations on them are refused: they are replicas
        return found + [NodeInfo(u, "", workloads.UNIT, {CAPACITY_UNIT: "true"})
                        for u in self._units()]

    def _units(self) -> list[str]:
        try:
            return workloads.units(self.cluster, self.namespace)
        except Exception:  # noqa: BLE001 - no stack here, or no right to read it: no units
            return []

    def nodes_of_pods(self, selector: str) -> list[str]:
        return [p.node for p in self._running(selector)]

    def node_of_pod(self, pod: str) -> str:
        found = [p for ns in self.scope.namespaces for p in self.cluster.list_pods(ns)
                 if p.name == pod and p.node]
        if not found:
            raise PlatformError(f"no placed pod '{pod}' in {self.scope.namespaces}",
                                hint="check the role's finder returns a pod name")
        return found[0].node

    def lease_holder_node(self, namespace: str, name: str) -> str:
        leases = [o for o in self.cluster.list_objects("Lease", namespace) if o.name == name]
        holder = leases[0].data.get("holder") if leases else None
        pods = [p for p in self.cluster.list_pods(namespace) if p.name == holder and p.node]
        if not pods:
            raise PlatformError(f"no running pod holds the Lease {namespace}/{name} "
                                f"(holder: {holder or 'none'})",
                                hint="check the Lease exists and its holder is a pod name")
        return pods[0].node

    def _running(self, selector: str) -> list[PodView]:
        """Running, placed, not terminating pods in scope matching `selector`, by name."""
        pods = [p for ns in self.scope.namespaces for p in self.cluster.list_pods(ns, selector)
                if p.phase == "Running" and p.node and not p.deleting]
        return sorted(pods, key=lambda p: p.name)

    def node_loss_modes(self) -> dict[str, str | None]:
        return {mode: None for mode in _NODE_OPS}

    def lose_node(self, node: str, mode: str) -> dict[str, Any]:
        if mode not in _NODE_OPS:
            raise PlatformError(f"the kubernetes platform cannot {mode} a node",
                                hint=f"use one of {', '.join(_NODE_OPS)}")
        if mode == "kill":
            return dict(nodeops.kill(self.cluster, self.scope, node))
        operation = _NODE_OPS[mode]
        return dict(operation(self.cluster, self.scope, node, self.run))  # type: ignore[operator]

    def restore_node(self, node: str, mode: str) -> dict[str, Any]:
        """Every mode's undo is the same idempotent restore (uncordon, untaint, unlabel)."""
        del mode
        return dict(nodeops.restore(self.cluster, self.scope, node))

    def node_residue(self, node: str) -> list[str]:
        return nodeops.residue(self.cluster, self.scope, node)

    async def watch_recovery(self, node: str, mode: str, timeout: float) -> dict[str, Any]:
        """Seconds until every workload in scope is fully ready again (and, for node-down, none
        of its pods is left on the node): the cluster's own healing after a node loss."""
        started = time.monotonic()
        short = await asyncio.to_thread(self._short_of, node, mode)
        while short and time.monotonic() - started < timeout:
            await asyncio.sleep(0.25)
            short = await asyncio.to_thread(self._short_of, node, mode)
        elapsed = round(time.monotonic() - started, 3)
        return {"recovered": not short, "recovery_s": None if short else elapsed,
                "waiting_for": short}

    def _short_of(self, node: str, mode: str) -> list[str]:
        short = [f"{w.kind} {w.namespace}/{w.name}: {w.ready}/{w.replicas} ready"
                 for ns in self.scope.namespaces for kind in ("Deployment", "StatefulSet")
                 for w in self.cluster.list_objects(kind, ns, self.scope.selector)
                 if (w.ready or 0) < (w.replicas or 0)]
        if mode == "node-down":
            left = nodeops.pods_on(self.cluster, self.scope, node)
            short += [f"{len(left)} pods still on {node}"] if left else []
        return short

    def missing_access(self, fault_type: str, mode: str = "") -> list[str]:
        """Verbs on resources this identity lacks for a fault (SelfSubjectAccessReview)."""
        return permissions.missing(self.cluster, permissions.needs(fault_type, mode),
                                   self.scope.namespaces)

    # -- capacity (the `scale` driver's abilities; +N only) --------------------------------
    def next_node_names(self, count: int) -> list[str]:
        """Capacity units are named capacity-1, capacity-2, ... (the next free ones)."""
        taken = set(workloads.units(self.cluster, self.namespace))
        free = (f"capacity-{k}" for k in range(1, 1000) if f"capacity-{k}" not in taken)
        return [next(free) for _ in range(count)]

    def add_node(self, name: str | None = None) -> str:
        """One more replica of each unit Deployment (gateway, worker), marked on them."""
        unit = name or self.next_node_names(1)[0]
        present = workloads.units(self.cluster, self.namespace)
        workloads.set_units(self.cluster, self.namespace, [*present, unit], self.run)
        return unit

    def remove_node(self, name: str) -> None:
        present = workloads.units(self.cluster, self.namespace)
        workloads.set_units(self.cluster, self.namespace, [u for u in present if u != name],
                            self.run)

    def drain_gateway(self, name: str, timeout: float) -> float:
        """Nothing to do first: a removed replica leaves its Service's endpoints as it starts
        terminating and gets its grace period for the requests in flight."""
        del name, timeout
        return 0.0

    def entry_states(self) -> dict[str, str]:
        return workloads.unit_states(self.cluster, self.namespace)

    def departed_residue(self, name: str) -> list[str]:
        return workloads.unit_residue(self.cluster, self.namespace, name)

    # -- co-location (the `colocate` driver's abilities) -----------------------------------
    def start_offline(self, node: str, tag: str, work: Any) -> str:
        nodeops.find_node(self.cluster, node)  # a capacity unit or a typo: refuse, not Pending
        job = workloads.offline_job(node, tag, work, self.run)
        self.cluster.create_object("Job", self.namespace, job)
        return str(job["metadata"]["name"])

    def offline_processes(self, tag: str) -> list[OfflineProcess]:
        """The pods of the fault's Jobs; metrics are not scraped from outside the cluster."""
        pods = self.cluster.list_pods(self.namespace, f"{workloads.COLOCATED}={tag}")
        return [OfflineProcess(p.name, p.node, p.labels.get("chaoskit.io/work", ""),
                               p.phase in ("Pending", "Running") and not p.deleting, "", None)
                for p in pods]

    def stop_offline(self, tag: str) -> list[str]:
        """Delete the Jobs, then wait (bounded) for their pods to be gone."""
        selector = f"{workloads.COLOCATED}={tag}"
        jobs = [j.name for j in self.cluster.list_objects("Job", self.namespace, selector)]
        for name in jobs:
            self.cluster.delete_object("Job", self.namespace, name)
        deadline = time.monotonic() + STOP_TIMEOUT
        while self.cluster.list_pods(self.namespace, selector) and time.monotonic() < deadline:
            time.sleep(0.25)
        return jobs

    def offline_residue(self, tag: str) -> list[str]:
        selector = f"{workloads.COLOCATED}={tag}"
        found = [f"Job {self.namespace}/{j.name} remains"
                 for j in self.cluster.list_objects("Job", self.namespace, selector)]
        return found + [f"pod {self.namespace}/{p.name} remains"
                        for p in self.cluster.list_pods(self.namespace, selector)]

    def offline_isolation(self) -> str:
        return f"PriorityClass {workloads.OFFLINE_CLASS} and a 50m CPU request"

    def process_cpu_seconds(self, process_id: str) -> float:
        raise PlatformError(f"the kubernetes platform cannot read the CPU time of {process_id}",
                            hint="read container_cpu_usage_seconds_total with a prometheus "
                                 "probe against the cluster's Prometheus")

    # -- load from many machines ----------------------------------------------------------
    def start_load_job(self, plan: LoadPlan, *, pods: int, start_at: float,
                       image: str = workloads.IMAGE, name: str | None = None) -> str:
        """Create the load Indexed Job (pods start sending at wall-clock `start_at`)."""
        name = name or f"chaoskit-load-{secrets.token_hex(3)}"
        job = load_job.load_job(plan, name=name, pods=pods, image=image, run=self.run,
                                start_at=start_at)
        self.cluster.create_object("Job", self.namespace, job)
        return name

    def collect_load(self, job: str, pods: int, timeout: float) -> dict[str, Any]:
        """Wait for the pods' report ConfigMaps, merge them, then remove Job and reports.
        `missing` lists the indexes that did not report in time."""
        deadline = time.monotonic() + timeout
        reports = self._load_reports(job)
        while len(reports) < pods and time.monotonic() < deadline:
            time.sleep(0.5)
            reports = self._load_reports(job)
        merged = load_job.merge_reports(list(reports.values()))
        merged["missing"] = sorted(set(range(pods)) - set(reports))
        self.cluster.delete_object("Job", self.namespace, job)
        for index in reports:
            self.cluster.delete_object("ConfigMap", self.namespace, f"{job}-{index}")
        return merged

    def load_reports_ready(self, job: str) -> int:
        """How many pods of the load Job have reported so far."""
        return len(self._load_reports(job))

    def stop_load_job(self, job: str) -> None:
        """Abort: remove the Job (its pods stop) and whatever reports it left."""
        self.cluster.delete_object("Job", self.namespace, job)
        for index in self._load_reports(job):
            self.cluster.delete_object("ConfigMap", self.namespace, f"{job}-{index}")

    def _load_reports(self, job: str) -> dict[int, dict[str, Any]]:
        maps = self.cluster.list_objects("ConfigMap", self.namespace, f"{load_job.LOAD_JOB}={job}")
        reports = [json.loads(m.data[load_job.REPORT_KEY]) for m in maps
                   if load_job.REPORT_KEY in m.data]
        return {int(r["index"]): r for r in reports}

    # -- preflight -------------------------------------------------------------------------
    async def preflight(self) -> list[str]:
        return await asyncio.to_thread(self._preflight)

    def _preflight(self) -> list[str]:
        """Reachable, the scope's namespaces readable and not empty, its nodes existing."""
        try:
            problems = permissions.missing(self.cluster, permissions.needs("node-loss", "kill")[:1],
                                           self.scope.namespaces)
            names = {n.name for n in self.cluster.list_nodes()}
        except Exception as exc:  # noqa: BLE001 - any failure to talk is the finding
            return [f"cannot reach the cluster: {exc}"]
        problems += [f"scope node {n} is not on the cluster" for n in self.scope_nodes
                     if n != "any" and not any(c in n for c in "*?[")
                     if n not in names]
        for namespace in self.scope.namespaces:
            if not problems and not self.cluster.list_pods(namespace, self.scope.selector):
                problems.append(f"no pods match '{self.scope.selector}' in namespace "
                                f"{namespace}: the scope selects nothing")
        return problems


def _pairs(selector: str) -> list[tuple[str, str]]:
    return [tuple(part.split("=", 1)) for part in selector.split(",") if "=" in part]  # type: ignore[misc]
