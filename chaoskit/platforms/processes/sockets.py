"""The TCP and UDP sockets a process tree holds now, from /proc/<pid>/fd and /proc/<pid>/net.

A cgroup-matching firewall rule only sees sockets created after the move into the group (a
socket keeps the cgroup it was created in), so the sockets that already exist (listeners,
pooled database connections, keep-alive clients) are cut by their addresses and ports.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from dataclasses import dataclass

from chaoskit.platforms.processes import procfs

LISTEN = {"tcp": "0A", "udp": "07"}
TCP_GONE = {"06", "07"}  # TIME_WAIT and CLOSE: nothing flows on them any more


@dataclass(frozen=True)
class Socket:
    proto: str  # tcp | udp
    family: int  # 4 | 6 (v4-mapped v6 addresses are given as v4)
    local: str
    lport: int
    remote: str
    rport: int
    state: str  # the kernel's hex state ('0A' LISTEN, '01' ESTABLISHED, ...)
    inode: int

    @property
    def listening(self) -> bool:
        return self.state == LISTEN[self.proto] and self.rport == 0

    @property
    def wildcard(self) -> bool:
        return ipaddress.ip_address(self.local).is_unspecified


def parse_address(text: str) -> tuple[str, int, int]:
    """(address, port, family) from /proc/net/* 'HEX:PORT' (each 32-bit word little-endian)."""
    hexaddr, hexport = text.split(":")
    raw = bytes.fromhex(hexaddr)
    swapped = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    address = ipaddress.ip_address(swapped)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return str(address.ipv4_mapped), int(hexport, 16), 4
    return str(address), int(hexport, 16), address.version


def parse_line(proto: str, line: str) -> Socket | None:
    """One line of /proc/net/{tcp,tcp6,udp,udp6} (None for the header)."""
    fields = line.split()
    if len(fields) < 10 or fields[0] == "sl":
        return None
    local, lport, family = parse_address(fields[1])
    remote, rport, _ = parse_address(fields[2])
    return Socket(proto, family, local, lport, remote, rport, fields[3], int(fields[9]))


def inodes(pids: list[int]) -> set[int]:
    """Socket inodes the processes hold open."""
    found: set[int] = set()
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError, PermissionError):
            for fd in (procfs.PROC / str(pid) / "fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        found.add(int(target[8:-1]))
    return found


def held(pids: list[int]) -> list[Socket]:
    """The TCP/UDP sockets of the processes (their network namespace's tables)."""
    owned = inodes(pids)
    if not owned or not pids:
        return []
    net = procfs.PROC / str(pids[0]) / "net"
    found = []
    for table in ("tcp", "tcp6", "udp", "udp6"):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError, PermissionError):
            for line in (net / table).read_text().splitlines():
                sock = parse_line(table.rstrip("6"), line)
                if sock and sock.inode in owned and not (
                        sock.proto == "tcp" and sock.state in TCP_GONE):
                    found.append(sock)
    return sorted(set(found), key=lambda s: (s.proto, s.lport, s.remote, s.rport))


def same_netns(pid: int) -> bool:
    """True when pid shares our network namespace (our firewall rules reach it)."""
    try:
        return os.readlink(f"/proc/{pid}/ns/net") == os.readlink("/proc/self/ns/net")
    except OSError:
        return False

