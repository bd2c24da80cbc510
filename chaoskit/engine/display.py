"""What a user sees during a run: a rich live panel in a terminal, plain lines in CI and pipes."""

from __future__ import annotations

import io
import os
import queue
import sys
import threading
import time
from typing import Any, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from chaoskit.journal import Record
from chaoskit.report.values import format_value
from chaoskit.spec.models import Experiment

PLAIN_SAMPLE_EVERY = 5.0  # seconds between probe summaries in plain mode


def wants_live(stream: TextIO) -> bool:
    ci = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
    return stream.isatty() and not ci and os.environ.get("TERM") != "dumb"


class RunView:
    """State folded from journal records; both displays render it."""

    def __init__(self, experiment: Experiment) -> None:
        self.experiment = experiment
        self.expect = {i.name: i.expect for i in experiment.hypothesis}
        self.expect |= {g.name: f"abort {g.abort_when}" for g in experiment.guardrails}
        self.phase = "validate"
        self.phase_t = 0.0
        self.t = 0.0
        self.active: dict[str, str] = {}
        self.values: dict[str, float | None] = {}
        self.load: dict[str, Any] = {}
        self.units: dict[str, str] = {}
        self.started = time.monotonic()

    def fold(self, record: Record) -> None:
        self.t = record.get("t", self.t)
        kind = record["kind"]
        if kind == "phase":
            self.phase, self.phase_t = record["phase"], self.t
        elif kind == "applied":
            self.active[record["fault"]] = record.get("type", "")
        elif kind == "reverted":
            self.active.pop(record["fault"], None)
        elif kind == "sample":
            self.values[record["name"]] = record["value"]
        elif kind == "load":
            self.load = record
        elif kind == "probes":
            self.units = {n: str(i.get("unit", "")) for n, i in record["items"].items()}

    def shown(self, name: str) -> str:
        """The latest value of a probe in its unit ('no data' when it had nothing to measure)."""
        if name not in self.values:
            return "-"
        value = self.values[name]
        return "no data" if value is None else format_value(value, self.units.get(name, ""))

    def planned_seconds(self) -> float:
        p = self.experiment.phases
        return p.baseline + self.experiment.inject_seconds() + p.recover


def brief(facts: dict[str, Any] | None, width: int = 110) -> str:
    """The scalar facts of a record as `k=v`, cut to one readable line."""
    items = [f"{k}={v}" for k, v in (facts or {}).items()
             if isinstance(v, int | float | str | bool) and v not in ("", None)]
    text = " ".join(items)
    return text if len(text) <= width else text[: width - 1] + "…"


def describe(record: Record) -> str | None:
    """One plain line for the records worth a line; None for the rest."""
    kind, t = record["kind"], f"[{record.get('t', 0):7.2f}s]"
    lines = {
        "phase": lambda r: f"phase {r['phase']}",
        "applied": lambda r: f"fault {r['fault']} ({r['type']}) applied {brief(r.get('facts'))}",
        "reverted": lambda r: f"fault {r['fault']} reverted {brief(r.get('facts'))}",
        "effect": lambda r: f"fault {r['fault']} measured: {brief(r.get('effect'))}",
        "revert-failed": lambda r: f"fault {r['fault']} revert failed: {r['error']} (retrying)",
        "inject-failed": lambda r: f"fault {r['fault']} failed to inject: {r['error']}",
        "guardrail": lambda r: f"GUARDRAIL {r['name']} tripped: {_why(r)}",
        "abort": lambda r: f"ABORT ({r['by']}): {r['reason']}",
        "probe-error": lambda r: f"probe {r['name']} failed: {r['error']}",
        "event": lambda r: r["message"],
        "audit": lambda r: "residue audit: " + ("clean" if r["clean"] else f"RESIDUE {r}"),
        "result": lambda r: f"result: {r['status']} (exit {r['exit_code']})",
        "guardrail-blind": lambda r: f"guardrail {r['name']} cannot see: {r['error']}",
    }
    render = lines.get(kind)
    return f"{t} {render(record)}" if render else None


class LineWriter:
    """Lines to an OS stream from a thread of their own. A pipe or terminal that stops reading
    (a parent that never drains its pipe, a stalled CI log collector) blocks a write for as long
    as it likes; on the event loop that wedged a 30-minute game day until the watchdog ended it.
    Up to `limit` lines wait here; beyond that they are dropped, and how many is written once
    the stream reads again. Closing waits up to `timeout` for what is queued."""

    def __init__(self, stream: TextIO, limit: int = 10_000) -> None:
        self.stream = stream
        self._lines: queue.Queue[str | None] = queue.Queue(limit)
        self._lock = threading.Lock()
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="chaoskit-display", daemon=True)
        self._thread.start()

    def write(self, line: str) -> None:
        try:
            self._lines.put_nowait(line)
        except queue.Full:
            with self._lock:
                self.dropped += 1

    def _run(self) -> None:
        while True:
            line = self._lines.get()
            with self._lock:
                dropped, self.dropped = self.dropped, 0
            try:
                if dropped:
                    print(f"({dropped} display lines dropped: the output was not being read)",
                          file=self.stream, flush=line is None)
                if line is None:
                    return
                print(line, file=self.stream, flush=True)
            except (OSError, ValueError):  # closed or broken: the run goes on without it
                if line is None:
                    return

    def close(self, timeout: float = 2.0) -> None:
        try:
            self._lines.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)


def _blocks(stream: TextIO) -> bool:
    """A stream backed by a file descriptor may block a write; an in-memory one cannot."""
    try:
        stream.fileno()
    except (OSError, ValueError, io.UnsupportedOperation):
        return False
    return True


class PlainDisplay:
    """Line by line, for CI logs and pipes; never blocks the run (LineWriter)."""

    def __init__(self, experiment: Experiment, stream: TextIO = sys.stdout) -> None:
        self.view = RunView(experiment)
        self.stream = stream
        self._writer = LineWriter(stream) if _blocks(stream) else None
        self._last_summary = 0.0

    def _print(self, line: str) -> None:
        if self._writer is not None:
            self._writer.write(line)
        else:
            print(line, file=self.stream, flush=True)

    def __call__(self, record: Record) -> None:
        self.view.fold(record)
        line = describe(record)
        if line:
            self._print(line)
        elif record["kind"] == "sample" and self.view.t - self._last_summary >= PLAIN_SAMPLE_EVERY:
            self._last_summary = self.view.t
            values = ", ".join(f"{k}={self.view.shown(k)}" for k in sorted(self.view.values))
            self._print(f"[{self.view.t:7.2f}s]   probes: {values}")

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


class LiveDisplay:
    """A panel that redraws: phase, elapsed/remaining, active faults, probes vs expectations."""

    def __init__(self, experiment: Experiment, console: Console | None = None) -> None:
        self.view = RunView(experiment)
        self.console = console or Console()
        self.live = Live(self._render(), console=self.console, refresh_per_second=4,
                         transient=False)
        self.live.start()

    def __call__(self, record: Record) -> None:
        self.view.fold(record)
        line = describe(record)
        if line and record["kind"] not in ("phase",):
            self.live.console.print(line)
        self.live.update(self._render())

    def _render(self) -> Group:
        v = self.view
        remaining = max(0.0, v.planned_seconds() - v.t)
        head = Text.assemble(("phase ", "dim"), (v.phase, "bold cyan"),
                             ("   elapsed ", "dim"), f"{v.t:6.1f}s",
                             ("   remaining ", "dim"), f"~{remaining:5.1f}s")
        faults = Text("active faults: " + (", ".join(f"{n} ({t})" for n, t in v.active.items())
                                           or "none"), style="yellow" if v.active else "dim")
        table = Table(box=None, show_header=True, header_style="bold")
        table.add_column("probe")
        table.add_column("latest", justify="right")
        table.add_column("expectation")
        for name, expect in v.expect.items():
            table.add_row(name, v.shown(name), expect)
        parts: list[Any] = [head, faults, table]
        if v.load:
            width = float(v.load.get("width") or 0.1)  # older journals: 100 ms windows
            parts.append(Text(f"load: sent {v.load.get('sent', 0) / width:,.0f}/s  "
                              f"p99 {v.load.get('p99_ms') or 0:.1f} ms  "
                              f"errors {v.load.get('errors', 0)}", style="dim"))
        return Group(*parts)

    def close(self) -> None:
        self.live.stop()


def make_display(experiment: Experiment, mode: str = "auto") -> PlainDisplay | LiveDisplay | None:
    if mode == "quiet":
        return None
    if mode == "live" or (mode == "auto" and wants_live(sys.stdout)):
        return LiveDisplay(experiment)
    return PlainDisplay(experiment)


def _why(record: Record) -> str:
    """Why a guardrail tripped: its value against its condition, or that it went blind."""
    if record.get("why"):
        return str(record["why"])
    return f"{record.get('value', 0):g} {record.get('condition', '')}"
