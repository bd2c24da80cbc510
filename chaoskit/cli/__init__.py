"""The `chaoskit` command. Each family of subcommands lives in its own module and adds itself
with `add_parser(sub)`: experiments (validate, schema, run, report, compare), recover, history,
schedule, gameday, and the lab."""

from __future__ import annotations

import argparse
import sys

from chaoskit.errors import ChaoskitError

EPILOG = """\
exit status: 0 hypothesis held, 1 hypothesis failed, 2 invalid input,
             3 aborted by a guardrail, 4 chaoskit or environment error,
             5 inconclusive (no evidence, or chaoskit could not drive what was declared),
             130/143 interrupted by SIGINT/SIGTERM (faults reverted first)

a first look:
  chaoskit lab up                       start the local payment lab
  chaoskit validate experiments/*.yaml  check experiments, every problem with its line
  chaoskit run experiments/bank-latency-at-peak.yaml --dry-run   show the timeline
  chaoskit run experiments/bank-latency-at-peak.yaml --seed 7    run it, get a verdict
  chaoskit history                      every run here, with its verdict
  chaoskit gameday experiments/plans/rehearsal-8pm.yaml --dry-run   a whole game day's plan
"""


def build_parser() -> argparse.ArgumentParser:
    from chaoskit.cli import experiment, gameday, history, recover, schedule
    parser = argparse.ArgumentParser(
        prog="chaoskit", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Chaos experiments for payment stacks: inject latency, node loss and traffic "
                    "spikes, and check that refunds and final payments stay on schedule.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    experiment.add_parser(sub)
    gameday.add_parser(sub)
    recover.add_parser(sub)
    history.add_parser(sub)
    schedule.add_parser(sub)
    _add_lab(sub)
    return parser


def _add_lab(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    try:  # the lab needs the optional lab dependencies
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
