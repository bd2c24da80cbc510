"""The `chaoskit run` command line a game day's step or a capacity search's step runs as its
own process (its own journal, lease and watchdog): one place for the options they share."""

from __future__ import annotations

import sys
from pathlib import Path


def run_command(source: str | Path, *, seed: int, out: Path, history: Path | str,
                sets: dict[str, str], report: bool, ignore_window: str | None,
                extra: tuple[str, ...] = ()) -> list[str]:
    cmd = [sys.executable, "-m", "chaoskit.cli", "run", str(source), *extra, "--seed", str(seed),
           "--out", str(out), "--history", str(history), "--display", "plain"]
    for name, value in sets.items():
        cmd += ["--set", f"{name}={value}"]
    if not report:
        cmd.append("--no-report")
    if ignore_window:
        cmd += ["--ignore-window", ignore_window]
    return cmd
