"""Network side of a root node: a lab bridge, one namespace per node, a veth into it."""

from __future__ import annotations

import json
import subprocess

from chaoskit.errors import PlatformError


def ip(*args: str, check: bool = True) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise PlatformError(f"`ip {' '.join(args)}` failed: {done.stderr.strip()}",
                            hint="run the lab as root with iproute2 installed")
    return done.stdout


def link_exists(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", "dev", name], capture_output=True,
                          check=False).returncode == 0


def netns_list() -> list[str]:
    out = ip("-j", "netns", "list", check=False)
    return [entry["name"] for entry in json.loads(out or "[]")]


def create_bridge(bridge: str, host_cidr: str) -> None:
    ip("link", "add", bridge, "type", "bridge")
    ip("addr", "add", host_cidr, "dev", bridge)
    ip("link", "set", bridge, "up")


def create_node(netns: str, veth: str, bridge: str, cidr: str) -> None:
    """Namespace with lo up and eth0 (peer of `veth`, which joins the bridge on the host).
    No default route: a node reaches the lab subnet only, never beyond the machine."""
    ip("netns", "add", netns)
    ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns)
    ip("link", "set", veth, "master", bridge, "up")
    ip("-n", netns, "link", "set", "lo", "up")
    ip("-n", netns, "addr", "add", cidr, "dev", "eth0")
    ip("-n", netns, "link", "set", "eth0", "up")


def delete_netns(netns: str) -> None:
    """Deleting the namespace also deletes the veth pair whose end lives in it."""
    if netns in netns_list():
        ip("netns", "del", netns)


def delete_link(name: str) -> None:
    if link_exists(name):
        ip("link", "del", name, check=False)


def set_isolated(veth: str, bridge: str, isolated: bool) -> None:
    """Cut the node off: host end down and out of the bridge, so packets vanish (no RST)."""
    if isolated:
        ip("link", "set", veth, "nomaster")
        ip("link", "set", veth, "down")
    else:
        ip("link", "set", veth, "master", bridge)
        ip("link", "set", veth, "up")


def link_state(veth: str) -> dict[str, str]:
    """{'up': 'yes'|'no', 'master': bridge or ''} of a host-side link ({} when it is gone)."""
    out = ip("-j", "link", "show", "dev", veth, check=False)
    entries = json.loads(out or "[]")
    if not entries:
        return {}
    flags = entries[0].get("flags", [])
    return {"up": "yes" if "UP" in flags else "no", "master": entries[0].get("master", "")}


def exec_prefix(netns: str) -> list[str]:
    return ["ip", "netns", "exec", netns]
