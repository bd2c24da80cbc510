"""The `target:` fields of the processes platform: services, how to find and restart each."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from chaoskit.platforms.abilities import PlatformConfig
from chaoskit.spec.units import PositiveDuration

SERVICE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"


class ServiceConfig(BaseModel):
    """One of the user's services: a node. Found by exactly one of pidfile, command, unit."""

    model_config = ConfigDict(extra="forbid")

    pidfile: str | None = Field(default=None, description=(
        "pid file the service writes: its process (and its children) is the node"))
    command: str | None = Field(default=None, description=(
        "regular expression searched in /proc/*/cmdline (arguments joined by spaces), as "
        "`pgrep -f` does: the matching process trees are the node"))
    count: int = Field(default=1, ge=1, description=(
        "command: how many separate process trees the pattern must match (more or fewer "
        "is refused at preflight)"))
    unit: str | None = Field(default=None, description=(
        "systemd unit (e.g. otherpay-worker.service): its main process tree is the node, "
        "and it is started again with `systemctl start`"))
    start: str | None = Field(default=None, description=(
        "shell command that starts the service again (run detached with setsid, stdin "
        "/dev/null, output appended to `log`); not needed with `unit`"))
    cwd: str | None = Field(default=None, description="working directory of `start` (default /)")
    env: dict[str, str] = Field(default_factory=dict, description=(
        "environment added to chaoskit's own (without CHAOSKIT_* variables) for `start`"))
    log: str | None = Field(default=None, description=(
        "file the started service's output is appended to (default: <state_dir>/logs/"
        "<service>.log)"))
    health: str | None = Field(default=None, description=(
        "URL answering 200 when the service is healthy: a restarted node is back then"))
    metrics: str | None = Field(default=None, description="the service's /metrics URL")
    stop_timeout: PositiveDuration = Field(default=10.0, description=(
        "node-loss `stop`: how long the service gets after SIGTERM before SIGKILL"))
    start_timeout: PositiveDuration = Field(default=30.0, description=(
        "how long a restart may take until the service is found and its health answers 200"))

    @model_validator(mode="after")
    def _found_one_way(self) -> ServiceConfig:
        ways = [w for w in ("pidfile", "command", "unit") if getattr(self, w)]
        if len(ways) != 1:
            raise ValueError("give exactly one of `pidfile`, `command` or `unit` "
                             f"(got {', '.join(ways) or 'none'})")
        if self.command is not None:
            try:
                re.compile(self.command)
            except re.error as exc:
                raise ValueError(f"`command` is not a regular expression: {exc}") from None
        return self

    @property
    def found_by(self) -> str:
        if self.pidfile:
            return f"pidfile {self.pidfile}"
        if self.unit:
            return f"unit {self.unit}"
        return f"command /{self.command}/"


class ProcessesConfig(PlatformConfig):
    services: dict[str, ServiceConfig] = Field(min_length=1, description=(
        "name -> how to find and restart it; each service is a node named by its key"))
    state_dir: str | None = Field(default=None, description=(
        "where chaoskit keeps what it changed (for revert in another process) and the logs "
        "of restarted services (default: /run/chaoskit/processes as root, else a directory "
        "under $XDG_RUNTIME_DIR or /tmp)"))

    @model_validator(mode="after")
    def _names(self) -> ProcessesConfig:
        bad = [n for n in self.services if not re.match(SERVICE_NAME, n)]
        if bad:
            raise ValueError(f"service names must match {SERVICE_NAME} (bad: {', '.join(bad)})")
        return self


def default_state_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/run/chaoskit/processes")
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(base) / f"chaoskit-processes-{os.geteuid()}"


def safe(text: str) -> str:
    """A run id or tag as a name for cgroups, files and iptables comments."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", text)[:64] or "-"
