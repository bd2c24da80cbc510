"""Roles the system declares (`roles:`), found on the running system when a fault starts.

A fault aimed at `{role: scheduler-leader}` hits the node hosting that role *at that moment*.
Declared finders: a metric the services export (its `label` names the node), an HTTP endpoint
(a relative URL is read through the entry), a read-only query, a Kubernetes label selector or
Lease. A role the system does not declare is left to the platform's own (`Roles`).
"""

from __future__ import annotations

from typing import Any

import httpx

from chaoskit.errors import ChaoskitError, FaultError
from chaoskit.exposition import parse_exposition
from chaoskit.load.flows import pointer_tokens, resolve
from chaoskit.platforms.abilities import Entry, MetricsTargets, Platform, PodPlacement, require
from chaoskit.platforms.calls import blocking
from chaoskit.probes.books import Books, database_url
from chaoskit.spec.system import RoleSpec, SystemSpec

TIMEOUT = 3.0


async def declared_target(target: dict[str, Any], system: SystemSpec | None,
                          platform: Platform) -> dict[str, Any]:
    """`{role: R}` with R declared by the system -> `{node: N, role: R}`; else unchanged."""
    role = target.get("role")
    if not isinstance(role, str) or system is None or role not in system.roles:
        return target
    node = await find_node(role, system, platform)
    return {**{k: v for k, v in target.items() if k != "role"}, "node": node}


async def find_node(name: str, system: SystemSpec, platform: Platform) -> str:
    """The node of a declared role: its finders in order, the first one that finds wins."""
    tried = []
    for spec in system.finders(name):
        try:
            found = await _find(spec, system, platform)
        except ChaoskitError as exc:
            tried.append(exc.message)
            continue
        if found and spec.names == "pod":
            cluster = require(platform, PodPlacement, "find the node of a pod")
            found = await blocking(cluster.node_of_pod, found)
        if found:
            return found
    raise FaultError(f"no node hosts the role '{name}' right now"
                     + (f" ({'; '.join(tried)})" if tried else ""),
                     hint="check the system runs and the role's finders in `roles:`")


async def _find(spec: RoleSpec, system: SystemSpec, platform: Platform) -> str | None:
    if spec.metric is not None:
        return await _by_metric(spec, platform)
    if spec.http is not None:
        return await _by_http(spec, platform)
    if spec.sql is not None:
        return await _by_sql(spec, system, platform)
    return await _by_cluster(spec, platform)


async def _by_metric(spec: RoleSpec, platform: Platform) -> str | None:
    targets = require(platform, MetricsTargets, f"read metrics to find a role ({spec.metric})")
    urls = list((await blocking(targets.metrics_targets, timeout=5.0)).values())
    values: dict[str, float] = {}
    async with httpx.AsyncClient(timeout=TIMEOUT, trust_env=False) as http:
        for url in urls:
            try:
                text = (await http.get(url)).text
            except httpx.HTTPError:
                continue  # a lost node answers nothing: the role is elsewhere
            for (_, metric, labels), value in parse_exposition(url, text).items():
                node = dict(labels).get(spec.label)
                if metric == spec.metric and node:
                    values[node] = max(value, values.get(node, value))
    if spec.equals is not None:
        return next((n for n in sorted(values) if values[n] == spec.equals), None)
    if not values:
        return None
    pick = max if spec.pick == "max" else min
    best = pick(values.values())
    return sorted(n for n, v in values.items() if v == best)[0]


async def _by_http(spec: RoleSpec, platform: Platform) -> str | None:
    url = str(spec.http)
    if url.startswith("/"):
        entry = require(platform, Entry, "reach the entry to find a role")
        url = (await blocking(entry.entry_url, timeout=5.0)).rstrip("/") + url
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT, trust_env=False) as http:
            document = (await http.get(url)).json()
    except (httpx.HTTPError, ValueError):
        return None
    value = resolve(document, pointer_tokens(spec.pointer or "/node"))
    return str(value) if value else None


async def _by_sql(spec: RoleSpec, system: SystemSpec, platform: Platform) -> str | None:
    books = Books(database_url(spec.database, system, platform))
    try:
        row = await books.row(str(spec.sql))
    finally:
        await books.close()
    return str(next(iter(row.values()))) if row else None


async def _by_cluster(spec: RoleSpec, platform: Platform) -> str | None:
    cluster = require(platform, PodPlacement, "place pods to find a role")
    if spec.selector is not None:
        nodes = await blocking(cluster.nodes_of_pods, spec.selector)
        return nodes[0] if nodes else None
    namespace, _, name = str(spec.lease).partition("/")
    return str(await blocking(cluster.lease_holder_node, namespace, name))
