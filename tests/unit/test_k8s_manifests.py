"""The k8s/ manifests: valid Kubernetes objects (strict OpenAPI) that match the stack's own code."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes
import kubernetes_validate
import pytest

from chaoskit.stack.config import StackConfig
from tests.fixtures.control_plane import kustomize_build

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
LAYOUTS = ["base", "overlays/lab"]
STACK_IMAGE = "chaoskit/payment-stack:0.1.0"
CONTRACT_SERVICES = {"gateway", "worker", "scheduler", "bank", "offline"}
ONLINE = "payments-online"
OFFLINE = "payments-offline"
Doc = dict[str, Any]


@pytest.fixture(scope="module", params=LAYOUTS)
def docs(request: pytest.FixtureRequest) -> list[Doc]:
    return kustomize_build(K8S / request.param)


def schema_version() -> str:
    """The Kubernetes minor the Python client speaks (client 37 -> 1.37) if the validator has it."""
    wanted = f"1.{kubernetes.__version__.split('.')[0]}"
    known = [v for v in kubernetes_validate.utils.all_versions() if v.startswith(wanted + ".")]
    return known[-1] if known else kubernetes_validate.latest_version()


def find(docs: list[Doc], kind: str, name: str) -> Doc:
    hits = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(hits) == 1, f"expected one {kind}/{name}, found {len(hits)}"
    return hits[0]


def pod_templates(docs: list[Doc]) -> Iterator[tuple[Doc, Doc]]:
    """(workload, pod template) for every object that makes pods."""
    for doc in docs:
        if doc["kind"] in {"Deployment", "StatefulSet"}:
            yield doc, doc["spec"]["template"]
        elif doc["kind"] == "CronJob":
            yield doc, doc["spec"]["jobTemplate"]["spec"]["template"]


def stack_containers(docs: list[Doc]) -> Iterator[tuple[Doc, Doc, Doc]]:
    """(workload, pod template, container) for every container running the stack's image."""
    for workload, template in pod_templates(docs):
        for container in template["spec"]["containers"]:
            if container["image"] == STACK_IMAGE:
                yield workload, template, container


def stack_services() -> set[str]:
    """The SERVICE names `python -m chaoskit.stack SERVICE` accepts, read from the stack's code."""
    for path in sorted((ROOT / "chaoskit" / "stack").glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            names = _literal_strings(node, "SERVICES")
            if names:
                return names
    return CONTRACT_SERVICES


def _literal_strings(node: ast.stmt, target: str) -> set[str]:
    if not isinstance(node, ast.Assign | ast.AnnAssign):
        return set()
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    if not any(isinstance(t, ast.Name) and t.id == target for t in targets) or node.value is None:
        return set()
    value = node.value
    if isinstance(value, ast.Call) and value.args:  # frozenset({...})
        value = value.args[0]
    items = value.keys if isinstance(value, ast.Dict) else getattr(value, "elts", [])
    return {i.value for i in items if isinstance(i, ast.Constant) and isinstance(i.value, str)}


def stack_env_names() -> set[str]:
    """Every CHAOSKIT_* variable chaoskit/stack/config.py reads."""
    tree = ast.parse((ROOT / "chaoskit" / "stack" / "config.py").read_text())
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
            and isinstance(n.value, str) and re.fullmatch(r"CHAOSKIT_[A-Z_]+", n.value)}


def container_env(docs: list[Doc], template: Doc, container: Doc) -> dict[str, str]:
    """The environment the container will see, resolving ConfigMaps, Secrets and fieldRefs."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef") or source["secretRef"]
        kind = "ConfigMap" if "configMapRef" in source else "Secret"
        env.update(_data(find(docs, kind, ref["name"])))
    for var in container.get("env", []):
        env[var["name"]] = _env_value(docs, template, var)
    return env


def _data(doc: Doc) -> dict[str, str]:
    return {**doc.get("data", {}), **doc.get("stringData", {})}


def _env_value(docs: list[Doc], template: Doc, var: Doc) -> str:
    if "value" in var:
        return str(var["value"])
    source = var["valueFrom"]
    if "fieldRef" in source:  # resolved by the kubelet; any pod gives a name and a node
        fields = {"spec.nodeName": "node-1", "metadata.name": "pod-1"}
        return fields[source["fieldRef"]["fieldPath"]]
    kind, ref = ("Secret", source["secretKeyRef"]) if "secretKeyRef" in source else (
        "ConfigMap", source["configMapKeyRef"])
    return _data(find(docs, kind, ref["name"]))[ref["key"]]


def container_port(container: Doc, name: str) -> int:
    ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
    assert name in ports, f"container {container['name']} has no port named {name}"
    return int(ports[name])


def toxiproxy_proxies(docs: list[Doc]) -> dict[str, Doc]:
    import json

    config = find(docs, "ConfigMap", "toxiproxy-config")["data"]["toxiproxy.json"]
    return {proxy["name"]: proxy for proxy in json.loads(config)}


def service_port(docs: list[Doc], host: str, port: int) -> Doc:
    """The Service `host` (short name) and its port `port`; fails when either is missing."""
    service = find(docs, "Service", host)
    ports = [p for p in service["spec"]["ports"] if p["port"] == port]
    assert ports, f"Service {host} has no port {port}"
    return ports[0]


# -- schema ------------------------------------------------------------------------------------


def test_every_manifest_is_valid_against_the_kubernetes_openapi_schema(docs: list[Doc]) -> None:
    version = schema_version()
    assert version.startswith(f"1.{kubernetes.__version__.split('.')[0]}.")
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_validator_is_strict_about_unknown_fields(docs: list[Doc]) -> None:
    broken = {**find(docs, "Deployment", "gateway")}
    broken["spec"] = {**broken["spec"], "replica": 2}  # a typo the API server would drop silently
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, schema_version(), strict=True)


# -- consistency with the stack's code ---------------------------------------------------------


def test_every_stack_service_runs_from_the_one_image_and_nothing_else(docs: list[Doc]) -> None:
    services = stack_services()
    run = {container["args"][0] for _, _, container in stack_containers(docs)}
    assert run == services
    for _, _, container in stack_containers(docs):
        assert "command" not in container, "the image's ENTRYPOINT must pick the module"
        assert container["args"] == [container["args"][0]]


def test_images_are_the_pinned_ones(docs: list[Doc]) -> None:
    images = {c["image"] for _, t in pod_templates(docs) for c in t["spec"]["containers"]}
    assert images == {STACK_IMAGE, "postgres:16", "ghcr.io/shopify/toxiproxy:2.12.0"}


def test_environment_names_are_ones_the_stack_config_reads(docs: list[Doc]) -> None:
    known = stack_env_names()
    assert {"CHAOSKIT_DATABASE_URL", "CHAOSKIT_BANK_URLS", "CHAOSKIT_LISTEN"} <= known
    for workload, template, container in stack_containers(docs):
        names = set(container_env(docs, template, container))
        assert names <= known, f"{workload['metadata']['name']}: unknown {names - known}"


def test_the_stack_config_accepts_every_containers_environment(docs: list[Doc]) -> None:
    for _, template, container in stack_containers(docs):
        config = StackConfig.from_env(container_env(docs, template, container))
        assert config.listen_address == ("0.0.0.0", container_port(container, "http"))
        assert config.node == "node-1" and config.instance == "pod-1"


def test_the_database_is_reached_through_the_toxiproxy_postgres_proxy(docs: list[Doc]) -> None:
    proxies = toxiproxy_proxies(docs)
    for _, template, container in stack_containers(docs):
        url = urlsplit(container_env(docs, template, container)["CHAOSKIT_DATABASE_URL"])
        assert url.scheme == "postgresql" and url.hostname == "toxiproxy"
        assert url.port == int(proxies["postgres"]["listen"].rsplit(":", 1)[1])
        service_port(docs, "toxiproxy", url.port)


def test_each_bank_is_reached_through_its_own_toxiproxy_proxy(docs: list[Doc]) -> None:
    proxies = toxiproxy_proxies(docs)
    for _, template, container in stack_containers(docs):
        raw = container_env(docs, template, container)["CHAOSKIT_BANK_URLS"]
        banks = dict(item.split("=", 1) for item in raw.split(","))
        assert set(banks) == {"alpha", "beta", "gamma"}
        for bank, url in banks.items():
            parts = urlsplit(url)
            assert parts.hostname == "toxiproxy"
            assert parts.port == int(proxies[f"bank-{bank}"]["listen"].rsplit(":", 1)[1])
            service_port(docs, "toxiproxy", parts.port)


def test_toxiproxy_serves_exactly_the_lab_proxies_with_real_upstreams(docs: list[Doc]) -> None:
    proxies = toxiproxy_proxies(docs)
    assert set(proxies) == {"postgres", "bank-alpha", "bank-beta", "bank-gamma"}
    toxiproxy = find(docs, "Deployment", "toxiproxy")["spec"]["template"]["spec"]["containers"][0]
    listening = {p["containerPort"] for p in toxiproxy["ports"]}
    for proxy in proxies.values():
        assert int(proxy["listen"].rsplit(":", 1)[1]) in listening
        host, port = proxy["upstream"].rsplit(":", 1)
        service_port(docs, host, int(port))
    assert "-config=/config/toxiproxy.json" in toxiproxy["args"]


def test_metrics_annotations_point_at_the_serving_port(docs: list[Doc]) -> None:
    for workload, template, container in stack_containers(docs):
        notes = template["metadata"]["annotations"]
        assert notes["prometheus.io/scrape"] == "true", workload["metadata"]["name"]
        assert notes["prometheus.io/path"] == "/metrics"
        assert int(notes["prometheus.io/port"]) == container_port(container, "http")


def test_health_probes_use_the_stacks_healthz(docs: list[Doc]) -> None:
    for workload, _, container in stack_containers(docs):
        if workload["kind"] == "CronJob":
            continue  # a batch has no Service to be taken out of
        assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}


# -- scheduling policy -------------------------------------------------------------------------


def test_priority_classes_referenced_exist_and_online_outranks_offline(docs: list[Doc]) -> None:
    classes = {d["metadata"]["name"]: d for d in docs if d["kind"] == "PriorityClass"}
    used = {t["spec"].get("priorityClassName") for _, t in pod_templates(docs)}
    assert used <= set(classes) and None not in used
    assert classes[ONLINE]["value"] > classes[OFFLINE]["value"]
    assert classes[OFFLINE]["preemptionPolicy"] == "Never"


def test_offline_runs_low_and_everything_else_high(docs: list[Doc]) -> None:
    for workload, template in pod_templates(docs):
        offline = workload["kind"] == "CronJob"
        assert template["spec"]["priorityClassName"] == (OFFLINE if offline else ONLINE)
    cronjob = find(docs, "CronJob", "offline-batch")
    args = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args == ["offline"]


def test_requests_and_limits_express_the_colocation_policy(docs: list[Doc]) -> None:
    online_cpu: list[float] = []
    offline_cpu: list[float] = []
    for workload, template in pod_templates(docs):
        for container in template["spec"]["containers"]:
            resources = container["resources"]
            if workload["kind"] == "CronJob":  # Burstable: small weight, may use idle CPU
                offline_cpu.append(cpu(resources["requests"]["cpu"]))
                assert cpu(resources["limits"]["cpu"]) > cpu(resources["requests"]["cpu"])
            else:  # Guaranteed QoS: last to be evicted, predictable CPU at the peak
                assert resources["requests"] == resources["limits"], workload["metadata"]["name"]
                online_cpu.append(cpu(resources["requests"]["cpu"]))
    assert offline_cpu and max(offline_cpu) * 2 <= min(online_cpu)


def cpu(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def test_replicas_survive_one_node_loss(docs: list[Doc]) -> None:
    for name in ("gateway", "worker", "bank"):
        assert find(docs, "Deployment", name)["spec"]["replicas"] >= 2
    scheduler = find(docs, "Deployment", "scheduler")
    assert scheduler["spec"]["replicas"] == 2  # the leader and its standby
    spread = scheduler["spec"]["template"]["spec"]["topologySpreadConstraints"][0]
    assert spread["whenUnsatisfiable"] == "DoNotSchedule"
    assert spread["topologyKey"] == "kubernetes.io/hostname"


# -- wiring ------------------------------------------------------------------------------------


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def test_every_service_selects_pods_that_have_its_target_ports(docs: list[Doc]) -> None:
    for service in (d for d in docs if d["kind"] == "Service"):
        matched = [t for _, t in pod_templates(docs)
                   if selects(service["spec"]["selector"], t["metadata"]["labels"])]
        assert matched, f"Service {service['metadata']['name']} selects no pods"
        for port in service["spec"]["ports"]:
            for template in matched:
                container_port(template["spec"]["containers"][0], port["targetPort"])


def test_every_disruption_budget_guards_a_workload(docs: list[Doc]) -> None:
    budgets = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    guarded = set()
    for budget in budgets:
        labels = budget["spec"]["selector"]["matchLabels"]
        hits = [w for w, t in pod_templates(docs) if selects(labels, t["metadata"]["labels"])]
        assert len(hits) == 1, budget["metadata"]["name"]
        guarded.add(hits[0]["metadata"]["name"])
    assert {"gateway", "worker", "bank", "scheduler", "postgres"} <= guarded


def test_namespaced_objects_live_in_payments(docs: list[Doc]) -> None:
    cluster_scoped = {"Namespace", "PriorityClass", "ClusterRole", "ClusterRoleBinding"}
    for doc in docs:
        expected = None if doc["kind"] in cluster_scoped else "payments"
        assert doc["metadata"].get("namespace") == expected, doc["metadata"]["name"]
    assert find(docs, "Namespace", "payments")


def test_stack_pods_mount_no_api_token(docs: list[Doc]) -> None:
    for _, template, _ in stack_containers(docs):
        assert template["spec"]["automountServiceAccountToken"] is False


# -- the runner's RBAC -------------------------------------------------------------------------

RUNNER_NEEDS = {  # (api group, resource) -> verbs the Kubernetes node-loss modes and faults use
    ("", "pods"): {"get", "list", "watch", "delete", "patch"},
    ("", "pods/eviction"): {"create"},
    ("", "configmaps"): {"get", "list", "create", "delete"},
    ("apps", "deployments"): {"get", "patch"},
    ("apps", "deployments/scale"): {"get", "patch", "update"},
    ("networking.k8s.io", "networkpolicies"): {"get", "list", "create", "delete"},
    ("batch", "jobs"): {"get", "list", "watch", "create", "delete"},
}


def granted(rules: list[Doc]) -> dict[tuple[str, str], set[str]]:
    grants: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                grants.setdefault((group, resource), set()).update(rule["verbs"])
    return grants


def test_the_runner_role_grants_what_experiments_need_and_no_wildcards(docs: list[Doc]) -> None:
    rules = find(docs, "Role", "chaoskit-runner")["rules"]
    grants = granted(rules)
    for key, verbs in RUNNER_NEEDS.items():
        assert verbs <= grants.get(key, set()), key
    flat = {item for rule in rules for field in ("apiGroups", "resources", "verbs")
            for item in rule[field]}
    assert "*" not in flat and "secrets" not in flat and "escalate" not in flat


def test_the_runner_has_only_node_patching_cluster_wide(docs: list[Doc]) -> None:
    role = find(docs, "ClusterRole", "chaoskit-runner-nodes")
    assert granted(role["rules"]) == {("", "nodes"): {"get", "list", "patch"}}
    for kind in ("RoleBinding", "ClusterRoleBinding"):
        binding = next(d for d in docs if d["kind"] == kind
                       and d["metadata"]["name"].startswith("chaoskit-runner"))
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "chaoskit-runner", "namespace": "payments"}]


# -- the image ---------------------------------------------------------------------------------


def containerfile() -> list[tuple[str, str]]:
    lines = (K8S / "Containerfile").read_text().splitlines()
    return [tuple(line.split(None, 1)) for line in lines  # type: ignore[misc]
            if line.strip() and not line.startswith((" ", "#"))]


def test_the_containerfile_builds_the_package_and_runs_the_stack_module() -> None:
    steps = containerfile()
    assert steps[0] == ("FROM", "python:3.11-slim-bookworm AS venv")
    entrypoint = '["/opt/chaoskit/bin/python", "-m", "chaoskit.stack"]'
    assert ("ENTRYPOINT", entrypoint) in steps
    assert "/opt/chaoskit/bin/pip install --quiet ." in (K8S / "Containerfile").read_text()
    copied = [arg.split()[:-1] for op, arg in steps if op == "COPY" and "--from" not in arg]
    for source in (s for sources in copied for s in sources):
        assert (ROOT / source).exists(), f"COPY {source}: not in the repository"


def test_the_offline_build_and_the_containerfile_make_the_same_image() -> None:
    """The tested offline build (k8s/image) and k8s/Containerfile keep one entrypoint, venv
    and user, so what the lab runs is what k8s/ deploys."""
    offline = (K8S / "image" / "Containerfile").read_text()
    registry = (K8S / "Containerfile").read_text()
    for shared in ('ENTRYPOINT ["/opt/chaoskit/bin/python", "-m", "chaoskit.stack"]',
                   "USER 10001:10001", "/opt/chaoskit"):
        assert shared in offline and shared in registry


def test_the_image_user_is_the_one_the_manifests_run_as(docs: list[Doc]) -> None:
    steps = dict(containerfile())
    uid = int(steps["USER"].split(":")[0])
    for _, template, _ in stack_containers(docs):
        assert template["spec"]["securityContext"]["runAsUser"] == uid
