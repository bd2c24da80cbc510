"""ClusterApi on the official `kubernetes` client (blocking; callers run it in a thread)."""

from __future__ import annotations

import os
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from chaoskit.errors import PlatformError
from chaoskit.platforms.kubernetes.cluster import (
    Access,
    EvictionRefused,
    NodeView,
    ObjectView,
    PodView,
)


def api_client(kubeconfig: str | None, context: str | None) -> client.ApiClient:
    """The user's kubeconfig/context; in a pod without one, the in-cluster service account."""
    try:
        if kubeconfig is None and context is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            configuration = client.Configuration()
            config.load_incluster_config(client_configuration=configuration)
            return client.ApiClient(configuration)
        # KUBECONFIG read now: the client reads it once at import, before a caller may set it
        files = kubeconfig or os.environ.get("KUBECONFIG") or None
        return config.new_client_from_config(config_file=files, context=context)
    except (config.ConfigException, OSError) as exc:
        raise PlatformError(f"cannot load Kubernetes credentials: {exc}",
                            hint="set target.kubeconfig/context, or KUBECONFIG, or run in a pod "
                                 "with a service account") from exc


def _node(item: Any) -> NodeView:
    addresses = {a.type: a.address for a in (item.status.addresses or [])}
    ready = any(c.type == "Ready" and c.status == "True" for c in item.status.conditions or [])
    taints = tuple({"key": t.key, "value": t.value or "", "effect": t.effect}
                   for t in item.spec.taints or [])
    return NodeView(item.metadata.name, addresses.get("InternalIP", ""),
                    dict(item.metadata.labels or {}), dict(item.metadata.annotations or {}),
                    bool(item.spec.unschedulable), taints, ready)


def _pod(item: Any) -> PodView:
    owners = item.metadata.owner_references or []
    return PodView(item.metadata.name, item.metadata.namespace, item.spec.node_name or "",
                   dict(item.metadata.labels or {}), dict(item.metadata.annotations or {}),
                   item.status.phase or "", owners[0].kind if owners else "",
                   item.metadata.deletion_timestamp is not None)


def _object(kind: str, item: Any) -> ObjectView:
    spec, status = getattr(item, "spec", None), getattr(item, "status", None)
    workload = kind in ("Deployment", "StatefulSet")
    ready = (getattr(status, "ready_replicas", None) or 0) if workload else None
    data = dict(getattr(item, "data", None) or {})
    if kind == "Lease":  # who holds it: what a role finder asks
        data = {"holder": getattr(spec, "holder_identity", None) or ""}
    return ObjectView(kind, item.metadata.name, item.metadata.namespace,
                      dict(item.metadata.labels or {}), dict(item.metadata.annotations or {}),
                      getattr(spec, "replicas", None), ready, data, item.metadata.uid or "")


class KubeCluster:
    """The calls chaoskit makes, nothing else; 404 on delete counts as done (idempotent)."""

    def __init__(self, api: client.ApiClient) -> None:
        # Any: we pass plain dicts as bodies, which the client accepts but its stubs do not say
        self.api = api
        self.core: Any = client.CoreV1Api(api)
        self.apps: Any = client.AppsV1Api(api)
        self.batch: Any = client.BatchV1Api(api)
        self.net: Any = client.NetworkingV1Api(api)
        self.authz: Any = client.AuthorizationV1Api(api)
        self.coordination: Any = client.CoordinationV1Api(api)

    def list_nodes(self) -> list[NodeView]:
        return [_node(n) for n in self.core.list_node().items]

    def patch_node(self, name: str, body: dict[str, Any]) -> None:
        self.core.patch_node(name, body)

    def list_pods(self, namespace: str, selector: str = "", node: str = "") -> list[PodView]:
        fields = f"spec.nodeName={node}" if node else ""
        items = self.core.list_namespaced_pod(namespace, label_selector=selector,
                                              field_selector=fields).items
        return [_pod(p) for p in items]

    def delete_pod(self, namespace: str, name: str, grace: int = 0) -> None:
        _gone_ok(self.core.delete_namespaced_pod, name, namespace, grace_period_seconds=grace)

    def evict_pod(self, namespace: str, name: str) -> None:
        body = client.V1Eviction(metadata=client.V1ObjectMeta(name=name, namespace=namespace))
        try:
            self.core.create_namespaced_pod_eviction(name, namespace, body)
        except ApiException as exc:
            if exc.status == 404:
                return
            if exc.status in (429, 500):  # 500: several budgets match; both mean "not now"
                raise EvictionRefused(exc.status, _reason(exc)) from exc
            raise

    def patch_pod(self, namespace: str, name: str, body: dict[str, Any]) -> None:
        _gone_ok(self.core.patch_namespaced_pod, name, namespace, body)

    def _verbs(self, kind: str) -> tuple[Any, str]:
        apis = {"NetworkPolicy": (self.net, "network_policy"), "Job": (self.batch, "job"),
                "CronJob": (self.batch, "cron_job"),
                "Deployment": (self.apps, "deployment"),
                "StatefulSet": (self.apps, "stateful_set"), "ConfigMap": (self.core, "config_map"),
                "Lease": (self.coordination, "lease")}
        if kind not in apis:
            raise PlatformError(f"chaoskit does not manage {kind} objects",
                                hint="a bug: report it")
        return apis[kind]

    def list_objects(self, kind: str, namespace: str, selector: str = "") -> list[ObjectView]:
        api, noun = self._verbs(kind)
        items = getattr(api, f"list_namespaced_{noun}")(namespace, label_selector=selector).items
        return [_object(kind, i) for i in items]

    def create_object(self, kind: str, namespace: str, body: dict[str, Any]) -> None:
        api, noun = self._verbs(kind)
        getattr(api, f"create_namespaced_{noun}")(namespace, body)

    def delete_object(self, kind: str, namespace: str, name: str) -> None:
        api, noun = self._verbs(kind)
        _gone_ok(getattr(api, f"delete_namespaced_{noun}"), name, namespace,
                 propagation_policy="Background")

    def patch_object(self, kind: str, namespace: str, name: str, body: dict[str, Any]) -> None:
        api, noun = self._verbs(kind)
        _gone_ok(getattr(api, f"patch_namespaced_{noun}"), name, namespace, body)

    def replace_object(self, kind: str, namespace: str, name: str,
                       body: dict[str, Any]) -> None:
        """The whole object replaced (an unconditional update: no resourceVersion needed)."""
        api, noun = self._verbs(kind)
        getattr(api, f"replace_namespaced_{noun}")(name, namespace, body)

    def scale_deployment(self, namespace: str, name: str, replicas: int) -> int:
        before = self.apps.read_namespaced_deployment_scale(name, namespace).spec.replicas
        self.apps.patch_namespaced_deployment_scale(name, namespace,
                                                    {"spec": {"replicas": replicas}})
        return int(before or 0)

    def can_i(self, access: Access, namespace: str | None) -> bool:
        attributes = {"verb": access.verb, "resource": access.resource, "group": access.group,
                      "subresource": access.subresource,
                      "namespace": namespace if access.namespaced else None}
        review = self.authz.create_self_subject_access_review(
            {"spec": {"resourceAttributes": attributes}})
        return bool(review.status.allowed)

    def service_address(self, namespace: str, name: str, port: str) -> str | None:
        try:
            service = self.core.read_namespaced_service(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        ports = {p.name: p.port for p in service.spec.ports or []}
        if port not in ports or not service.spec.cluster_ip:
            return None
        return f"{service.spec.cluster_ip}:{ports[port]}"


def _gone_ok(call: Any, *args: Any, **kwargs: Any) -> None:
    try:
        call(*args, **kwargs)
    except ApiException as exc:
        if exc.status != 404:
            raise


def _reason(exc: ApiException) -> str:
    import json

    try:
        return str(json.loads(exc.body or "{}").get("message") or exc.reason)
    except ValueError:
        return str(exc.reason)
