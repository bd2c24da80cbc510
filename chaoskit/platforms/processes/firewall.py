"""iptables rules that cut a node off, each commented `chaoskit:processes:<run>:<node>`.

Rules are added and removed in one `iptables-restore --noflush` call per address family (all
or nothing), found again by their comment in `iptables -S`, so another process removes them
knowing only the node's name (or the run's).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

from chaoskit.errors import PlatformError
from chaoskit.platforms.processes.sockets import Socket

PREFIX = "chaoskit:processes:"
TOOLS = {4: "iptables", 6: "ip6tables"}
TIMEOUT = 20.0
_COMMENT = re.compile(r'--comment "?(' + re.escape(PREFIX) + r'[^" ]+)"?')


@dataclass(frozen=True)
class Rule:
    family: int
    chain: str  # INPUT | OUTPUT
    match: tuple[str, ...]  # everything between the chain and the comment

    def line(self, comment: str, verb: str = "-I") -> str:
        head = [verb, self.chain, "1"] if verb == "-I" else [verb, self.chain]
        return " ".join([*head, *self.match, "-m", "comment", "--comment", comment, "-j",
                         "DROP"])


def comment(run: str, node: str) -> str:
    return f"{PREFIX}{run}:{node}"


def families() -> list[int]:
    """Address families whose tools are installed (IPv4 first)."""
    return [f for f, tool in TOOLS.items() if shutil.which(tool) and shutil.which(
        f"{tool}-restore")]


def cgroup_rules(path: str) -> list[Rule]:
    """Every packet of a socket created inside the group, both ways, both families."""
    match = ("-m", "cgroup", "--path", path)
    return [Rule(f, chain, match) for f in families() for chain in ("OUTPUT", "INPUT")]


def socket_rules(sock: Socket) -> list[Rule]:
    """A listener: packets to its port. A connection: its 4-tuple, both ways."""
    proto = ("-p", sock.proto)
    if sock.listening:
        wanted = families() if sock.wildcard and sock.family == 6 else [sock.family]
        dest = () if sock.wildcard else ("-d", sock.local)
        return [Rule(f, "INPUT", (*proto, *dest, "--dport", str(sock.lport))) for f in wanted]
    out = ("-s", sock.local, "-d", sock.remote, *proto, "--sport", str(sock.lport),
           "--dport", str(sock.rport))
    into = ("-s", sock.remote, "-d", sock.local, *proto, "--sport", str(sock.rport),
            "--dport", str(sock.lport))
    return [Rule(sock.family, "OUTPUT", out), Rule(sock.family, "INPUT", into)]


def _run(args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(args, input=stdin, capture_output=True, text=True,
                              timeout=TIMEOUT, check=False)
    except FileNotFoundError:
        raise PlatformError(f"{args[0]} is not installed",
                            hint="install iptables, or use node-loss mode kill/freeze") from None
    except subprocess.TimeoutExpired:
        raise PlatformError(f"{args[0]} did not finish in {TIMEOUT:g}s",
                            hint="another program may hold the xtables lock") from None


def restore(family: int, lines: list[str]) -> None:
    """Apply lines (`-I ...` / `-D ...`) to the filter table at once, or none of them."""
    if not lines:
        return
    text = "*filter\n" + "\n".join(lines) + "\nCOMMIT\n"
    done = _run([f"{TOOLS[family]}-restore", "-w", "5", "--noflush"], text)
    if done.returncode != 0:
        raise PlatformError(f"{TOOLS[family]}-restore refused the rules: "
                            f"{done.stderr.strip()[:500]}",
                            hint="is this kernel's xt_cgroup/comment match available?")


def add(rules: list[Rule], note: str) -> None:
    for family in families():
        restore(family, [r.line(note) for r in rules if r.family == family])


def listed(family: int) -> list[str]:
    """Every rule of the filter table, as `iptables -S` prints it."""
    done = _run([TOOLS[family], "-w", "5", "-S"])
    if done.returncode != 0:
        raise PlatformError(f"{TOOLS[family]} -S failed: {done.stderr.strip()[:300]}",
                            hint="run chaoskit as root")
    return done.stdout.splitlines()


def comment_of(line: str) -> str | None:
    found = _COMMENT.search(line)
    return found.group(1) if found else None


def wanted(note: str, run: str | None, node: str | None) -> bool:
    """Whether a chaoskit comment belongs to the run and node asked for (None: any)."""
    parts = note[len(PREFIX):].split(":", 1)
    return len(parts) == 2 and (run is None or parts[0] == run) and (
        node is None or parts[1] == node)


def ours(run: str | None = None, node: str | None = None) -> dict[int, list[str]]:
    """family -> our rules (as `-A ...` lines) of a run and/or node."""
    found: dict[int, list[str]] = {}
    for family in families():
        lines = [line for line in listed(family) if line.startswith("-A ")
                 and (note := comment_of(line)) and wanted(note, run, node)]
        if lines:
            found[family] = lines
    return found


def remove(run: str | None = None, node: str | None = None) -> list[str]:
    """Delete our rules (all of a family at once; one by one by number if that fails, e.g.
    when a rule's cgroup is already gone); `iptables -A ...` / `ip6tables -A ...` of each."""
    removed = []
    for family, lines in ours(run, node).items():
        try:
            restore(family, ["-D" + line[2:] for line in lines])
        except PlatformError:
            for line in lines:
                _delete_by_number(family, line)
        removed += [f"{TOOLS[family]} {line}" for line in lines]
    return removed


def _delete_by_number(family: int, line: str) -> None:
    chain = line.split()[1]
    rules = [r for r in listed(family) if r.startswith(f"-A {chain} ")]
    if line in rules:
        _run([TOOLS[family], "-w", "5", "-D", chain, str(rules.index(line) + 1)])
