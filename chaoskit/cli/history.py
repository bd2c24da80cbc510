"""`chaoskit history`: every run indexed in the output folder, with its verdicts."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser("history", help="list earlier runs with their verdicts",
                       description="Runs are indexed in OUT/history.sqlite when they end "
                                   "(experiment, seed, parameters, start, verdict, each item's "
                                   "observed value, the code version under test: "
                                   "$CHAOSKIT_CODE_VERSION or `git describe`).")
    p.add_argument("experiment", nargs="?", help="only this experiment's runs (its name)")
    p.add_argument("--out", default="runs", help="the output folder (default: runs/)")
    p.add_argument("-n", "--limit", type=int, default=20, help="the newest N runs (default 20; "
                   "0: all)")
    p.add_argument("--status", help="only runs that ended so (held, failed, aborted, ...)")
    p.add_argument("--reindex", action="store_true",
                   help="index every journal under --out first (runs made before the history)")
    p.set_defaults(func=cmd_history)


def cmd_history(args: argparse.Namespace) -> int:
    from chaoskit.history import reindex, runs
    from chaoskit.report.history import render_history
    if args.reindex:
        print(f"indexed {reindex(args.out)} runs from {args.out}/")
    rows = runs(Path(args.out), args.experiment, args.limit or None, status=args.status)
    for line in render_history(rows):
        print(line)
    return 0
