"""The lab network: an internal bridge network of the engine on a free /24 of 198.18.0.0/15.

Internal: no NAT and no route out, so the nodes reach the lab subnet only. The host's side of
the bridge (`ck<lab id>`, at .1) is where Toxiproxy's proxies listen, as on a netns lab; the
engine brings the bridge up when the first container joins, so `wait_host_address` waits for
it. Container labs take /24s from 198.19.0.0 upwards, netns labs from 198.18.1.0 and the
compose tests from the top down; every pick also skips what the engine's networks and the
kernel's interfaces and routes use, under the lab network lock, and an engine that still
refuses the subnet (a race with a network made meanwhile) gets the next one.
"""

from __future__ import annotations

import ipaddress
import socket
import time

import docker
from docker.errors import APIError, NotFound
from docker.types import IPAMConfig, IPAMPool

from chaoskit.errors import PlatformError
from chaoskit.lab import addresses, state
from chaoskit.lab.containers.engine import LAB, LAB_DIR
from chaoskit.lab.state import LabState

FIRST = 256  # the index of 198.19.0.0/24 among the range's /24s
ATTEMPTS = 5


def name_of(lab: LabState) -> str:
    return f"chaoskit-lab-{lab.lab_id}"


def engine_subnets(client: docker.DockerClient) -> list[ipaddress.IPv4Network]:
    """Every IPv4 subnet an engine network holds (a network no container joined yet has no
    bridge, so the kernel does not show it)."""
    found = []
    for network in client.networks.list():
        for pool in (network.attrs.get("IPAM") or {}).get("Config") or []:
            subnet = ipaddress.ip_network(str(pool.get("Subnet") or "::/128"), strict=False)
            if isinstance(subnet, ipaddress.IPv4Network):
                found.append(subnet)
    return found


def create(client: docker.DockerClient, lab: LabState) -> None:
    """Pick a subnet and make the network; the state file names both before it exists."""
    refuse_taken(client, lab)
    lab.network, lab.bridge = name_of(lab), f"ck{lab.lab_id}"
    with addresses.network_lock():
        for _ in range(ATTEMPTS):
            subnet = addresses.pick_subnet(addresses.networks_in_use() + engine_subnets(client),
                                           first=FIRST)
            lab.subnet, lab.host_ip = str(subnet), addresses.host_address(subnet)
            state.save(lab)
            try:
                client.networks.create(
                    lab.network, driver="bridge", internal=True,
                    options={"com.docker.network.bridge.name": lab.bridge},
                    labels={LAB: lab.lab_id, LAB_DIR: lab.dir},
                    ipam=IPAMConfig(pool_configs=[IPAMPool(subnet=lab.subnet,
                                                           gateway=lab.host_ip)]))
                return
            except APIError as exc:
                if not _subnet_clash(exc):
                    raise PlatformError(f"the engine refused the lab network {lab.network}: "
                                        f"{exc.explanation or exc}",
                                        hint="see the engine's log") from exc
    raise PlatformError(f"no free subnet for the lab network after {ATTEMPTS} tries",
                        hint="stop other labs with `chaoskit lab down --name NAME`")


def _subnet_clash(exc: APIError) -> bool:
    text = str(exc.explanation or exc).lower()
    return "subnet" in text or "overlap" in text or "in use" in text


def refuse_taken(client: docker.DockerClient, lab: LabState) -> None:
    """Nothing of this lab id may exist on the engine yet: tearing down a failed start would
    otherwise remove a stale lab's containers or network."""
    taken = [f"container {c.name}" for c in client.containers.list(
        all=True, filters={"label": f"{LAB}={lab.lab_id}"})]
    taken += [f"network {n.name}" for n in client.networks.list(
        filters={"label": f"{LAB}={lab.lab_id}"})]
    if taken:
        raise PlatformError(f"the engine already holds parts of lab id {lab.lab_id}: "
                            f"{', '.join(taken)}",
                            hint="a stale lab uses them: run `chaoskit lab down` for it, or "
                                 "pick another --name")


def wait_host_address(lab: LabState, timeout: float) -> None:
    """Until the host's address on the bridge can be bound (the first node has joined)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.socket() as sock:
                sock.bind((lab.host_ip, 0))
            return
        except OSError:
            if time.monotonic() > deadline:
                raise PlatformError(f"the lab network's bridge {lab.bridge} did not get "
                                    f"{lab.host_ip} within {timeout:g}s",
                                    hint="check the node containers started: "
                                         "`chaoskit lab status`") from None
            time.sleep(0.02)


def remove(client: docker.DockerClient, lab: LabState) -> None:
    names = {n.name for n in client.networks.list(filters={"label": f"{LAB}={lab.lab_id}"})}
    for name in sorted(names | ({lab.network} if lab.network else set())):
        try:
            client.api.remove_network(name)
        except NotFound:
            continue


def residue(client: docker.DockerClient, lab: LabState) -> list[str]:
    found = {n.name for n in client.networks.list(filters={"label": f"{LAB}={lab.lab_id}"})}
    if lab.network:
        try:
            client.api.inspect_network(lab.network)
            found.add(lab.network)
        except NotFound:
            pass
    return [f"network {name} exists" for name in sorted(found)]
