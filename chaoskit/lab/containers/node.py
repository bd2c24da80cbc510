"""A lab node as a container: the node's stack services under one supervisor, at the node's
address, with its logs in the lab's logs directory.

Every service listens on 0.0.0.0 inside the container (its own network namespace: lo and its
one interface on the lab network) at a fixed port per service, so the host, HAProxy and the
probes reach `<node address>:<port>`. The container keeps its address and a MAC derived from it
(`stable_mac`) across kill/start and disconnect/connect, so the host's ARP cache never points
at a stale MAC. The supervisor runs as root only to open the log files in the bind-mounted
logs directory; the services run as the image's `payments` user (uid 10001).
"""

from __future__ import annotations

import json

import docker
from docker.errors import NotFound

from chaoskit.errors import PlatformError
from chaoskit.lab.containers.engine import LAB, LAB_DIR
from chaoskit.lab.state import LabState, NodeRecord, ProcessRecord, logs_dir
from chaoskit.platforms.containers.colocation import ONLINE_SHARES
from chaoskit.platforms.containers.engine import safe_ulimits, stable_mac
from chaoskit.platforms.containers.views import NODE, ContainerView

PORTS = {"gateway": 8080, "worker": 8081, "scheduler": 8082}
LOG_DIR = "/var/log/chaoskit"
SERVICES_ENV = "CHAOSKIT_NODE_SERVICES"  # JSON: [{id, service, env}] the supervisor runs
LOG_DIR_ENV = "CHAOSKIT_LOG_DIR"
SUPERVISOR = ["python", "-m", "chaoskit.lab.containers.supervisor"]
STOP_GRACE = 5  # seconds after SIGTERM before the engine kills a stopping node


def container_name(lab: LabState, node: str) -> str:
    return f"chaoskit-lab-{lab.lab_id}-{node}"


def place(node: NodeRecord, record: ProcessRecord) -> None:
    """A stack record as it runs in the node's container: its service's port, bound inside."""
    port = PORTS.get(record.service)
    if port is None:
        raise PlatformError(f"container nodes run {', '.join(PORTS)}, not {record.service}",
                            hint="offline work runs as a batch container (colocate)")
    record.listen = f"{node.address}:{port}"
    record.health = f"http://{record.listen}/healthz"
    record.env["CHAOSKIT_LISTEN"] = f"0.0.0.0:{port}"
    record.argv = ["python", "-m", "chaoskit.stack", record.service]


def services(records: list[ProcessRecord]) -> str:
    return json.dumps([{"id": r.id, "service": r.service, "env": r.env} for r in records])


def start(client: docker.DockerClient, lab: LabState, node: NodeRecord,
          records: list[ProcessRecord]) -> str:
    """Create and start the node's container (its name is already in the state file)."""
    api = client.api
    created = api.create_container(
        lab.image, entrypoint=SUPERVISOR, command=[], name=node.container, hostname=node.name,
        user="0:0", environment={SERVICES_ENV: services(records), LOG_DIR_ENV: LOG_DIR},
        labels={LAB: lab.lab_id, LAB_DIR: lab.dir, NODE: node.name}, stop_signal="SIGTERM",
        stop_timeout=STOP_GRACE,
        host_config=api.create_host_config(
            network_mode=lab.network, ulimits=safe_ulimits(), cpu_shares=ONLINE_SHARES,
            binds={str(logs_dir(lab)): {"bind": LOG_DIR, "mode": "rw"}}),
        networking_config=api.create_networking_config({lab.network: api.create_endpoint_config(
            ipv4_address=node.address, mac_address=stable_mac(node.address))}))
    ident = str(created["Id"])
    api.start(ident)
    return ident


def view(client: docker.DockerClient, lab: LabState, node: str) -> ContainerView | None:
    """The node's container as the engine shows it now (None: there is none)."""
    record = lab.node(node)
    try:
        return ContainerView.of(client.api.inspect_container(record.container or ""))
    except NotFound:
        return None


def require_view(client: docker.DockerClient, lab: LabState, node: str) -> ContainerView:
    found = view(client, lab, node)
    if found is None:
        raise PlatformError(f"node {node} of lab '{lab.name}' has no container "
                            f"({lab.node(node).container})",
                            hint=f"recreate the lab: `chaoskit lab down --name {lab.name}`, "
                                 "then `lab up --runtime containers`")
    return found
