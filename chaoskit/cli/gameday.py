"""`chaoskit gameday PLAN`: a whole game day from a plan file."""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
from pathlib import Path
from typing import Any

EPILOG = """\
Each experiment runs as its own `chaoskit run` (its own journal, lease and watchdog), so every
step keeps the rollback guarantee; stopping the day (Ctrl-C, SIGTERM, the stop rule, a declined
hold) reverts the running step first. The day's exit code is its worst step's (as for `run`;
130 when an operator stopped it).

OUT/<plan>-<time>/ holds plan.jsonl (the day), report.html (the day's timeline, every verdict,
links to each step's report) and steps/<name>/ (each run); runs are indexed in OUT's history.

examples:
  chaoskit gameday experiments/plans/rehearsal-8pm.yaml --dry-run     the day's timeline + preflight
  chaoskit gameday experiments/plans/rehearsal-8pm.yaml               holds ask in a terminal
  chaoskit gameday experiments/plans/rehearsal-8pm.yaml --yes --seed 7   unattended (as in CI)
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser("gameday", help="run a game-day plan: steps, holds, a stop rule, one report",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG)
    p.add_argument("plan", metavar="PLAN", help="a `kind: GamePlan` file")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="a plan parameter's value (repeatable)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the whole day's timeline and run every step's preflight")
    p.add_argument("--yes", action="store_true", help="do not ask at holds (CI never asks)")
    p.add_argument("--seed", type=int, help="the day's seed (each step's seed follows from it)")
    p.add_argument("--out", default="runs", help="where the day's folder goes (default: runs/)")
    p.add_argument("--display", choices=["auto", "live", "plain"], default="auto",
                   help="one live table in a terminal, plain lines in CI (default: auto)")
    p.add_argument("--no-report", action="store_true", help="skip the HTML reports")
    p.add_argument("--webhook", metavar="URL", default=os.environ.get("CHAOSKIT_WEBHOOK"),
                   help="POST the day's verdict as JSON to URL (default: $CHAOSKIT_WEBHOOK)")
    p.add_argument("--ignore-window", metavar="REASON",
                   help="run outside the plan's window or in a freeze, once (recorded)")
    p.set_defaults(func=cmd_gameday)


def cmd_gameday(args: argparse.Namespace) -> int:
    from chaoskit.cli.experiment import sets_of
    from chaoskit.engine.window import require_allowed
    from chaoskit.spec.plan_loader import load_plan
    sets = sets_of(args.set)
    loaded = load_plan(args.plan, sets)
    if args.dry_run:
        return dry_run(loaded, args.seed)
    if not args.ignore_window:
        require_allowed(f"plan {loaded.plan.metadata.name}", loaded.plan.schedule)
    from chaoskit.engine.day_display import make_day_display
    from chaoskit.engine.gameday import DayOptions, GameDay
    display = make_day_display(loaded, args.display)
    options = DayOptions(seed=args.seed, out=Path(args.out), report=not args.no_report,
                         ignore_window=args.ignore_window, sets=sets)
    day = GameDay(loaded, options, display, lambda step: hold(step, day, display, args.yes))
    display.say(f"game day {loaded.plan.metadata.name}: seed {day.seed}, folder {day.dir}")
    try:
        outcome = day.run()
    finally:
        display.close()
    print_day(outcome)
    if not args.no_report:
        from chaoskit.report.day import write_day_report
        print(f"report:  {write_day_report(outcome.journal)}")
    if args.webhook:
        from chaoskit.notify import post_verdict
        print(post_verdict(args.webhook, day_summary(outcome)).line())
    return outcome.exit_code


def report_day(journal: Path, as_json: bool) -> int:
    """`chaoskit report plan.jsonl`: the day's summary (JSON) or its table and report."""
    import json

    from chaoskit.engine.day_rules import StepOutcome
    from chaoskit.engine.gameday import DayResult
    from chaoskit.journal import Kind, read_journal, result
    from chaoskit.report.day import write_day_report
    records = read_journal(journal, first=Kind.DAY)
    closing = result(records) or {}
    fields = set(StepOutcome.__dataclass_fields__)
    outcome = DayResult(int(closing.get("exit_code", 4)), str(closing.get("status", "unfinished")),
                        journal.parent, journal,
                        [StepOutcome(**{k: v for k, v in s.items() if k in fields})
                         for s in closing.get("steps") or []], closing.get("stopped"))
    if as_json:
        print(json.dumps(day_summary(outcome), indent=2))
        return 0
    print_day(outcome)
    print(f"report: {write_day_report(journal)}")
    return 0


def day_summary(outcome: Any) -> dict[str, Any]:
    """What the webhook says about a day (the fields `chaoskit report --json` has for a run)."""
    return {"experiment": outcome.day_dir.name, "status": outcome.status,
            "exit_code": outcome.exit_code, "stopped": outcome.stopped,
            "verdicts": [v | {"step": o.name} for o in outcome.outcomes for v in o.verdicts],
            "steps": [{"step": o.step, "name": o.name, "status": o.status,
                       "exit_code": o.exit_code, "failed": o.failed_items}
                      for o in outcome.outcomes]}


def print_day(outcome: Any) -> None:
    from rich.table import Table

    from chaoskit.report.summary import wide_console
    table = Table(title=f"game day: {outcome.status.upper()} (exit {outcome.exit_code})")
    for column in ("step", "experiment", "verdict", "failed items", "journal"):
        table.add_column(column)
    for o in outcome.outcomes:
        table.add_row(o.step, o.name, f"{o.status} (exit {o.exit_code})",
                      ", ".join(o.failed_items) or o.note, o.journal or "-")
    console = wide_console()
    console.print(table)
    if outcome.stopped:
        console.print(f"the day stopped: {outcome.stopped}")
    console.print(f"plan journal: {outcome.journal}")


def planned_faults(experiment: Any, seed: int) -> tuple[list[Any], Any]:
    from chaoskit.engine.faultline import plan_faults
    from chaoskit.platforms import platform_for
    platform = platform_for(experiment.target)
    planned = asyncio.run(plan_faults(experiment, platform, random.Random(seed), "gameday-plan"))
    return planned, platform


def hold(step: Any, day: Any, display: Any, yes: bool) -> bool:
    """Show what the step will inject and where; ask in a terminal, go on in CI or with --yes."""
    lines = [f"HOLD before step {step.name}: {step.hold}"]
    for entry in step.experiments():
        experiment = day.loaded.experiments[entry.name]
        try:
            planned, _ = planned_faults(experiment, day.seeds[entry.name])
            lines += [f"  {entry.name}: {pf.describe().strip()}" for pf in planned] or [
                f"  {entry.name}: no faults"]
        except Exception as exc:  # noqa: BLE001 - the step's own preflight will say it
            lines.append(f"  {entry.name}: cannot plan its faults now: {exc}")
    ci = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
    if yes or ci or not sys.stdin.isatty():
        display.say("\n".join(lines) + "\n  (going on: " + ("--yes" if yes else "unattended")
                    + ")")
        return True
    display.pause()
    try:
        print("\n".join(lines))
        answer = input(f"start step {step.name}? [y/N] ").strip().lower()
    except EOFError:
        answer = ""
    finally:
        display.resume()
    return answer in ("y", "yes")


def dry_run(loaded: Any, seed: int | None) -> int:
    """Every step's timeline on the day's clock, and every step's preflight."""
    import secrets

    from chaoskit.engine import preflight
    from chaoskit.engine.day_rules import step_seeds
    from chaoskit.engine.timeline import render
    from chaoskit.engine.window import refusal
    seed = seed if seed is not None else secrets.randbelow(2**31)
    seeds = step_seeds(loaded.plan, seed)
    plan = loaded.plan
    print(f"game day {plan.metadata.name}  seed {seed}  ({len(plan.steps)} steps)")
    problems: list[str] = []
    why = refusal(plan.schedule)
    if why:
        problems.append(f"schedule: {why}")
    at = 0.0
    for number, step in enumerate(plan.steps, 1):
        longest = 0.0
        together = " side by side" if step.together else ""
        print(f"\nstep {number} {step.name}{together}: starts at ~{at / 60:.1f} min"
              + (f"\n  HOLD: {step.hold}" if step.hold else ""))
        for entry in step.experiments():
            experiment = loaded.experiments[entry.name]
            phases = experiment.phases
            longest = max(longest, phases.baseline + experiment.inject_seconds() + phases.recover)
            try:
                planned, platform = planned_faults(experiment, seeds[entry.name])
            except Exception as exc:  # noqa: BLE001 - reported as the step's problem
                problems.append(f"{entry.name}: {exc}")
                continue
            print("  " + render(experiment, planned, seeds[entry.name]).replace("\n", "\n  "))
            found, _ = asyncio.run(preflight.check(experiment, platform, planned, "gameday-plan",
                                                   str(loaded.sources[entry.name]),
                                                   seeds[entry.name]))
            problems += [f"{entry.name}: {p}" for p in found]
        at += longest
    print(f"\nthe day: ~{at / 60:.1f} min of runs; stops when "
          + stop_text(plan.stop_when))
    for problem in problems:
        print(f"preflight: {problem}", file=sys.stderr)
    print("dry run: nothing was injected" + ("" if not problems else "; preflight FAILED"))
    return 4 if problems else 0


def stop_text(rule: Any) -> str:
    parts = ["a step is aborted by a guardrail"] if rule.aborted else []
    if rule.error:
        parts.append("a step cannot run")
    if rule.failed == "any":
        parts.append("any item fails")
    elif rule.failed:
        parts.append(f"{', '.join(rule.failed)} fails")
    return " or ".join(parts) or "never (every step runs)"
