"""ProcessesPlatform: the user's own services on this machine, each service a node.

    target:
      platform: processes
      entry: http://127.0.0.1:8300                 # where load goes (optional)
      database: postgresql://app@127.0.0.1/app     # read by probes; reconciliation's database
      toxiproxy: http://127.0.0.1:8474             # the user's own Toxiproxy (optional)
      scope: {nodes: [otherpay-worker]}
      state_dir: /run/chaoskit/processes           # optional: marks and restarted services' logs
      services:                                    # name -> a node of that name
        otherpay-worker:
          pidfile: /run/otherpay/worker.pid        # or command: 'tests\\.otherpay worker'
                                                   #    (count: 1) or unit: otherpay-worker.service
          start: env OTHERPAY_LISTEN=127.0.0.1:8301 python -m tests.otherpay worker
          cwd: /srv/otherpay                       # of `start` (default /); env: {K: V} added
          log: /var/log/otherpay-worker.log        # default <state_dir>/logs/<service>.log
          health: http://127.0.0.1:8301/health     # back when this answers 200
          metrics: http://127.0.0.1:8301/metrics
          stop_timeout: 10s                        # stop: SIGTERM, then SIGKILL after this
          start_timeout: 30s                       # restart: found and healthy within this

A service's node is its process tree: the process named by the pid file, the processes whose
command line matches `command` (exactly `count` separate trees), or the unit's main process.
Node loss modes (see `nodes`): kill and stop (restarted by `start:` or `systemctl start`),
freeze (cgroup freezer as root, else SIGSTOP), isolate (root: cgroup v2 group + iptables DROP,
see `isolation`). Co-located offline work is pinned to the service's CPUs (see `colocation`).
Everything carries the run id: cgroups chaoskit/processes/<run>/..., iptables comments
chaoskit:processes:<run>:<node>, offline processes CHAOSKIT_PROCESSES_RUN=<run>; marks under
state_dir let another process revert, and `recover_processes` sweep without a journal.

Abilities: Entry, Database (with target.database), ToxiproxyAccess (with target.toxiproxy),
MetricsTargets, OwnHosts, NodeOperations (kill, stop, freeze, isolate), NodeHealth, Colocation,
ProcessCpu, RunBinding.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import time
from pathlib import Path
from typing import Any

from chaoskit import toxiproxy
from chaoskit.errors import PlatformError
from chaoskit.platforms.abilities import NodeInfo, OfflineProcess, OfflineWork
from chaoskit.platforms.processes import checks, colocation, marks, procfs
from chaoskit.platforms.processes.config import ProcessesConfig, default_state_dir, safe
from chaoskit.platforms.processes.nodes import Node, lose, modes, residue, restore


class ProcessesPlatform:
    """Services on this machine found by pid file, command pattern or systemd unit."""

    name = "processes"
    Config = ProcessesConfig

    def __init__(self, config: ProcessesConfig, *, entry: str | None = None,
                 database: str | None = None, toxiproxy_url: str | None = None,
                 proxies: list[dict[str, str]] | None = None, run: str | None = None) -> None:
        self.config = config
        self.state_dir = Path(config.state_dir) if config.state_dir else default_state_dir()
        self._entry, self._database, self._toxiproxy = entry, database, toxiproxy_url
        self._declared = list(proxies or [])
        self.run = safe(run or f"adhoc-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}")

    @classmethod
    def build(cls, config: ProcessesConfig, **kwargs: Any) -> ProcessesPlatform:
        """The variant offering Database / ToxiproxyAccess only when they are configured."""
        variant = _VARIANTS[(bool(kwargs.get("database")), bool(kwargs.get("toxiproxy_url")))]
        return variant(config, **kwargs)

    @classmethod
    def from_target(cls, target: Any) -> ProcessesPlatform:
        config = ProcessesConfig.model_validate(target.options())
        return cls.build(config, entry=target.entry, database=target.database,
                         toxiproxy_url=target.toxiproxy,
                         proxies=[p.model_dump() for p in target.proxies])

    @classmethod
    def from_description(cls, desc: dict[str, Any]) -> ProcessesPlatform:
        own = {k: desc[k] for k in ProcessesConfig.model_fields if desc.get(k) is not None}
        return cls.build(ProcessesConfig.model_validate(own), entry=desc.get("entry"),
                         database=desc.get("database"), toxiproxy_url=desc.get("toxiproxy"),
                         proxies=desc.get("proxies"), run=desc.get("run"))

    def describe(self) -> dict[str, Any]:
        return {"platform": self.name, **self.config.model_dump(mode="json"),
                "state_dir": str(self.state_dir), "entry": self._entry,
                "database": self._database, "toxiproxy": self._toxiproxy,
                "proxies": self._declared, "run": self.run}

    def identity(self) -> str:
        """This machine: two runs here share its services."""
        return f"processes:{_machine_id()}"

    def bind_run(self, run_id: str) -> None:
        self.run = safe(run_id)

    def nodes(self) -> list[NodeInfo]:
        return [NodeInfo(name, "127.0.0.1", (), {"found_by": s.found_by})
                for name, s in self.config.services.items()]

    def node(self, name: str) -> Node:
        service = self.config.services.get(name)
        if service is None:
            raise PlatformError(f"the processes platform has no node '{name}'",
                                hint=f"use one of: {', '.join(self.config.services)}")
        return Node(name, service, self.state_dir, self.run)

    async def preflight(self) -> list[str]:
        problems = await asyncio.to_thread(checks.services, self.config.services)
        problems += await asyncio.to_thread(checks.health, self.config.services)
        if self._toxiproxy:
            try:
                await asyncio.to_thread(toxiproxy.ToxiproxyServer(self._toxiproxy).version)
            except PlatformError as exc:
                problems.append(exc.message)
        return problems

    # -- addresses -------------------------------------------------------------------------
    def entry_url(self) -> str:
        if not self._entry:
            raise PlatformError("the processes platform has no entry URL",
                                hint="set target.entry to the system's base URL")
        return self._entry

    def metrics_targets(self, exclude_node: str | None = None) -> dict[str, str]:
        return {name: s.metrics for name, s in self.config.services.items()
                if s.metrics and name != exclude_node}

    def own_hosts(self) -> list[str]:
        return ["127.0.0.0/8", "localhost"]

    # -- node operations (blocking; drivers call them in a thread) ---------------------------
    def node_loss_modes(self) -> dict[str, str | None]:
        return modes()

    def lose_node(self, node: str, mode: str) -> dict[str, Any]:
        return lose(self.node(node), mode)

    def restore_node(self, node: str, mode: str) -> dict[str, Any]:
        return restore(self.node(node), mode)

    def node_residue(self, node: str) -> list[str]:
        return residue(self.node(node))

    def node_health_urls(self, node: str) -> dict[str, str]:
        health = self.node(node).service.health
        return {node: health} if health else {}

    # -- co-location -----------------------------------------------------------------------
    def start_offline(self, node: str, tag: str, work: OfflineWork) -> str:
        target = self.node(node)
        with marks.locked(self.state_dir):
            return colocation.start(self.state_dir, self.run, node, safe(tag), work,
                                    target.running(), self._database)

    def offline_processes(self, tag: str) -> list[OfflineProcess]:
        return colocation.describe(self.state_dir, safe(tag))

    def stop_offline(self, tag: str) -> list[str]:
        with marks.locked(self.state_dir):
            return colocation.stop(self.state_dir, safe(tag))

    def offline_residue(self, tag: str) -> list[str]:
        return colocation.residue(self.state_dir, safe(tag))

    def offline_isolation(self) -> str:
        return colocation.mechanism()

    def process_cpu_seconds(self, process_id: str) -> float:
        """CPU seconds so far of an offline process (its process group) or of a service
        (its tree, by node name)."""
        if process_id in self.config.services:
            return procfs.cpu_seconds(self.node(process_id).find().pids)
        leader = colocation.leader(self.state_dir, process_id)
        return procfs.group_cpu_seconds(leader) if leader else 0.0


class _WithDatabase(ProcessesPlatform):
    def database_url(self) -> str:
        """target.database, read directly by probes."""
        return str(self._database)


class _WithToxiproxy(ProcessesPlatform):
    def toxiproxy_url(self) -> str:
        return str(self._toxiproxy)

    def declared_proxies(self) -> list[dict[str, str]]:
        return list(self._declared)


class _WithBoth(_WithDatabase, _WithToxiproxy):
    pass


_VARIANTS: dict[tuple[bool, bool], type[ProcessesPlatform]] = {
    (False, False): ProcessesPlatform, (True, False): _WithDatabase,
    (False, True): _WithToxiproxy, (True, True): _WithBoth}


def _machine_id() -> str:
    try:
        return Path("/etc/machine-id").read_text().strip() or socket.gethostname()
    except OSError:
        return socket.gethostname()

