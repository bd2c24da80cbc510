"""`python -m tests.otherpay api|worker|bank`: run one otherpay service until SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import sys

import psycopg

from tests.otherpay import runtime
from tests.otherpay.config import ConfigError, Settings

USAGE = "usage: python -m tests.otherpay api|worker|bank  (configured by OTHERPAY_* variables)"


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in ("api", "worker", "bank"):
        print(USAGE, file=sys.stderr)
        return 2
    service = argv[0]
    runtime.setup_logging(service)
    try:
        settings = Settings.from_env(service)
    except ConfigError as exc:
        logging.getLogger("otherpay").error("bad configuration: %s", exc)
        return runtime.EXIT_BAD_CONFIG
    if service == "api":
        from tests.otherpay.api import run
    elif service == "worker":
        from tests.otherpay.worker import run
    else:
        from tests.otherpay.bank import run
    try:
        asyncio.run(run(settings))
    except (psycopg.Error, OSError) as exc:
        logging.getLogger("otherpay").error("start-up failed: %s", exc)
        return runtime.EXIT_STARTUP_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
