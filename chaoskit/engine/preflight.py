"""Preflight checks that need no I/O: every resolved target inside the experiment's scope."""

from __future__ import annotations

from chaoskit.engine.timeline import PlannedFault
from chaoskit.spec.models import Experiment


def scope_problems(experiment: Experiment, planned: list[PlannedFault]) -> list[str]:
    """Targets resolved at plan time (e.g. `node: any`) checked against target.scope.

    Drivers name what they touch in their intents under `node`, `proxies` and `namespace`.
    """
    scope = experiment.target.scope
    problems = []
    for pf in planned:
        node, proxies = pf.intent.get("node"), pf.intent.get("proxies") or []
        namespace = pf.intent.get("namespace")
        if scope.nodes and node and node not in scope.nodes:
            problems.append(f"{pf.name}: node {node} is outside scope.nodes {scope.nodes}")
        outside = [p for p in proxies if scope.proxies and p not in scope.proxies]
        if outside:
            problems.append(f"{pf.name}: proxies {outside} are outside scope.proxies")
        if scope.namespaces and namespace and namespace not in scope.namespaces:
            problems.append(f"{pf.name}: namespace {namespace} is outside scope.namespaces")
    return problems
