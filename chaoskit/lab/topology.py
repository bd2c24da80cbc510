"""Where each lab process runs and with what environment: the lab's layout in one place.

Network layout as root: every node is a namespace whose only interface sits on the lab bridge
(a free /24 of 198.18.0.0/15, no default route, so nothing leaves the machine). PostgreSQL and
the bank service listen on 127.0.0.1 of the host, which a namespace cannot reach; the nodes
reach them through Toxiproxy proxies listening on the bridge's host address (x.x.x.1), never on
0.0.0.0, which would expose them on the machine's real interfaces. So every database and bank
connection of the stack crosses Toxiproxy, and isolating a node (its link cut) also cuts it off
from both. HAProxy listens on 127.0.0.1 and reaches the gateways on their node addresses over
the bridge. Without root everything is on 127.0.0.1 and the proxies listen there. With container
nodes (`--runtime containers`) the bridge is the engine's lab network's, the layout the same:
each service listens on a fixed port of its container (`lab.containers.node.PORTS`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from chaoskit.lab.addresses import free_port
from chaoskit.lab.state import LabState, ProcessRecord, logs_dir

BANKS = ("alpha", "beta", "gamma")
STACK_SERVICES = ("gateway", "worker", "scheduler", "bank", "offline")


@dataclass
class LabOptions:
    """What `lab up` was asked for."""

    name: str = "default"
    nodes: int = 3
    postgres_url: str | None = None
    time_scale: float = 60.0
    mode: str = "auto"  # auto | netns | process (the processes runtime's node kind)
    runtime: str = "processes"  # processes | containers
    image: str | None = None  # containers: the stack image (default: the current sources')
    engine: str | None = None  # containers: Docker Engine API URL (default: discovered)
    env: dict[str, str] = field(default_factory=dict)
    timeout: float = 30.0
    stack_module: str = "chaoskit.stack"


def instance_id(service: str, node: str) -> str:
    return f"{service}-{node}"


def placement(node_names: list[str]) -> list[tuple[str, str]]:
    """(service, node): a gateway and a worker on every node; the scheduler's leader and its
    standby on the first two nodes, so losing either leaves one running."""
    pairs = [(service, node) for node in node_names for service in ("gateway", "worker")]
    pairs += [("scheduler", node) for node in node_names[:2]]
    return pairs


# The lab's promises, in scenario time. Short enough that, at the lab's compressed clock
# (60x: 10 s and 15 s), a refund or final payment that gets stuck falls due inside a run of
# a minute or two, so schedule hypotheses can catch it. `lab up --env` overrides them.
LAB_PROMISES = {"CHAOSKIT_REFUND_SLA": "10m", "CHAOSKIT_FINAL_WINDOW": "15m"}


def stack_env(state: LabState, options: LabOptions) -> dict[str, str]:
    """Environment every stack process shares: the DB and the banks through Toxiproxy."""
    proxy = state.proxies
    banks = ",".join(f"{b}=http://{proxy['bank-' + b]['listen']}" for b in BANKS)
    return {
        "CHAOSKIT_DATABASE_URL": _through(state.postgres_url, proxy["postgres"]["listen"]),
        "CHAOSKIT_BANK_URLS": banks,
        "CHAOSKIT_TIME_SCALE": f"{options.time_scale:g}",
        **LAB_PROMISES,
        **options.env,
    }


def _through(url: str, listen: str) -> str:
    """The database URL with host:port replaced by the proxy's listen address."""
    scheme, _, rest = url.partition("://")
    creds, _, location = rest.rpartition("@")
    path = location.partition("/")[2]
    return f"{scheme}://{creds + '@' if creds else ''}{listen}/{path}"


def stack_record(state: LabState, options: LabOptions, service: str, node: str | None,
                 host: str) -> ProcessRecord:
    name = instance_id(service, node) if node else service
    listen = f"{host}:{free_port()}"
    env = {**stack_env(state, options), "CHAOSKIT_LISTEN": listen,
           "CHAOSKIT_NODE": node or "host", "CHAOSKIT_INSTANCE": name}
    if service == "bank":  # the counterparty keeps its own record: not behind the books' proxy
        env.setdefault("CHAOSKIT_BANK_DATABASE_URL", state.postgres_url)
    argv = [sys.executable, "-m", options.stack_module, service]
    return ProcessRecord(id=name, service=service, node=node, argv=argv, env=env,
                         log=str(logs_dir(state) / f"{name}.log"), listen=listen,
                         health=f"http://{listen}/healthz")


def proxy_plan(state: LabState, upstream_db: str, bank_listen: str) -> dict[str, dict[str, str]]:
    """Toxiproxy proxies: `postgres` and one `bank-<name>` per bank, listening where the nodes
    reach the host (the bridge address as root, loopback otherwise)."""
    plan = {"postgres": {"listen": f"{state.host_ip}:{free_port()}", "upstream": upstream_db}}
    for bank in BANKS:
        plan[f"bank-{bank}"] = {"listen": f"{state.host_ip}:{free_port()}",
                                "upstream": bank_listen}
    return plan

