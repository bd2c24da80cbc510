"""Taking a lab apart from its state file alone, and auditing that nothing of it is left.

The host processes are stopped here; the nodes (namespaces and cgroups, or containers and their
network) are removed and audited by the lab's runtime."""

from __future__ import annotations

import contextlib
import signal
from pathlib import Path

from chaoskit import toxiproxy
from chaoskit.errors import PlatformError
from chaoskit.lab import nodes, postgres, processes, state
from chaoskit.lab.runtime import runtime_of
from chaoskit.lab.state import LabState, ProcessRecord

# Clients before servers: the stack first, the database last, so nothing reconnects in between.
_ORDER = ("haproxy", "bank", "toxiproxy", "postgres")


def _stage(record: ProcessRecord) -> int:
    return _ORDER.index(record.service) + 1 if record.service in _ORDER else 0


def teardown(lab: LabState) -> list[str]:
    """Stop everything the state file names, then sweep by marker; returns the residue."""
    lab.status = "stopping"
    state.save(lab)
    _thaw_all(lab)
    _forget_proxies(lab)
    for stage in range(len(_ORDER) + 1):
        _stop([p for p in lab.processes if _stage(p) == stage])
    processes.kill_all(processes.marked(lab.marker), grace=1.0)
    runtime_of(lab).remove_nodes(lab)
    postgres.remove(lab.pgdata)
    left = audit(lab)
    lab.status = "down" if not left else "residue"
    state.save(lab)
    return left


def _thaw_all(lab: LabState) -> None:
    """A frozen process cannot act on SIGTERM; a stopped one neither."""
    for node in lab.nodes:
        with contextlib.suppress(PlatformError):
            if nodes.frozen(lab, node.name):
                nodes.set_frozen(lab, node.name, False)


def _forget_proxies(lab: LabState) -> None:
    """Our own server dies with the lab; proxies on a server we did not start are removed
    one by one (never a server-wide reset)."""
    if any(p.service == "toxiproxy" for p in lab.processes) or not lab.toxiproxy_api:
        return
    server = toxiproxy.ToxiproxyServer(lab.toxiproxy_api)
    for name in lab.proxies:
        with contextlib.suppress(PlatformError):
            server.delete_proxy(name)


def _stop(records: list[ProcessRecord]) -> None:
    live = [r for r in records if processes.alive(r.pid, r.started)]
    for record in live:
        processes.signal_group(record.pid, record.started, signal.SIGCONT)
        processes.signal_group(record.pid, record.started, signal.SIGTERM)
    left = processes.wait_gone([r.pid for r in live if r.pid], 3.0)
    for record in live:
        if record.pid in left:
            processes.signal_group(record.pid, record.started, signal.SIGKILL)
    processes.wait_gone(left, 3.0)


def audit(lab: LabState) -> list[str]:
    """Everything of this lab still present: processes, data, and the runtime's nodes
    (cgroups, namespaces and links; or containers, volumes and networks on the engine)."""
    found = [f"process {pid} still runs" for pid in processes.marked(lab.marker)]
    found += [f"process {p.id} (pid {p.pid}) still runs" for p in lab.processes
              if processes.alive(p.pid, p.started)]
    found += runtime_of(lab).audit(lab)
    if lab.pgdata and Path(lab.pgdata).exists():
        found.append(f"database directory {lab.pgdata} exists")
    return sorted(set(found))
