"""Entry point: `python -m chaoskit.stack SERVICE` runs one process of the payment stack."""

from __future__ import annotations

import sys
from importlib import import_module

from chaoskit.errors import ChaoskitError
from chaoskit.stack.config import StackConfig
from chaoskit.stack.serving import serve

SERVICES = ("gateway", "worker", "scheduler", "bank", "offline")
USAGE = f"usage: python -m chaoskit.stack {{{','.join(SERVICES)}}}  (configured by CHAOSKIT_*)"


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in SERVICES:
        print(USAGE, file=sys.stderr)
        return 2
    try:
        config = StackConfig.from_env()
        app = import_module(f"chaoskit.stack.{argv[0]}").build_app(config)
        serve(app, config)
    except ChaoskitError as exc:
        print(exc.render(), file=sys.stderr)
        return exc.exit_status
    if not app.state.server.started:
        return 3  # start-up failed (uvicorn logged why): the lab must see it as a crash
    return int(getattr(app.state, "exit_status", 0))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
