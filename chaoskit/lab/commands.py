"""The `chaoskit lab` command: up, down, status and logs of a local lab."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chaoskit.errors import ChaoskitError, PlatformError
from chaoskit.lab import lifecycle as lab
from chaoskit.lab import state, status
from chaoskit.lab.runtime import PROCESSES, RUNTIMES
from chaoskit.lab.topology import LabOptions

_EPILOG = """\
examples:
  chaoskit lab up                      3 nodes, embedded PostgreSQL, time scale 60
  chaoskit lab up --runtime containers every node a container of the stack image (`make image`)
  chaoskit lab up --nodes 4 --name peak --time-scale 120
  chaoskit lab up --postgres-url postgresql://me@127.0.0.1:5432/ledger
  chaoskit lab status --json           for scripts
  chaoskit lab logs gateway            every gateway's log (or one: gateway-node-2)
  chaoskit lab down --name peak        stop everything, also after a crashed `lab up`

State lives in $CHAOSKIT_STATE_DIR/labs/NAME (default ~/.local/state/chaoskit/labs/NAME).
Runtime processes (the default): as root every node is a network namespace on a lab bridge (a
free /24 of 198.18.0.0/15) with its own cgroups; without root nodes are process groups on
loopback and `isolate` is unavailable. Runtime containers: every node is a container of the
payment stack's image (built by `make image`) on an internal lab network of the container
engine (a free /24 of 198.18.0.0/15; the engine is $DOCKER_HOST, Docker's or Podman's socket,
else chaoskit's own Podman service). Either way nodes reach PostgreSQL and the banks only
through Toxiproxy proxies on the bridge's host address (`lab status` lists them); HAProxy on
127.0.0.1 reaches the gateways on their node addresses.
"""


def add_parser(subparsers: Any) -> None:
    """Add `lab` and its subcommands to the chaoskit CLI."""
    parser = subparsers.add_parser("lab", help="run the payment stack locally on emulated nodes",
                                   description=__doc__, epilog=_EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest="lab_command", required=True, metavar="COMMAND")
    _add_up(verbs)
    _add(verbs, "down", "stop everything the lab started", _down)
    show = _add(verbs, "status", "nodes, processes, addresses, proxies and health", _status)
    show.add_argument("--json", action="store_true", help="machine-readable output")
    logs = _add(verbs, "logs", "show the logs of lab processes", _logs)
    logs.add_argument("service", nargs="?", help="a service (gateway) or process (gateway-node-1)")
    logs.add_argument("-n", "--lines", type=int, default=50, help="last N lines of each (0: all)")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")


def _add(verbs: Any, name: str, text: str, func: Callable[[argparse.Namespace], int]) -> Any:
    sub = verbs.add_parser(name, help=text, description=text)
    sub.add_argument("--name", default="default", help="lab name or state directory")
    sub.set_defaults(func=_guarded(func))
    return sub


def _add_up(verbs: Any) -> None:
    up = _add(verbs, "up", "start a lab and wait until it is healthy", _up)
    up.add_argument("--nodes", type=int, default=3, help="number of nodes (>= 2, default 3)")
    up.add_argument("--postgres-url", help="use this PostgreSQL instead of an embedded one")
    up.add_argument("--time-scale", type=float, default=60.0,
                    help="scenario seconds per real second (default 60)")
    up.add_argument("--runtime", choices=RUNTIMES, default=PROCESSES,
                    help="what a node is: host processes (default) or a container")
    up.add_argument("--mode", choices=("auto", "netns", "process"), default="auto",
                    help="processes runtime: netns nodes (root) or process groups on loopback")
    up.add_argument("--image", help="containers runtime: the stack image (default: the one "
                                     "`make image` builds from these sources)")
    up.add_argument("--engine", help="containers runtime: Docker Engine API URL (default: "
                                      "$DOCKER_HOST, else discovered)")
    up.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                    help="extra environment for the stack, e.g. CHAOSKIT_LEASE_TTL=1s")
    up.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for health")


def _guarded(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except ChaoskitError as exc:
            print(exc.render(), file=sys.stderr)
            return exc.exit_status
    return run


def _parse_env(pairs: list[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise PlatformError(f"--env {pair!r} is not KEY=VALUE",
                                hint="write e.g. --env CHAOSKIT_LEASE_TTL=1s")
        env[key] = value
    return env


def _up(args: argparse.Namespace) -> int:
    options = LabOptions(name=args.name, nodes=args.nodes, postgres_url=args.postgres_url,
                         time_scale=args.time_scale, mode=args.mode, env=_parse_env(args.env),
                         timeout=args.timeout, runtime=args.runtime, image=args.image,
                         engine=args.engine)
    started, took = lab.up(options)
    print(status.table(status.collect(started)))
    print(f"up in {took:.1f}s; stop it with `chaoskit lab down --name {args.name}`")
    return 0


def _down(args: argparse.Namespace) -> int:
    left = lab.down(args.name)
    if left:
        print("left behind:\n  " + "\n  ".join(left), file=sys.stderr)
        return 4
    print(f"lab {args.name} is down; nothing left behind")
    return 0


def _status(args: argparse.Namespace) -> int:
    snapshot = status.collect(state.load(state.lab_dir(args.name)))
    print(json.dumps(snapshot, indent=2) if args.json else status.table(snapshot))
    return 0


def _logs(args: argparse.Namespace) -> int:
    current = state.load(state.lab_dir(args.name))
    chosen = [p for p in current.processes
              if args.service in (None, p.id, p.service, p.node)]
    if not chosen:
        raise PlatformError(f"no lab process matches '{args.service}'",
                            hint="known: " + ", ".join(p.id for p in current.processes))
    for record in chosen:
        print(f"==> {record.id} ({record.log}) <==")
        print(_tail(Path(record.log), args.lines), end="")
    if args.follow:
        _follow([Path(p.log) for p in chosen])
    return 0


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log yet)\n"
    kept = text.splitlines(keepends=True)
    return "".join(kept[-lines:] if lines else kept)


def _follow(paths: list[Path]) -> None:
    """Print lines appended to any of the logs until interrupted."""
    offsets = {p: p.stat().st_size if p.exists() else 0 for p in paths}
    try:
        while True:
            for path in paths:
                if path.exists() and path.stat().st_size > offsets[path]:
                    with open(path, errors="replace") as handle:
                        handle.seek(offsets[path])
                        chunk = handle.read()
                        offsets[path] = handle.tell()
                    sys.stdout.write("".join(f"{path.stem}| {line}\n"
                                             for line in chunk.splitlines()))
                    sys.stdout.flush()
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass


def main(argv: list[str] | None = None) -> int:
    """`python -m chaoskit.lab.commands up ...`: the lab command on its own."""
    parser = argparse.ArgumentParser(prog="chaoskit")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["lab", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
