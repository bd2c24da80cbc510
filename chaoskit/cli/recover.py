"""`chaoskit recover`: revert what a dead run left applied, from its journal or, without one,
from the marks chaoskit leaves on a cluster, a container engine or this machine's processes."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

EPILOG = """\
examples:
  chaoskit recover                         every run under runs/ that needs it
  chaoskit recover runs/<run>/journal.jsonl
  chaoskit recover --cluster --namespace payments        no journal: chaoskit's marks on the cluster
  chaoskit recover --containers                          labelled leftovers on the container engine
  chaoskit recover --processes                           firewall rules, cgroups, stopped services
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser("recover", help="revert what a dead run left applied",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
                       description="Revert what a run left applied, from its journal: runs "
                                   "that never closed (chaoskit was killed) and runs that "
                                   "closed with a fault not reverted or residue found. A live "
                                   "run is never touched without --force.")
    p.add_argument("journal", nargs="?",
                   help="journal.jsonl (default: every run under --out that needs it)")
    p.add_argument("--force", action="store_true",
                   help="recover even a run whose lease is alive (only if it is hung)")
    p.add_argument("--out", default="runs", help="where to look for runs (default: runs/)")
    p.add_argument("--run", help="with --cluster/--containers/--processes: only this run's")
    where = p.add_argument_group("without a journal")
    where.add_argument("--cluster", action="store_true",
                       help="revert what chaoskit marked on the Kubernetes cluster")
    where.add_argument("--namespace", action="append", default=[], metavar="NS",
                       help="with --cluster: a namespace to clean (repeatable; default: the "
                            "context's)")
    where.add_argument("--context", help="with --cluster: kubeconfig context (default: current)")
    where.add_argument("--containers", action="store_true",
                       help="revert chaoskit's labelled changes on the container engine (paused, "
                            "disconnected, added or batch containers)")
    where.add_argument("--engine", metavar="URL",
                       help="with --containers: the Docker Engine API (default: $DOCKER_HOST, "
                            "then Podman's socket)")
    where.add_argument("--processes", action="store_true",
                       help="revert the processes platform's changes on this machine (firewall "
                            "rules, frozen or moved processes, stopped services, batch work)")
    where.add_argument("--state-dir", metavar="DIR",
                       help="with --processes: its state folder (default: the platform's)")
    p.set_defaults(func=cmd_recover)


def cmd_recover(args: argparse.Namespace) -> int:
    if args.cluster:
        from chaoskit.platforms.kubernetes.recovery import recover_command
        return recover_command(args.namespace, args.context, args.run)
    if args.containers:
        from chaoskit.platforms.containers.recovery import recover_containers
        report = recover_containers(args.engine, args.run)
        for line in report.lines():
            print(line)
        return 0 if report.clean else 4
    if args.processes:
        from chaoskit.platforms.processes.recovery import recover_processes
        done = recover_processes(args.run, args.state_dir)
        for line in done:
            print(f"undone: {line}")
        print("processes: nothing of chaoskit's is left" if not done else
              f"processes: {len(done)} change(s) undone")
        return 0
    return recover_journals(args)


def recover_journals(args: argparse.Namespace) -> int:
    from chaoskit.engine.recovery import RunAlive, recover_journal
    journals = [Path(args.journal)] if args.journal else journals_to_recover(Path(args.out))
    if not journals:
        print(f"nothing to recover under {args.out}/: every run closed with its faults "
              "reverted and a clean residue audit")
        return 0
    clean = True
    for journal in journals:
        try:
            report = asyncio.run(recover_journal(journal, "chaoskit recover", force=args.force))
        except RunAlive as exc:
            print(exc.render(), file=sys.stderr)
            clean = False
            continue
        for line in report.lines():
            print(line)
        clean = clean and report.clean
    return 0 if clean else 4


def journals_to_recover(runs: Path) -> list[Path]:
    """Every run under `runs` (a game day's steps too) that never closed, or closed with faults
    or residue left."""
    from chaoskit.journal import needs_recovery, tail_result
    found = [*runs.glob("*/journal.jsonl"), *runs.glob("*/steps/*/*/journal.jsonl")]
    journals = sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)
    return [j for j in journals if needs_recovery(tail_result(j))]
