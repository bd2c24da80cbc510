"""Stopping and starting a user's service: signals or systemctl, a detached start, health.

A service is started again as its owner would: `systemctl start UNIT`, or its `start:` command
run by /bin/sh in a new session (setsid --fork, so it is nobody's child here), stdin
/dev/null, output appended to its log, in `cwd:` (default /) with chaoskit's environment minus
CHAOSKIT_* plus `env:`. A command that is one simple command is exec'd by the shell, so no
shell stays behind as its parent.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from chaoskit.errors import PlatformError
from chaoskit.platforms.processes import finding, procfs
from chaoskit.platforms.processes.config import ServiceConfig
from chaoskit.platforms.processes.finding import Found

_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_OPERATOR = set("();<>|&")


def simple(command: str) -> bool:
    """One simple command (no operators, no leading assignments): `exec` can replace sh."""
    if "\n" in command:
        return False
    try:
        lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        tokens = list(lexer)
    except ValueError:
        return False
    if not tokens or _ASSIGNMENT.match(tokens[0]):
        return False
    return not any(token and set(token) <= _OPERATOR for token in tokens)


def shell_argv(command: str) -> list[str]:
    return ["/bin/sh", "-c", f"exec {command}" if simple(command) else command]


def environment(service: ServiceConfig) -> dict[str, str]:
    own = {k: v for k, v in os.environ.items() if not k.startswith("CHAOSKIT_")}
    return {**own, **service.env}


def start(service: ServiceConfig, log: Path) -> dict[str, Any]:
    """Start the service (not waiting for it); what was run."""
    if service.unit:
        done = finding.systemctl("start", "--no-block", service.unit)  # wait_up waits
        if done.returncode != 0:
            raise PlatformError(f"systemctl start {service.unit} failed: {done.stderr.strip()}",
                                hint=f"see `journalctl -u {service.unit}`")
        return {"unit": service.unit, "command": f"systemctl start --no-block {service.unit}"}
    if not service.start:
        raise PlatformError("the service has no `start:` command",
                            hint="give `start:` (or `unit:`) so chaoskit can bring it back")
    if shutil.which("setsid") is None:
        raise PlatformError("setsid is not installed", hint="install util-linux")
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"--- chaoskit starts: {service.start}\n".encode())
        out.flush()
        subprocess.run(["setsid", "--fork", *shell_argv(service.start)], stdin=subprocess.DEVNULL,
                       stdout=out, stderr=subprocess.STDOUT, env=environment(service),
                       cwd=service.cwd or "/", close_fds=True, timeout=10, check=False)
    return {"command": service.start, "log": str(log)}


def wait_up(service: ServiceConfig, gone: set[int], log: Path | None) -> dict[str, Any]:
    """Wait (bounded by start_timeout) until the service is found, not as one of `gone`, and
    its health URL answers 200; what was found and how long it took."""
    started = time.monotonic()
    deadline = started + service.start_timeout
    found = finding.find(service)
    while not found.running or set(found.roots) & gone:
        if time.monotonic() > deadline:
            raise PlatformError(f"the service did not come back within "
                                f"{service.start_timeout:g}s: {found.problem or 'old pids'}"
                                f"{tail(log)}",
                                hint=f"see its log {log}" if log else "see its journal")
        time.sleep(0.05)
        found = finding.find(service)
    facts: dict[str, Any] = {"pids": list(found.roots),
                             "found_s": round(time.monotonic() - started, 3)}
    if service.health:
        facts["healthy_s"] = wait_healthy(service.health, deadline, started)
    return facts


def tail(log: Path | None, lines: int = 5) -> str:
    """The last lines of a log, to say why a start failed ('' when there is none)."""
    try:
        text = log.read_text(errors="replace") if log else ""
    except OSError:
        return ""
    last = text.strip().splitlines()[-lines:]
    return ("; its log ends: " + " | ".join(last)) if last else ""


def healthy(url: str, timeout: float = 1.0) -> bool:
    try:
        return httpx.get(url, timeout=timeout, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def wait_healthy(url: str, deadline: float, started: float) -> float:
    while not healthy(url):
        if time.monotonic() > deadline:
            raise PlatformError(f"{url} did not answer 200 in time",
                                hint="raise the service's `start_timeout:`, or see its log")
        time.sleep(0.05)
    return round(time.monotonic() - started, 3)


def kill(service: ServiceConfig, found: Found) -> list[int]:
    """SIGKILL the whole tree (`systemctl kill` for a unit: all of its cgroup)."""
    if service.unit:
        finding.systemctl("kill", "--signal=SIGKILL", service.unit)
    left = procfs.kill_tree(list(found.pids))
    if left:
        raise PlatformError(f"pids {left} survived SIGKILL",
                            hint="they may be stuck in the kernel (state D); check `ps`")
    return list(found.pids)


def stop(service: ServiceConfig, found: Found) -> dict[str, Any]:
    """SIGTERM the roots (`systemctl stop` for a unit), wait stop_timeout for the tree to
    exit, then SIGKILL what is left."""
    started = time.monotonic()
    if service.unit:
        finding.systemctl("stop", "--no-block", service.unit)
    else:
        procfs.send(found.roots, signal.SIGCONT)  # a stopped process cannot handle SIGTERM
        procfs.send(found.roots, signal.SIGTERM)
    left = procfs.wait_gone(found.pids, service.stop_timeout)
    if left and service.unit:
        finding.systemctl("kill", "--signal=SIGKILL", service.unit)
    if left:
        procfs.kill_tree(left)
    return {"stopped": list(found.pids), "graceful": not left, "killed_after_timeout": left,
            "stop_s": round(time.monotonic() - started, 3)}
