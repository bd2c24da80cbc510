"""A game day's combined HTML report, from its plan journal and each step's journal: the day's
timeline (every experiment and its faults on one clock), every step's verdicts, and links to
each step's own report. Self-contained: inline CSS and SVG, no script, no network."""

from __future__ import annotations

import html
import os
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from chaoskit.errors import JournalError
from chaoskit.journal import Kind, Record, header, read_journal, result
from chaoskit.report import summary

COLOURS = {"held": "#2e7d32", "failed": "#c62828", "aborted": "#c62828", "error": "#6a1b9a",
           "inconclusive": "#ef6c00", "interrupted": "#ef6c00", "invalid": "#6a1b9a"}
WIDTH, ROW, LEFT = 960, 34, 190


@dataclass
class StepRun:
    """One experiment of the day, as the plan journal and its own journal tell it."""

    step: str
    name: str
    status: str
    exit_code: int
    journal: Path | None
    records: list[Record] = field(default_factory=list)
    note: str = ""

    def span(self) -> tuple[float, float] | None:
        stamps = [r["ts"] for r in self.records if isinstance(r.get("ts"), int | float)]
        return (min(stamps), max(stamps)) if stamps else None

    def faults(self) -> list[tuple[str, float, float]]:
        """(fault, applied ts, reverted ts) of its faults (an unreverted one: to its end)."""
        applied: dict[str, float] = {}
        spans = []
        end = (self.span() or (0.0, 0.0))[1]
        for r in self.records:
            if r["kind"] == Kind.APPLIED and "ts" in r:
                applied[r["fault"]] = r["ts"]
            elif r["kind"] == Kind.REVERTED and r.get("fault") in applied and "ts" in r:
                spans.append((r["fault"], applied.pop(r["fault"]), r["ts"]))
        return spans + [(name, ts, end) for name, ts in applied.items()]


def step_runs(records: list[Record]) -> list[StepRun]:
    runs = []
    for r in records:
        if r["kind"] != Kind.STEP_ENDED:
            continue
        journal = Path(r["journal"]) if r.get("journal") else None
        try:
            found = read_journal(journal) if journal else []
        except JournalError:
            found = []
        runs.append(StepRun(r["step"], r["name"], str(r.get("status")), int(r["exit_code"]),
                            journal, found, str(r.get("note") or "")))
    return runs


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def timeline_svg(runs: list[StepRun], day_start: float) -> str:
    """One row per experiment: its run as a bar in its verdict's colour, its faults inside."""
    spans = [s for s in (r.span() for r in runs) if s]
    end = max((s[1] for s in spans), default=day_start + 1)
    scale = (WIDTH - LEFT - 20) / max(end - day_start, 1.0)
    height = ROW * len(runs) + 40
    x = lambda ts: LEFT + (ts - day_start) * scale  # noqa: E731
    parts = [f'<svg class="day" viewBox="0 0 {WIDTH} {height}" width="100%" '
             f'role="img" aria-label="the day\'s timeline">']
    for i, run in enumerate(runs):
        y = 10 + i * ROW
        parts.append(f'<text x="4" y="{y + 17}" class="label">{_e(run.step)} / '
                     f'{_e(run.name)}</text>')
        span = run.span()
        if not span:
            parts.append(f'<text x="{LEFT}" y="{y + 17}" class="label">did not run: '
                         f'{_e(run.note or run.status)}</text>')
            continue
        colour = COLOURS.get(run.status, "#546e7a")
        width = max(x(span[1]) - x(span[0]), 2)
        parts.append(f'<rect x="{x(span[0]):.1f}" y="{y}" width="{width:.1f}" height="24"'
                     f'  rx="3" fill="{colour}" fill-opacity="0.25" stroke="{colour}">'
                     f"<title>{_e(run.name)}: {_e(run.status)} "
                     f"({span[1] - span[0]:.0f} s)</title></rect>")
        for fault, start, stop in run.faults():
            parts.append(f'<rect x="{x(start):.1f}" y="{y + 6}" '
                         f'width="{max(x(stop) - x(start), 2):.1f}" height="12" fill="{colour}">'
                         f"<title>{_e(fault)}: {stop - start:.1f} s</title></rect>")
        parts.append(f'<text x="{x(span[1]) + 4:.1f}" y="{y + 17}" class="label">'
                     f"{_e(run.status)}</text>")
    axis_y = height - 12
    for k in range(6):
        ts = day_start + (end - day_start) * k / 5
        parts.append(f'<text x="{x(ts):.1f}" y="{axis_y}" class="tick">'
                     f"{(ts - day_start) / 60:.1f} min</text>")
    parts.append("</svg>")
    return "\n".join(parts)


def _step_section(run: StepRun, out: Path) -> str:
    report = run.journal.with_name("report.html") if run.journal else None
    link = (f'<a href="{_e(os.path.relpath(report, out.parent))}">its report</a>'
            if report and report.exists() else "no report")
    head = header(run.records) if run.records else {}
    rows = summary.html_verdicts(run.records) if run.records and result(run.records) else (
        f'<tr><td colspan="9">{_e(run.note or "no verdicts")}</td></tr>')
    return (f'<section class="step"><h3>{_e(run.step)} / {_e(run.name)}: '
            f'<span class="status status-{_e(run.status)}">{_e(run.status.upper())}</span> '
            f"(exit {run.exit_code})</h3><p>experiment {_e(head.get('experiment', run.name))}, "
            f"seed {_e(head.get('seed', '-'))}, {link}</p>"
            '<table class="verdicts"><thead><tr><th>item</th><th>phase</th><th>expectation</th>'
            "<th>observed</th><th>threshold</th><th>baseline</th><th>n</th><th>verdict</th>"
            f"<th>statistics</th></tr></thead><tbody>{rows}</tbody></table></section>")


def render(records: list[Record], out: Path) -> str:
    day = next((r for r in records if r["kind"] == Kind.DAY), {})
    closing = result(records) or {}
    runs = step_runs(records)
    stopped = next((r for r in records if r["kind"] == Kind.DAY_STOPPED), None)
    holds = [r for r in records if r["kind"] == Kind.HOLD]
    status = str(closing.get("status", "unfinished"))
    start = float(day.get("ts") or time.time())
    css = resources.files("chaoskit.report").joinpath("static", "report.css").read_text("utf-8")
    facts = [("plan", _e(day.get("plan"))), ("source", _e(day.get("source"))),
             ("seed", _e(day.get("seed"))),
             ("status", f'<span class="status status-{_e(status)}" id="run-status">'
                        f"{_e(status.upper())}</span>"),
             ("exit code", _e(closing.get("exit_code", "-"))),
             ("started", _e(time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(start))))]
    if stopped:
        facts.append(("stopped", f'<span class="bad">{_e(stopped.get("reason"))}; skipped: '
                                 f'{_e(", ".join(stopped.get("skipped") or []) or "none")}'
                                 "</span>"))
    facts += [("hold", f"before {_e(h['step'])}: {_e(h['message'])} ({_e(h['answer'])})")
              for h in holds]
    title = _e(f"chaoskit game day: {day.get('plan')}")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>{title}</title><style>{css}
svg.day .label {{ font: 12px sans-serif; fill: #263238; }}
svg.day .tick {{ font: 11px sans-serif; fill: #607d8b; }}
section.step {{ margin-top: 1.5em; }}</style></head>
<body><header><h1>{title}</h1><dl class="run">
{"".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts)}</dl></header>
<main><section id="day-timeline"><h2>The day</h2>{timeline_svg(runs, start)}
<p class="hint">Each row is one experiment's run, in its verdict's colour; the solid bars inside
are its faults, from applied to reverted.</p></section>
<section id="steps"><h2>Steps</h2>
{"".join(_step_section(r, out) for r in runs) or "<p>no step ran</p>"}</section></main>
<footer>generated {time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}</footer></body></html>
"""


def write_day_report(plan_journal: Path) -> Path:
    """Write report.html next to the plan journal; return its path."""
    out = plan_journal.with_name("report.html")
    out.write_text(render(read_journal(plan_journal, first=Kind.DAY), out), encoding="utf-8")
    return out
