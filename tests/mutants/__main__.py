"""`make mutants`: every defect of the reference stack against the gate experiments.

    python -m tests.mutants                  # the healthy control, then every mutant
    python -m tests.mutants --only legs-rounded fresh-bank-key --no-healthy
    python -m tests.mutants --all            # every gate experiment against every mutant

First the healthy stack must hold every gate experiment (else a kill proves nothing). Then each
mutant gets a fresh lab with CHAOSKIT_BROKEN=<mutant> and the gate experiments, the expected
catcher first, until one fails or aborts (--all: all of them). Prints which experiment and
items caught each, the mutation score (killed / total) and how long it took. Exit 0 when the
healthy stack held everything and every mutant was killed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from chaoskit.stack.defects import CATALOGUE, MUTANTS, Defect
from tests.fixtures.lab import require_lab_tools, start_lab, stop_lab
from tests.mutants.runner import (
    EXPECTED,
    Verdict,
    describe,
    examples_text,
    gate_experiments,
    ordered,
    run_against,
)


def say(text: str) -> None:
    print(text, flush=True)


def safely(path: Path, lab_dir: str, out: Path, seed: int) -> Verdict:
    """One run; a run that raises is an error result (it kills nothing), not the end."""
    started = time.monotonic()
    try:
        return run_against(path, lab_dir, out, seed)
    except Exception as exc:  # noqa: BLE001 - reported with the others
        return Verdict(path.stem, "error", 4, time.monotonic() - started, error=repr(exc))


def healthy_control(root: Path, gate: list[Path], out: Path, seed: int) -> list[Verdict]:
    say("== the healthy stack against the gate set")
    lab = start_lab(root)
    try:
        verdicts = []
        for path in gate:
            verdicts.append(safely(path, lab.dir, out, seed))
            say(f"   {describe(verdicts[-1])}")
        return verdicts
    finally:
        stop_lab(lab)


def hunt(defect: Defect, root: Path, gate: list[Path], out: Path, seed: int,
         every: bool, healthy: dict[str, Verdict]) -> list[Verdict]:
    """Run gate experiments against a lab with `defect` until one catches it: fails or aborts
    with an item the healthy stack held."""
    say(f"== {defect.name} ({defect.component}): {defect.description}")
    verdicts: list[Verdict] = []
    try:
        lab = start_lab(root, CHAOSKIT_BROKEN=defect.name)
    except Exception as exc:  # noqa: BLE001 - one lab that would not start is one result
        say(f"   the lab did not start: {exc}")
        return [Verdict("lab up", "error", 4, 0.0, error=str(exc))]
    try:
        for path in ordered(gate, EXPECTED.get(defect.name)):
            verdict = safely(path, lab.dir, out, seed)
            verdicts.append(verdict)
            say(f"   {describe(verdict)}")
            for line in examples_text(verdict):
                say(line)
            if verdict.kills_beyond(healthy.get(verdict.experiment)) and not every:
                break
    finally:
        stop_lab(lab)
    return verdicts


def report(results: dict[str, list[Verdict]], healthy: list[Verdict], seconds: float) -> bool:
    control = {v.experiment: v for v in healthy}
    killed = {name: [v for v in vs if v.kills_beyond(control.get(v.experiment))]
              for name, vs in results.items()}
    say("\n== mutation score (killed: a gate experiment failed or aborted on an item the "
        "healthy stack held)")
    width = max((len(n) for n in results), default=10)
    for name, verdicts in results.items():
        caught = killed[name]
        what = ("; ".join(f"{v.experiment}: {', '.join(v.beyond(control.get(v.experiment)))}"
                          for v in caught)
                if caught else "SURVIVED " + ", ".join(v.experiment for v in verdicts))
        say(f"  {name:<{width}}  {what}")
    score = sum(1 for caught in killed.values() if caught)
    held = sum(1 for v in healthy if v.held)
    say(f"\nmutation score: {score}/{len(results)} killed"
        + (f"; healthy stack held {held}/{len(healthy)} gate experiments" if healthy else "")
        + f"; {seconds / 60:.1f} min")
    for verdict in healthy:
        if not verdict.held:
            say(f"  healthy stack did not hold {describe(verdict)} {verdict.error}")
    return score == len(results) and held == len(healthy)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.mutants", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", metavar="DEFECT", help="these defects only")
    parser.add_argument("--builtin", action="store_true",
                        help="also the stack's first three defects (no-takeover, ...)")
    parser.add_argument("--all", action="store_true",
                        help="every gate experiment against every mutant (not only until caught)")
    parser.add_argument("--no-healthy", action="store_true", help="skip the healthy control")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=None, help="where runs go (default: a temp dir)")
    args = parser.parse_args(argv)
    require_lab_tools()
    defects = list(CATALOGUE if args.builtin else MUTANTS)
    if args.only:
        known = {d.name: d for d in CATALOGUE}
        unknown = sorted(set(args.only) - set(known))
        if unknown:
            parser.error(f"unknown defects {unknown}; known: {', '.join(known)}")
        defects = [known[name] for name in args.only]
    root = Path(tempfile.mkdtemp(prefix="chaoskit-mutants-"))
    out = Path(args.out) if args.out else root / "runs"
    gate = gate_experiments()
    say(f"gate set: {', '.join(p.stem for p in gate)}; runs in {out}")
    started = time.monotonic()
    healthy = [] if args.no_healthy else healthy_control(root, gate, out, args.seed)
    control = {v.experiment: v for v in healthy}
    results = {d.name: hunt(d, root, gate, out, args.seed, args.all, control) for d in defects}
    return 0 if report(results, healthy, time.monotonic() - started) else 1


if __name__ == "__main__":
    sys.exit(main())
