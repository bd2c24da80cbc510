"""`chaoskit validate | schema | run | report | compare`: one experiment at a time."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from chaoskit.errors import SpecError

WEBHOOK_ENV = "CHAOSKIT_WEBHOOK"

RUN_EPILOG = """\
Faults are always reverted: on success, failure, guardrail abort, Ctrl-C (twice too), SIGTERM,
a driver error; a watchdog reverts them if chaoskit itself dies (`chaoskit recover` by hand).

examples:
  chaoskit run experiments/bank-latency-at-peak.yaml --dry-run       the timeline, nothing injected
  chaoskit run experiments/bank-latency-at-peak.yaml --seed 7        a reproducible run
  chaoskit run my-stack.yaml --set rate=600/s --set entry=http://127.0.0.1:8080
  chaoskit run gate.yaml --webhook https://chat.example/hooks/T0K3N  tell the team the verdict

Every run is indexed in OUT/history.sqlite (`chaoskit history`); a run whose schedule has a
window (or a freeze: schedule.freeze, $CHAOSKIT_FREEZE) is refused outside it.

exit: 0 held, 1 failed, 2 invalid input, 3 aborted by a guardrail, 4 error, 5 inconclusive
(no evidence, or chaoskit could not send what was declared), 130/143 interrupted.

"""


def add_parser(sub: Any) -> None:
    from chaoskit.cli import capacity
    p = sub.add_parser("validate", help="check experiment, system and plan files; every problem "
                       "with its line")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="a parameter's value (repeatable)")
    p.add_argument("-q", "--quiet", action="store_true", help="print problems only")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("schema", help="print the JSON Schema of experiments, systems and plans "
                       "(for editors)")
    p.add_argument("-o", "--output", help="write to a file instead of stdout")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("run", help="run an experiment and judge its hypothesis",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog=RUN_EPILOG + capacity.CAPACITY_HELP)
    p.add_argument("file", metavar="FILE")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="a parameter's value (repeatable), e.g. --set rate=300/s")
    p.add_argument("--dry-run", action="store_true",
                   help="print the timeline and check preflight; inject nothing")
    p.add_argument("--seed", type=int, help="make every random choice reproducible")
    p.add_argument("--out", default="runs", help="where run directories and the run history go "
                   "(default: runs/)")
    p.add_argument("--history", metavar="DIR",
                   help="index the run in DIR/history.sqlite (default: --out)")
    p.add_argument("--display", choices=["auto", "live", "plain", "quiet"], default="auto",
                   help="live panel in a terminal, plain lines in CI (default: auto)")
    p.add_argument("--no-report", action="store_true", help="skip the HTML report")
    p.add_argument("--webhook", metavar="URL", default=os.environ.get(WEBHOOK_ENV),
                   help=f"POST the verdict as JSON to URL, retried (default: ${WEBHOOK_ENV})")
    p.add_argument("--webhook-on", choices=["always", "not-held"], default="always",
                   help="which verdicts to POST (default: always)")
    p.add_argument("--ignore-window", metavar="REASON",
                   help="run outside the schedule's window or in a freeze, once; the reason "
                        "goes in the journal")
    p.add_argument("--metrics-port", type=int, metavar="PORT",
                   help="serve chaoskit's own metrics (phase, active faults) on 127.0.0.1:PORT")
    p.add_argument("--pushgateway", metavar="URL",
                   help="also push them to a Prometheus Pushgateway at each phase change")
    capacity.add_arguments(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("report", help="verdict table and HTML report from a journal")
    p.add_argument("journal")
    p.add_argument("--json", action="store_true", help="print the JSON summary instead")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("compare", help="A/B: the same seeded experiment on two builds",
                       description="Compare run B with run A, item by item, with a significance "
                                   "test; exit 1 when B is worse. A may be `last-passing`: the "
                                   "newest run of B's experiment that held, from the history.")
    p.add_argument("journal_a", metavar="A", help="journal.jsonl, or last-passing")
    p.add_argument("journal_b", metavar="B", help="journal.jsonl of the run under test")
    p.add_argument("--out", default=None, help="the history to look in for last-passing "
                   "(default: the folder holding B's run)")
    p.set_defaults(func=cmd_compare)


def sets_of(pairs: list[str]) -> dict[str, str]:
    from chaoskit.errors import Problem
    from chaoskit.spec.params import parse_sets
    try:
        return parse_sets(pairs)
    except ValueError as exc:
        raise SpecError([Problem("--set", 0, 0, str(exc), "write NAME=VALUE")]) from None


def cmd_validate(args: argparse.Namespace) -> int:
    from chaoskit.spec.documents import describe, load_any
    failed = 0
    for path in args.paths:
        try:
            described = describe(load_any(path, sets_of(args.set)))
        except SpecError as exc:
            failed += 1
            print(exc.render(), file=sys.stderr)
            continue
        if not args.quiet:
            print(f"{path}: ok ({described})")
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
    from chaoskit.cli import capacity
    from chaoskit.engine.window import require_allowed
    from chaoskit.spec.loader import load_experiment
    sets = sets_of(args.set)
    experiment = load_experiment(args.file, sets)
    if capacity.searching(args):
        return capacity.find_capacity(args, experiment, sets)
    overrides: list[str] = []
    steady_rate = None
    if args.at_rate is not None or args.without_faults:
        experiment, changed, steady_rate = capacity.one_step(args, experiment)
        overrides.append(changed)
    if args.dry_run:
        return _dry_run(experiment, args.seed, args.file)
    if args.ignore_window:
        overrides.append(f"window and freeze ignored: {args.ignore_window}")
    else:
        require_allowed(f"experiment {experiment.metadata.name}", experiment.schedule)
    from chaoskit.engine.display import make_display
    from chaoskit.engine.run import RunOptions, run_experiment
    from chaoskit.exporter import Observers, RunExporter
    exporter = None
    if args.metrics_port is not None or args.pushgateway:
        exporter = RunExporter(experiment.metadata.name, args.metrics_port, args.pushgateway)
    observers = Observers(make_display(experiment, args.display), exporter)
    options = RunOptions(seed=args.seed, out_dir=Path(args.out), observer=observers,
                         parameters=sets, overrides=overrides, steady_rate=steady_rate)
    try:
        outcome = run_experiment(experiment, args.file, options)
    finally:
        observers.close()
    after_run(outcome.journal, Path(args.history or args.out), args, sets)
    return outcome.exit_code


def after_run(journal: Path, out: Path, args: argparse.Namespace,
              parameters: dict[str, str]) -> None:
    """The verdict table, the report, the history and the webhook: what follows every run."""
    from chaoskit.journal import read_journal
    from chaoskit.report.summary import json_summary, print_summary
    records = read_journal(journal)
    print_summary(records)
    print(f"journal: {journal}")
    index(out, journal, parameters)  # first: the report shows this run in each item's trend
    if not args.no_report:
        print(f"report:  {write_report(journal, out)}")
    summary = json_summary(records)
    if args.webhook and (args.webhook_on == "always" or summary.get("status") != "held"):
        from chaoskit.notify import post_verdict
        print(post_verdict(args.webhook, summary).line())


def index(out: Path, journal: Path, parameters: dict[str, str]) -> None:
    """Index the run in OUT's history; a history that cannot be written costs a warning only
    (the journal is the record)."""
    from chaoskit.errors import JournalError
    from chaoskit.history import code_version, index_run
    try:
        index_run(out, journal, parameters=parameters, code_version=code_version(Path.cwd()))
    except JournalError as exc:
        print(f"warning: {exc.render()}", file=sys.stderr)


def write_report(journal: Path, history: Path | None = None) -> Path:
    from chaoskit.report.html import write_report as write
    return Path(write(journal, history))


def _dry_run(experiment: Any, seed: int | None, source: str) -> int:
    import random
    import secrets

    from chaoskit.engine import preflight
    from chaoskit.engine.faultline import plan_faults
    from chaoskit.engine.timeline import render
    from chaoskit.engine.window import refusal
    from chaoskit.platforms import platform_for
    seed = seed if seed is not None else secrets.randbelow(2**31)
    platform = platform_for(experiment.target)
    run = f"dry-run-{secrets.token_hex(3)}"
    planned = asyncio.run(plan_faults(experiment, platform, random.Random(seed), run))
    print(render(experiment, planned, seed))
    problems, _ = asyncio.run(preflight.check(experiment, platform, planned, run, source, seed))
    why = refusal(experiment.schedule)
    if why is not None:
        problems.append(f"schedule: {why}")
    for problem in problems:
        print(f"preflight: {problem}", file=sys.stderr)
    print("dry run: nothing was injected" + ("" if not problems else "; preflight FAILED"))
    return 4 if problems else 0


def cmd_report(args: argparse.Namespace) -> int:
    from chaoskit.journal import Kind, read_journal
    from chaoskit.report.summary import json_summary, print_summary
    if _first_kind(Path(args.journal)) == Kind.DAY:  # a game day's plan journal
        from chaoskit.cli.gameday import report_day
        return report_day(Path(args.journal), args.json)
    if _first_kind(Path(args.journal)) == Kind.CAPACITY:  # a capacity search's journal
        from chaoskit.cli.capacity import report_capacity
        return report_capacity(Path(args.journal), args.json)
    records = read_journal(args.journal)
    if args.json:
        print(json.dumps(json_summary(records), indent=2))
        return 0
    print_summary(records)
    print(f"report: {write_report(Path(args.journal))}")
    return 0


def _first_kind(path: Path) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return str(json.loads(handle.readline()).get("kind"))
    except (OSError, ValueError, AttributeError):
        return None  # read_journal says what is wrong with it


def cmd_compare(args: argparse.Namespace) -> int:
    from chaoskit.report.compare import compare_journals
    b = Path(args.journal_b)
    a = last_passing_of(b, args.out) if args.journal_a == "last-passing" else Path(args.journal_a)
    return int(compare_journals(a, b))


def last_passing_of(journal: Path, out: str | None) -> Path:
    """The newest run of `journal`'s experiment that held, from the history it was indexed in."""
    from chaoskit.errors import JournalError
    from chaoskit.history import last_passing
    from chaoskit.journal import header, read_journal
    head = header(read_journal(journal))
    runs = Path(out) if out else journal.resolve().parent.parent
    found = last_passing(runs, str(head.get("experiment")), exclude=str(head.get("run_id")))
    if found is None:
        raise JournalError(f"no earlier run of {head.get('experiment')} held in the history "
                           f"under {runs}/",
                           hint="run the experiment on a good build first, give --out the "
                                "folder whose history has one, or name journal A")
    print(f"baseline: the last passing run, {found}")
    return found
