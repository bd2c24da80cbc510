"""The `chaoskit` command: validate, run, recover, report, compare, schema, lab."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from chaoskit.errors import ChaoskitError, SpecError

EPILOG = """\
exit status: 0 hypothesis held, 1 hypothesis failed, 2 invalid input,
             3 aborted by a guardrail, 4 chaoskit or environment error,
             130/143 interrupted by SIGINT/SIGTERM (faults reverted first)

a first look:
  chaoskit lab up                       start the local payment lab
  chaoskit validate experiments/*.yaml  check experiments, every problem with its line
  chaoskit run experiments/bank-latency-at-peak.yaml --dry-run   show the timeline
  chaoskit run experiments/bank-latency-at-peak.yaml --seed 7    run it, get a verdict
  chaoskit report runs/<run>/journal.jsonl                       rebuild the HTML report
"""


def _load(path: str) -> Any:
    from chaoskit.spec.loader import load_experiment
    return load_experiment(path)


def cmd_validate(args: argparse.Namespace) -> int:
    failed = 0
    for path in args.paths:
        try:
            experiment = _load(path)
        except SpecError as exc:
            failed += 1
            print(exc.render(), file=sys.stderr)
            continue
        if not args.quiet:
            print(f"{path}: ok ({experiment.metadata.name}: {len(experiment.faults)} faults, "
                  f"{len(experiment.hypothesis)} hypothesis items)")
    return 2 if failed else 0


def cmd_schema(args: argparse.Namespace) -> int:
    from chaoskit.spec.schema import json_schema
    text = json.dumps(json_schema(), indent=2)
    if args.output:
        Path(args.output).write_text(text + "\n")
    else:
        print(text)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    experiment = _load(args.file)
    if args.dry_run:
        return _dry_run(experiment, args.seed, args.file)
    from chaoskit.engine.display import make_display
    from chaoskit.engine.run import RunOptions, run_experiment
    from chaoskit.exporter import Observers, RunExporter
    exporter = None
    if args.metrics_port is not None or args.pushgateway:
        exporter = RunExporter(experiment.metadata.name, args.metrics_port, args.pushgateway)
    observers = Observers(make_display(experiment, args.display), exporter)
    options = RunOptions(seed=args.seed, out_dir=Path(args.out), observer=observers)
    try:
        outcome = run_experiment(experiment, args.file, options)
    finally:
        observers.close()
    _after_run(outcome.journal, args)
    return outcome.exit_code


def _after_run(journal: Path, args: argparse.Namespace) -> None:
    from chaoskit.journal import read_journal
    from chaoskit.report.summary import print_summary
    print_summary(read_journal(journal))
    print(f"journal: {journal}")
    if not args.no_report:
        report = _write_report(journal)
        if report:
            print(f"report:  {report}")


def _write_report(journal: Path) -> Path | None:
    try:
        from chaoskit.report.html import write_report
    except ImportError:
        return None
    return Path(write_report(journal))


def _dry_run(experiment: Any, seed: int | None, source: str) -> int:
    import random
    import secrets

    from chaoskit.engine import preflight
    from chaoskit.engine.faultline import plan_faults
    from chaoskit.engine.timeline import render
    from chaoskit.platforms import platform_for
    seed = seed if seed is not None else secrets.randbelow(2**31)
    platform = platform_for(experiment.target)
    run = f"dry-run-{secrets.token_hex(3)}"
    planned = asyncio.run(plan_faults(experiment, platform, random.Random(seed), run))
    print(render(experiment, planned, seed))
    problems, _ = asyncio.run(preflight.check(experiment, platform, planned, run, source, seed))
    for problem in problems:
        print(f"preflight: {problem}", file=sys.stderr)
    print("dry run: nothing was injected" + ("" if not problems else "; preflight FAILED"))
    return 4 if problems else 0


def cmd_recover(args: argparse.Namespace) -> int:
    from chaoskit.engine.recovery import RunAlive, recover_journal
    if args.cluster:  # no journal needed: what chaoskit changed is marked on the cluster
        from chaoskit.platforms.kubernetes.recovery import recover_command
        return recover_command(args.namespace, args.context, args.run)
    journals = [Path(args.journal)] if args.journal else _journals_to_recover(Path(args.out))
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


def _journals_to_recover(runs: Path) -> list[Path]:
    """Every run under `runs` that never closed, or closed with faults or residue left."""
    from chaoskit.journal import needs_recovery, tail_result
    journals = sorted(runs.glob("*/journal.jsonl"), key=lambda p: p.stat().st_mtime,
                      reverse=True)
    return [j for j in journals if needs_recovery(tail_result(j))]


def cmd_report(args: argparse.Namespace) -> int:
    from chaoskit.journal import read_journal
    from chaoskit.report.summary import json_summary, print_summary
    records = read_journal(args.journal)
    if args.json:
        print(json.dumps(json_summary(records), indent=2))
        return 0
    print_summary(records)
    report = _write_report(Path(args.journal))
    if report:
        print(f"report: {report}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from chaoskit.report.compare import compare_journals
    return int(compare_journals(Path(args.journal_a), Path(args.journal_b)))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chaoskit", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Chaos experiments for payment stacks: inject latency, node loss and traffic "
                    "spikes, and check that refunds and final payments stay on schedule.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("validate", help="check experiment files; every problem with its line")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("-q", "--quiet", action="store_true", help="print problems only")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("schema", help="print the experiment JSON Schema (for editors)")
    p.add_argument("-o", "--output", help="write to a file instead of stdout")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("run", help="run an experiment and judge its hypothesis",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="Faults are always reverted: on success, failure, guardrail abort, "
                              "Ctrl-C (twice too), SIGTERM, a driver error; a watchdog reverts "
                              "them if chaoskit itself dies.")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--dry-run", action="store_true",
                   help="print the timeline and check preflight; inject nothing")
    p.add_argument("--seed", type=int, help="make every random choice reproducible")
    p.add_argument("--out", default="runs", help="where run directories go (default: runs/)")
    p.add_argument("--display", choices=["auto", "live", "plain", "quiet"], default="auto",
                   help="live panel in a terminal, plain lines in CI (default: auto)")
    p.add_argument("--no-report", action="store_true", help="skip the HTML report")
    p.add_argument("--metrics-port", type=int, metavar="PORT",
                   help="serve chaoskit's own metrics (phase, active faults) on 127.0.0.1:PORT")
    p.add_argument("--pushgateway", metavar="URL",
                   help="also push them to a Prometheus Pushgateway at each phase change")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("recover", help="revert what a dead run left applied",
                       description="Revert what a run left applied, from its journal: runs "
                                   "that never closed (chaoskit was killed) and runs that "
                                   "closed with a fault not reverted or residue found. A live "
                                   "run is never touched without --force.")
    p.add_argument("journal", nargs="?",
                   help="journal.jsonl (default: every run under --out that needs it)")
    p.add_argument("--force", action="store_true",
                   help="recover even a run whose lease is alive (only if it is hung)")
    p.add_argument("--out", default="runs", help="where to look for runs (default: runs/)")
    p.add_argument("--cluster", action="store_true",
                   help="revert what chaoskit marked on the Kubernetes cluster (no journal)")
    p.add_argument("--namespace", action="append", default=[], metavar="NS",
                   help="with --cluster: a namespace to clean (repeatable; default: context's)")
    p.add_argument("--context", help="with --cluster: kubeconfig context (default: current)")
    p.add_argument("--run", help="with --cluster: only this run id's changes")
    p.set_defaults(func=cmd_recover)

    p = sub.add_parser("report", help="verdict table and HTML report from a journal")
    p.add_argument("journal")
    p.add_argument("--json", action="store_true", help="print the JSON summary instead")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("compare", help="A/B: the same seeded experiment on two builds")
    p.add_argument("journal_a")
    p.add_argument("journal_b")
    p.set_defaults(func=cmd_compare)

    _add_plugin_commands(sub)
    return parser


def _add_plugin_commands(sub: Any) -> None:
    try:
        from chaoskit.lab.commands import add_parser
    except ImportError:
        return
    add_parser(sub)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ChaoskitError as exc:
        print(exc.render(), file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        print(f"internal error: {exc!r}\n  hint: rerun with --debug and report it",
              file=sys.stderr)
        return 4


if __name__ == "__main__":
    sys.exit(main())
