"""Running stack services as OS processes on free loopback ports (tests, benches, scripts)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from chaoskit.errors import PlatformError


def _python_path() -> str:
    """Make `-m chaoskit.stack` importable in the child even when chaoskit is not installed."""
    root = str(Path(__file__).resolve().parents[2])
    return os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class ServiceProcess:
    """One running `python -m chaoskit.stack SERVICE`, its address and its log file."""

    service: str
    instance: str
    port: int
    log_path: Path
    popen: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_healthy(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise PlatformError(f"{self.instance} exited with {self.popen.returncode}",
                                    hint=f"read its log {self.log_path}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise PlatformError(f"{self.instance} not healthy after {timeout}s",
                            hint=f"read its log {self.log_path}")

    def signal(self, signum: int) -> None:
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signum)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM (SIGCONT first, a frozen process cannot exit), then SIGKILL after timeout."""
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait()

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.popen.wait()


@dataclass
class ServiceFleet:
    """Starts services with a shared environment; stops every one it started."""

    log_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    processes: list[ServiceProcess] = field(default_factory=list)

    def start(self, service: str, *, instance: str | None = None, wait: bool = True,
              **env: str) -> ServiceProcess:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        instance = instance or f"{service}-{len(self.processes)}"
        full_env = {**os.environ, **self.env, **env, "PYTHONPATH": _python_path(),
                    "CHAOSKIT_LISTEN": f"127.0.0.1:{port}",
                    "CHAOSKIT_INSTANCE": instance,
                    "CHAOSKIT_NODE": env.get("CHAOSKIT_NODE", instance)}
        log_path = self.log_dir / f"{instance}.log"
        with open(log_path, "ab") as log:
            popen = subprocess.Popen([sys.executable, "-m", "chaoskit.stack", service],
                                     env=full_env, stdout=log, stderr=subprocess.STDOUT)
        process = ServiceProcess(service, instance, port, log_path, popen)
        self.processes.append(process)
        if wait:
            process.wait_healthy()
        return process

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.stop()
