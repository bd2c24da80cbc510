"""`make demo` and `make gate`: bring the lab up, run the flagship (or the gate set), tear down."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from chaoskit.errors import ChaoskitError

ROOT = Path(__file__).resolve().parent.parent
FLAGSHIP = ROOT / "experiments" / "bank-latency-at-peak.yaml"
DEMO_SEED = 20261111  # the festival's date: a fixed seed, so two demos tell the same story
LAB_NAME = "default"


def _say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def lab_up(runtime: str = "processes") -> None:
    from chaoskit.lab import lifecycle as lab
    from chaoskit.lab import state
    from chaoskit.lab.topology import LabOptions

    directory = state.lab_dir(LAB_NAME)
    if (directory / "state.json").exists() and state.load(directory).status != "down":
        _say(f"stopping a previous lab '{LAB_NAME}' first")
        lab.down(LAB_NAME)
    _say("starting the local payment lab (PostgreSQL, Toxiproxy, HAProxy, stack on 3 nodes"
         + (", each a container)" if runtime == "containers" else ")"))
    _, seconds = lab.up(LabOptions(name=LAB_NAME, runtime=runtime))
    print(f"lab up in {seconds:.1f}s", flush=True)


def lab_down() -> None:
    from chaoskit.lab import lifecycle as lab

    residue = lab.down(LAB_NAME)
    print("lab down: nothing left behind" if not residue else f"lab down, residue: {residue}")


def run_flagship() -> int:
    from chaoskit.cli import main as chaoskit

    _say(f"running the flagship experiment {FLAGSHIP.relative_to(ROOT)} (seed {DEMO_SEED})")
    return chaoskit(["run", str(FLAGSHIP), "--seed", str(DEMO_SEED), "--out",
                     str(ROOT / "runs")])


REHEARSAL = ROOT / "experiments" / "plans" / "rehearsal-8pm.yaml"


def run_gate() -> int:
    _say("running the pre-freeze gate set: pytest experiments/ -m gate")
    junit = ROOT / "runs" / "gate-junit.xml"
    command = [sys.executable, "-m", "pytest", str(ROOT / "experiments"), "-m", "gate",
               "-p", "no:cacheprovider", "-o", "addopts=", "-v",
               f"--junitxml={junit}", "--chaoskit-out", str(ROOT / "runs")]
    code = subprocess.call(command, cwd=ROOT)
    print(f"JUnit: {junit}")
    _say(f"rehearsing the evening as a game day: chaoskit gameday {REHEARSAL.relative_to(ROOT)}")
    day = subprocess.call([sys.executable, "-m", "chaoskit.cli", "gameday", str(REHEARSAL),
                           "--yes", "--display", "plain", "--out", str(ROOT / "runs")], cwd=ROOT)
    return worst(code, day)


def worst(*codes: int) -> int:
    """The gate's exit: a failure of either part, the highest code (0 only when both held)."""
    return max(codes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaoskit.demo", description=__doc__)
    parser.add_argument("--gate", action="store_true", help="run the gate set, not the flagship")
    parser.add_argument("--keep", action="store_true", help="leave the lab running afterwards")
    parser.add_argument("--runtime", choices=("processes", "containers"), default="processes",
                        help="the lab's nodes: host processes, or containers (`make image`)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        lab_up(args.runtime)
        code = run_gate() if args.gate else run_flagship()
    except ChaoskitError as exc:
        print(exc.render(), file=sys.stderr)
        code = exc.exit_status
    finally:
        if not args.keep:
            _say("stopping the lab")
            lab_down()
    print(f"\ndone in {time.monotonic() - started:.0f}s (exit {code})")
    return code


if __name__ == "__main__":
    sys.exit(main())
