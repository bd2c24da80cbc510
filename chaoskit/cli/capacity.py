"""`chaoskit run FILE --find-capacity` (the search), `--at-rate RATE` and `--without-faults`
(one step of it), and `chaoskit report search.jsonl`."""

from __future__ import annotations

import argparse
import json
import secrets
from pathlib import Path

from chaoskit.errors import Problem, SpecError
from chaoskit.spec.models import Experiment

STEP_OVERHEAD = 3.0  # seconds a step's own process takes beyond its phases (start, rollback)

CAPACITY_HELP = """\
capacity search (--find-capacity, with a `capacity:` section in the experiment):
  Each step is its own `chaoskit run FILE --at-rate RATE` (its own journal, lease, watchdog and
  guardrails): baseline at the declared opening rate, then the load held at RATE for
  capacity.step with every fault active, then recover. bisect (default) grows the rate until a
  step fails, then halves the gap down to capacity.resolution; steps climbs by the resolution.
  OUT/<experiment>-capacity-<time>/ holds search.jsonl, report.html (each measure against the
  rate) and steps/<n>-<search>-<rate>/ (each step's run).
  exit: 0 the capacity was found (at least capacity.required_rate when declared), 1 the
  hypothesis failed at the required rate (or already at `from`), 3 a guardrail tripped (the
  search stops there), 4 an error, 5 inconclusive (a step could not be judged, e.g. chaoskit
  could not send the rate: never reported as the system's capacity), 130/143 interrupted.

  chaoskit run experiments/capacity-bank-slow-leader-lost.yaml --find-capacity --seed 7
  chaoskit run experiments/capacity-bank-slow-leader-lost.yaml --find-capacity --dry-run
  chaoskit run FILE --find-capacity --compare-without-faults   what the faults cost
  chaoskit run FILE --at-rate 400/s                            one step: does it hold at 400/s?
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from chaoskit.spec.units import parse_rate

    def rate(text: str) -> float:
        try:
            value = parse_rate(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        if value <= 0:
            raise argparse.ArgumentTypeError("the rate must be above zero")
        return value

    p.add_argument("--find-capacity", action="store_true",
                   help="search the highest arrival rate at which the hypothesis holds with "
                        "the faults active (the experiment's capacity: section)")
    p.add_argument("--compare-without-faults", action="store_true",
                   help="also search without the faults: what they cost (implies "
                        "--find-capacity)")
    p.add_argument("--at-rate", type=rate, metavar="RATE",
                   help="one step: the load held at RATE (e.g. 400/s) for capacity.step (or "
                        "the load's duration) with every fault active throughout")
    p.add_argument("--without-faults", action="store_true",
                   help="run without the experiment's faults (a control run)")


def searching(args: argparse.Namespace) -> bool:
    return bool(args.find_capacity or args.compare_without_faults)


def one_step(args: argparse.Namespace, experiment: Experiment
             ) -> tuple[Experiment, str, float | None]:
    """The experiment of `--at-rate` / `--without-faults`, what was changed (for the journal
    header) and the steady phases' rate."""
    from chaoskit.engine.capacity_step import (
        at_rate,
        opening_rate,
        step_note,
        step_seconds,
        without_faults,
    )
    if args.seed is None:  # the opening rate of a seeded profile needs the seed now
        args.seed = secrets.randbelow(2**31)
    changed, notes, steady = experiment, [], None
    if args.without_faults:
        changed = without_faults(changed)
        notes.append(f"run without its faults ({len(experiment.faults)} declared)")
    if args.at_rate is not None:
        steady = opening_rate(experiment, args.seed) if experiment.load else None
        changed = at_rate(changed, args.at_rate, args.file)
        notes.append(step_note(args.at_rate, step_seconds(experiment), len(changed.faults),
                               steady or 0.0))
    return changed, "; ".join(notes), steady


def find_capacity(args: argparse.Namespace, experiment: Experiment,
                  sets: dict[str, str]) -> int:
    if experiment.capacity is None:
        raise SpecError([Problem(args.file, 1, 1, "--find-capacity: the experiment has no "
                                 "capacity: section (nothing implicit sets how much load a "
                                 "search may send)", "add e.g. capacity: {from: 50/s, to: "
                                 "800/s, resolution: 25/s, step: 30s}")])
    if args.at_rate is not None or args.without_faults:
        raise SpecError([Problem("--find-capacity", 0, 0, "--at-rate and --without-faults "
                                 "are single steps; the search runs its own",
                                 "drop them (--compare-without-faults adds the search "
                                 "without faults)")])
    compare = args.compare_without_faults or experiment.capacity.compare_without_faults
    if args.dry_run:
        return dry_run(args, experiment, compare)
    from chaoskit.engine.capacity import CapacitySearch, SearchOptions
    from chaoskit.engine.window import require_allowed
    if not args.ignore_window:
        require_allowed(f"experiment {experiment.metadata.name}", experiment.schedule)
    options = SearchOptions(seed=args.seed, out=Path(args.out), sets=sets, compare=compare,
                            report=not args.no_report, ignore_window=args.ignore_window)
    search = CapacitySearch(experiment, args.file, options, say)
    say(f"capacity search {search.search_id}: seed {search.seed}, folder {search.dir}")
    outcome = search.run()
    return after_search(outcome.journal, args)


def say(line: str) -> None:
    print(line, flush=True)


def after_search(journal: Path, args: argparse.Namespace) -> int:
    from chaoskit.journal import Kind, read_journal
    from chaoskit.report.capacity import json_summary, print_search
    records = read_journal(journal, first=Kind.CAPACITY)
    print_search(records)
    print(f"journal: {journal}")
    if not args.no_report:
        from chaoskit.report.capacity_html import write_capacity_report
        print(f"report:  {write_capacity_report(journal)}")
    summary = json_summary(records)
    if args.webhook and (args.webhook_on == "always" or summary.get("status") != "held"):
        from chaoskit.notify import post_verdict
        text = (f"chaoskit: {summary['experiment']} capacity search "
                f"{str(summary['status']).upper()} (exit {summary['exit_code']}): "
                f"{summary['answer']}")
        print(post_verdict(args.webhook, {**summary, "run_id": summary["search_id"],
                                          "text": text}).line())
    return int(summary.get("exit_code") or 0)


def dry_run(args: argparse.Namespace, experiment: Experiment, compare: bool) -> int:
    """The search's plan (first rate, most steps, how long) and one step's dry run."""
    from chaoskit.cli.experiment import _dry_run
    from chaoskit.engine.capacity_rules import Rules, most_steps, next_rate
    from chaoskit.engine.capacity_step import at_rate
    from chaoskit.spec.units import format_duration
    spec = experiment.capacity
    assert spec is not None
    rules = Rules.of(spec)
    first = next_rate(rules, []) or spec.from_
    steps = most_steps(rules)
    each = (STEP_OVERHEAD + experiment.phases.baseline + spec.step + experiment.phases.recover
            + spec.cooldown)
    total = steps * each * (2 if compare else 1)
    print(f"capacity search: {spec.search} from {spec.from_:g}/s to {spec.to:g}/s, resolution "
          f"{spec.resolution:g}/s; first step {first:g}/s"
          + (" (the required rate)" if spec.required_rate is not None else ""))
    twice = " per search, twice (with and without the faults)" if compare else ""
    print(f"at most {steps} steps{twice}, each about {format_duration(round(each))} "
          f"(baseline, {format_duration(spec.step)} at its rate, recover, cooldown): about "
          f"{format_duration(round(total))} in all")
    print(f"one step at {first:g}/s:")
    return _dry_run(at_rate(experiment, first, args.file), args.seed, args.file)


def report_capacity(journal: Path, as_json: bool) -> int:
    """`chaoskit report search.jsonl`: the search's summary (JSON) or its table and report."""
    from chaoskit.journal import Kind, read_journal
    from chaoskit.report.capacity import json_summary, print_search
    from chaoskit.report.capacity_html import write_capacity_report
    records = read_journal(journal, first=Kind.CAPACITY)
    if as_json:
        print(json.dumps(json_summary(records), indent=2))
        return 0
    print_search(records)
    print(f"report: {write_capacity_report(journal)}")
    return 0

