"""A lab node container's init: runs the node's stack services; when one ends, the node ends.

    python -m chaoskit.lab.containers.supervisor      (CHAOSKIT_NODE_SERVICES: [{id, service,
                                                        env}], CHAOSKIT_LOG_DIR: where logs go)

Each service is `python -m chaoskit.stack SERVICE` with its own environment, its output appended
to `<log dir>/<id>.log`, run as the image's `payments` user (uid 10001) when the supervisor is
root and that user exists. SIGTERM or SIGINT is passed on to every service; a service that
exits on its own takes the others down (SIGTERM, SIGKILL after a grace), so a node is whole or
gone, as a machine is: the engine then shows the container exited. The standard library only:
it runs in the image.
"""

from __future__ import annotations

import json
import os
import pwd
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SERVICES_ENV = "CHAOSKIT_NODE_SERVICES"
LOG_DIR_ENV = "CHAOSKIT_LOG_DIR"
SERVICE_USER = "payments"
GRACE = 4.0
POLL = 0.1


def say(text: str) -> None:
    print(f"supervisor: {text}", file=sys.stderr, flush=True)


def _output(log_dir: str, ident: str) -> Any:
    """The service's log file (append), or our own stderr when the directory is not there."""
    try:
        return open(Path(log_dir) / f"{ident}.log", "ab")  # noqa: SIM115 - the child keeps it
    except OSError:
        return None


def _service_user() -> dict[str, Any]:
    """Popen's user/group arguments: the services never run as root."""
    if os.geteuid() != 0:
        return {}
    try:
        user = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        return {}
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def start(spec: dict[str, Any], log_dir: str) -> subprocess.Popen[bytes]:
    out = _output(log_dir, spec["id"])
    drop = _service_user()
    try:
        return subprocess.Popen(  # type: ignore[call-overload,no-any-return]
            [sys.executable, "-m", "chaoskit.stack", spec["service"]],
            env={**os.environ, **spec["env"]}, stdin=subprocess.DEVNULL,
            stdout=out or sys.stderr, stderr=subprocess.STDOUT, **drop)
    finally:
        if out is not None:
            out.close()


def stop_all(children: dict[int, str], sig: int = signal.SIGTERM) -> None:
    for pid in children:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            continue


def reap(children: dict[int, str], until: float) -> None:
    """Collect exited services (and any orphan: we are pid 1) until none is left or `until`."""
    while children and time.monotonic() < until:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            children.clear()
            return
        if pid:
            children.pop(pid, None)
        else:
            time.sleep(0.05)


def main() -> int:
    specs = json.loads(os.environ.get(SERVICES_ENV) or "[]")
    if not specs:
        say(f"{SERVICES_ENV} names no service")
        return 2
    log_dir = os.environ.get(LOG_DIR_ENV, "/var/log/chaoskit")
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _frame: stopping.append(signum))
    signal.signal(signal.SIGINT, lambda signum, _frame: stopping.append(signum))
    # the Popen objects are kept: one dropped while its child runs would be reaped by
    # subprocess's own clean-up, and its exit never seen here
    started = [(start(spec, log_dir), spec["id"]) for spec in specs]
    children = {process.pid: ident for process, ident in started}
    say(f"started {', '.join(children.values())}")
    status = 0
    while not stopping:  # polled: a signal handler does not interrupt a blocking waitpid
        try:
            pid, raw = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if not pid:
            time.sleep(POLL)
        elif pid in children:
            status = os.waitstatus_to_exitcode(raw)
            say(f"{children.pop(pid)} exited ({status}): stopping the node")
            break
    stop_all(children)
    reap(children, time.monotonic() + GRACE)
    stop_all(children, signal.SIGKILL)
    reap(children, time.monotonic() + GRACE)
    return 0 if stopping else (status or 1)


if __name__ == "__main__":
    sys.exit(main())
