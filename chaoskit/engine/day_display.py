"""What the people watching a game day see: one live table of every step (its phase, active
faults, latest probe values and verdict) in a terminal, or plain lines prefixed with the step
in CI and pipes. Fed with each step's journal records as they are written."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from chaoskit.engine.display import RunView, describe, wants_live
from chaoskit.journal import Record
from chaoskit.spec.plan_loader import LoadedPlan

STATUS_STYLE = {"held": "green", "failed": "red", "aborted": "red", "error": "red",
                "inconclusive": "yellow", "interrupted": "yellow", "invalid": "red"}


class DayView:
    """Each experiment's run view, folded from its records, and where it stands."""

    def __init__(self, loaded: LoadedPlan) -> None:
        self.loaded = loaded
        self.runs = {name: RunView(e) for name, e in loaded.experiments.items()}
        self.state = {name: "waiting" for name in loaded.experiments}
        self.step_of = {e.name: s.name for s in loaded.plan.steps for e in s.experiments()}
        self.started = time.monotonic()

    def fold(self, name: str, record: Record | None) -> None:
        if record is None:
            if self.state[name] in ("waiting", "running"):
                self.state[name] = "ended"
            return
        self.runs[name].fold(record)
        if record["kind"] == "header":
            self.state[name] = "running"
        elif record["kind"] == "result":
            self.state[name] = str(record.get("status"))

    def elapsed(self) -> float:
        return time.monotonic() - self.started


class PlainDayDisplay:
    def __init__(self, loaded: LoadedPlan, stream: TextIO = sys.stdout) -> None:
        self.view = DayView(loaded)
        self.stream = stream

    def __call__(self, name: str, record: Record | None) -> None:
        self.view.fold(name, record)
        line = describe(record) if record is not None else None
        if record is not None and record["kind"] == "header":
            line = f"started (seed {record.get('seed')})"
        if line:
            print(f"[day {self.view.elapsed():7.1f}s] {name}: {line}", file=self.stream,
                  flush=True)

    def say(self, text: str) -> None:
        print(f"[day {self.view.elapsed():7.1f}s] {text}", file=self.stream, flush=True)

    def pause(self) -> None:
        return None

    def resume(self) -> None:
        return None

    def close(self) -> None:
        return None


class LiveDayDisplay:
    """A table that redraws: one row per experiment of the day."""

    def __init__(self, loaded: LoadedPlan, console: Console | None = None) -> None:
        self.view = DayView(loaded)
        self.console = console or Console()
        self.live = Live(self._render(), console=self.console, refresh_per_second=4)
        self.live.start()

    def __call__(self, name: str, record: Record | None) -> None:
        self.view.fold(name, record)
        line = describe(record) if record is not None else None
        if line and record is not None and record["kind"] not in ("phase",):
            self.live.console.print(f"{name}: {line}")
        self.live.update(self._render())

    def say(self, text: str) -> None:
        self.live.console.print(text)

    def pause(self) -> None:  # a hold's prompt needs the terminal
        self.live.stop()

    def resume(self) -> None:
        self.live.start()

    def _render(self) -> Group:
        v = self.view
        plan = v.loaded.plan
        head = Text.assemble(("game day ", "dim"), (plan.metadata.name, "bold cyan"),
                             ("   elapsed ", "dim"), f"{v.elapsed():7.1f}s")
        table = Table(box=None, header_style="bold")
        for column in ("step", "experiment", "state", "phase", "active faults", "probes"):
            table.add_column(column)
        for name, run in v.runs.items():
            state = v.state[name]
            probes = ", ".join(f"{k} {run.shown(k)}" for k in list(run.expect)[:3])
            table.add_row(v.step_of[name], name,
                          Text(state, style=STATUS_STYLE.get(state, "cyan")),
                          run.phase if state == "running" else "",
                          ", ".join(run.active) or "", probes if state != "waiting" else "")
        return Group(head, table)

    def close(self) -> None:
        self.live.stop()


def make_day_display(loaded: LoadedPlan, mode: str = "auto") -> Any:
    if mode == "live" or (mode == "auto" and wants_live(sys.stdout)):
        return LiveDayDisplay(loaded)
    return PlainDayDisplay(loaded)
