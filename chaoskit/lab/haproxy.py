"""The lab's entry: a Debian HAProxy with active /healthz checks in front of the gateways."""

from __future__ import annotations

import socket
from pathlib import Path

from chaoskit.toolchain import require_binary

# Checks every 500 ms, down after 2 misses, up after 1 hit: a dead node leaves rotation in about
# a second. `retry-on conn-failure` with redispatch resends requests that never reached a server
# (safe for POSTs: nothing was sent) to another one, so clients see no error while the checks
# have not yet noticed.
# Overload is shed at the entry, as a payment stack's balancer does: at most 32 requests on a
# gateway at once (its database pool is 10), the rest wait in HAProxy's queue up to 2 s and then
# get a fast 503; a request whose client gave up is dropped, not worked on (abortonclose).
# Without this, 2,000/s against the lab piled thousands of abandoned requests on each gateway,
# its /healthz missed, every server went DOWN and the lab answered ~40/s for good.
_TEMPLATE = """\
global
    log stdout format raw local0 info
    stats socket {socket} mode 600 level admin
    maxconn 4000

defaults
    mode http
    log global
    option httplog
    option dontlognull
    timeout connect 1s
    timeout client 60s
    timeout server 60s
    timeout check 1s
    timeout queue 2s
    option abortonclose
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response

frontend entry
    bind 127.0.0.1:{port}
    default_backend gateways

backend gateways
    balance roundrobin
    option httpchk GET /healthz
    http-check expect status 200
    default-server inter 500ms fastinter 250ms downinter 500ms fall 2 rise 1 maxconn 32
{servers}
"""


def render(port: int, gateways: list[tuple[str, str]], socket_path: str) -> str:
    """Config text; gateways are (server name, host:port)."""
    lines = [f"    server {name} {addr} check" for name, addr in gateways]
    return _TEMPLATE.format(port=port, socket=socket_path, servers="\n".join(lines))


def write(path: Path, text: str) -> None:
    path.write_text(text)


def argv(config: Path) -> list[str]:
    """Foreground (-db) so the lab owns the pid; -W off: no master process to outlive us."""
    return [require_binary("haproxy"), "-db", "-f", str(config)]


def check(config: Path) -> list[str]:
    return [require_binary("haproxy"), "-c", "-q", "-f", str(config)]


def server_states(socket_path: str, timeout: float = 1.0) -> dict[str, str]:
    """{server name: 'UP'|'DOWN'|...} of the gateways backend, via the admin socket."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(socket_path)
            sock.sendall(b"show stat\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
    except OSError:
        return {}
    return _parse_stat(data.decode(errors="replace"))


def _parse_stat(text: str) -> dict[str, str]:
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    header = text.splitlines()[0].lstrip("# ").split(",") if text else []
    states = {}
    for line in lines:
        row = dict(zip(header, line.split(","), strict=False))
        if row.get("pxname") == "gateways" and row.get("svname") not in ("BACKEND", "FRONTEND"):
            states[row["svname"]] = row.get("status", "")
    return states


def runtime(socket_path: str, command: str, timeout: float = 2.0) -> str:
    """One command on HAProxy's admin socket (the runtime API); returns its answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(socket_path)
        sock.sendall(command.encode() + b"\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data.decode(errors="replace").strip()


# Dynamic servers do not inherit default-server, so their check timing is spelled out again.
_DYNAMIC = "check inter 500ms fastinter 250ms downinter 500ms fall 2 rise 1"


def add_gateway(socket_path: str, name: str, address: str) -> None:
    """Put a new gateway into rotation without a reload (it starts in maintenance)."""
    for command in (f"add server gateways/{name} {address} {_DYNAMIC}",
                    f"enable health gateways/{name}", f"enable server gateways/{name}"):
        answer = runtime(socket_path, command)
        if "error" in answer.lower() or "unknown" in answer.lower():
            raise OSError(f"HAProxy refused `{command}`: {answer}")


def remove_gateway(socket_path: str, name: str) -> None:
    """Drain a gateway out of rotation and delete it (a removed node leaves no backend)."""
    for command in (f"disable server gateways/{name}", f"shutdown sessions server gateways/{name}",
                    f"del server gateways/{name}"):
        runtime(socket_path, command)
