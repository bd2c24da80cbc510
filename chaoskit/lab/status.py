"""What a lab looks like right now: nodes, processes, addresses, proxies, health."""

from __future__ import annotations

import asyncio
from typing import Any

from chaoskit import toxiproxy
from chaoskit.errors import PlatformError
from chaoskit.lab import haproxy, health
from chaoskit.lab.runtime import NodeRuntime, runtime_of
from chaoskit.lab.state import LabState


def collect(lab: LabState) -> dict[str, Any]:
    """A JSON-able snapshot (the shape of `lab status --json`)."""
    healthy = asyncio.run(_probe({p.id: p.health for p in lab.processes if p.health}))
    runtime = runtime_of(lab)
    live = lab.status != "down"
    dead = set(runtime.dead(lab)) if live else {p.id for p in lab.processes}
    return {
        "name": lab.name, "dir": lab.dir, "runtime": lab.runtime, "mode": lab.mode,
        "status": lab.status, **runtime.describe(lab),
        "subnet": lab.subnet, "bridge": lab.bridge, "host_ip": lab.host_ip,
        "entry_url": lab.entry_url, "database_url": lab.postgres_url,
        "toxiproxy_api": lab.toxiproxy_api,
        "nodes": [_node(lab, runtime, n.name, live) for n in lab.nodes],
        "processes": [_process(lab, p.id, healthy.get(p.id), p.id not in dead)
                      for p in lab.processes],
        "proxies": _proxies(lab),
        "haproxy": haproxy.server_states(lab.haproxy_socket) if lab.haproxy_socket else {},
    }


async def _probe(urls: dict[str, str]) -> dict[str, bool]:
    async with health.client(0.5) as http:
        results = await asyncio.gather(*(health.healthy(http, u) for u in urls.values()))
    return dict(zip(urls, results, strict=True))


def _node(lab: LabState, runtime: NodeRuntime, name: str, live: bool) -> dict[str, Any]:
    node = lab.node(name)
    return {"name": node.name, "address": node.address, "netns": node.netns, "veth": node.veth,
            "container": node.container, "roles": node.roles,
            "frozen": runtime.frozen(lab, name) if lab.status == "up" else False,
            "link_up": runtime.link_up(lab, name) if live else None,
            "processes": [p.id for p in lab.processes_on(name)]}


def _process(lab: LabState, pid_or_id: str, healthy: bool | None,
             alive: bool) -> dict[str, Any]:
    record = lab.process(pid_or_id)
    assert record is not None
    return {"id": record.id, "service": record.service, "node": record.node, "pid": record.pid,
            "alive": alive, "listen": record.listen, "healthy": healthy, "log": record.log}


def _proxies(lab: LabState) -> list[dict[str, Any]]:
    """Proxies as the server lists them; as the state file planned them when it is down."""
    try:
        live = toxiproxy.ToxiproxyServer(lab.toxiproxy_api).proxies() if lab.toxiproxy_api else {}
    except PlatformError:
        live = {}
    rows = []
    for name, planned in lab.proxies.items():
        seen = live.get(name)
        rows.append({"name": name, "listen": planned["listen"], "upstream": planned["upstream"],
                     "present": seen is not None, "enabled": bool(seen and seen.enabled),
                     "toxics": [t.name for t in seen.toxics] if seen else []})
    return rows


def table(snapshot: dict[str, Any]) -> str:
    """The short human table `lab up` and `lab status` print."""
    lines = [(f"lab {snapshot['name']} ({snapshot['runtime']} runtime, {snapshot['mode']} "
              f"nodes, {snapshot['status']})  entry {snapshot['entry_url']}  "
              f"toxiproxy {snapshot['toxiproxy_api']}")]
    if snapshot.get("engine"):
        lines.append(f"engine {snapshot['engine']}  image {snapshot['image']}  "
                     f"network {snapshot['network']} ({snapshot['subnet']})")
    lines.append(f"{'PROCESS':22} {'NODE':8} {'PID':>7} {'STATE':8} LISTEN")
    for proc in snapshot["processes"]:
        state = "healthy" if proc["healthy"] else ("up" if proc["alive"] else "dead")
        lines.append(f"{proc['id']:22} {proc['node'] or 'host':8} {proc['pid'] or '-':>7} "
                     f"{state:8} {proc['listen']}")
    for node in snapshot["nodes"]:
        flags = ", ".join(k for k in ("frozen",) if node[k]) or "ok"
        if node["link_up"] is False:
            flags = "link down"
        where = f"  container {node['container']}" if node.get("container") else ""
        lines.append(f"node {node['name']:8} {node['address']:15} {flags}{where}")
    for proxy in snapshot["proxies"]:
        mark = "" if proxy["present"] else " (absent)"
        lines.append(f"proxy {proxy['name']:12} {proxy['listen']:22} -> {proxy['upstream']}{mark}")
    return "\n".join(lines)
