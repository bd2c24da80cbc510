"""Free ports and a free lab subnet inside 198.18.0.0/15, chosen by asking the kernel."""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chaoskit.errors import PlatformError

LAB_RANGE = ipaddress.IPv4Network("198.18.0.0/15")
SUBNET_PREFIX = 24
NETWORK_LOCK = Path("/run/chaoskit-network.lock")

_handed_out: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel says is free now; never the same one twice in this process, so that
    ports picked before their servers bind do not collide with each other."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise PlatformError("no free TCP port found", hint="close some listening sockets")


@contextlib.contextmanager
def network_lock() -> Iterator[None]:
    """Two labs starting at once must not pick the same subnet: held from the pick until the
    subnet shows on an interface."""
    with open(NETWORK_LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def networks_in_use() -> list[ipaddress.IPv4Network]:
    """Every IPv4 prefix on a local interface or in the main routing table."""
    found: list[ipaddress.IPv4Network] = []
    for args in (["-4", "-j", "addr"], ["-4", "-j", "route", "show", "table", "all"]):
        out = subprocess.run(["ip", *args], capture_output=True, text=True, check=False).stdout
        found.extend(_prefixes(json.loads(out or "[]")))
    return found


def _prefixes(entries: list[dict[str, Any]]) -> list[ipaddress.IPv4Network]:
    texts: list[str] = []
    for entry in entries:
        texts += [f"{info['local']}/{info['prefixlen']}" for info in entry.get("addr_info", [])]
        dst = entry.get("dst")
        if dst and dst != "default":
            texts.append(dst)
    nets = []
    for text in texts:
        try:
            nets.append(ipaddress.IPv4Network(text, strict=False))
        except ValueError:  # IPv6 or a keyword: not in our way
            continue
    return nets


def pick_subnet(in_use: list[ipaddress.IPv4Network],
                first: int = 1) -> ipaddress.IPv4Network:
    """The first /24 of 198.18.0.0/15 from the `first`-th on overlapping nothing in use
    (198.18.0.0/24 is skipped: benchmarking tools commonly grab it)."""
    for candidate in list(LAB_RANGE.subnets(new_prefix=SUBNET_PREFIX))[max(1, first):]:
        if not any(candidate.overlaps(net) for net in in_use):
            return candidate
    raise PlatformError("no free /24 left inside 198.18.0.0/15",
                        hint="stop other labs with `chaoskit lab down --name NAME`")


def host_address(subnet: ipaddress.IPv4Network) -> str:
    """The bridge's own address: the first host of the subnet."""
    return str(subnet.network_address + 1)


def node_address(subnet: ipaddress.IPv4Network, index: int) -> str:
    """Node i (0-based) gets .2, .3, ... so .1 stays the host side."""
    if index + 2 >= subnet.num_addresses - 1:
        raise PlatformError(f"subnet {subnet} has no room for node {index + 1}",
                            hint="use fewer nodes")
    return str(subnet.network_address + 2 + index)
