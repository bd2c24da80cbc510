"""The capacity search's HTML report, from its journal (search.jsonl) alone: the answer, the
evidence of every step (with a link to its run's own report), and a plot of each hypothesis
measure against the arrival rate (with the faults, and without them when compared).
Self-contained: the run report's uPlot and drawing code are inlined, no network."""

from __future__ import annotations

import html
import os
import time
from pathlib import Path
from typing import Any

from chaoskit.journal import Kind, Record, header, read_journal, result
from chaoskit.report import capacity as words
from chaoskit.report.html import _inline_js, _script_json, _static
from chaoskit.report.values import format_value

CSP = ('<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
       "script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:\">")
# plotted in the unit people read: seconds as ms, ratios as %
SCALES = {"s": (1000.0, "ms"), "ratio": (100.0, "%")}


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _rates(records: list[Record]) -> list[float]:
    return sorted({float(s["rate"]) for s in words.steps_of(records) if s.get("evidence")})


def _at(records: list[Record], search: str) -> dict[float, dict[str, Any]]:
    """rate -> the evidence of the last step of `search` judged at that rate."""
    found: dict[float, dict[str, Any]] = {}
    for step in words.steps_of(records, search):
        if step.get("evidence"):
            found[float(step["rate"])] = step["evidence"]
    return found


def _plot(plot_id: str, title: str, x: list[float], series: list[tuple[str, list[Any]]],
          unit: str) -> dict[str, Any]:
    return {"id": plot_id, "title": title, "section": "capacity", "unit": unit, "x": x,
            "series": [{"label": label, "values": values} for label, values in series],
            "thresholds": [], "zero": True,
            "xaxis": {"label": "arrival rate asked (requests per second)", "unit": "/s"}}


def measure_plots(records: list[Record]) -> list[dict[str, Any]]:
    """One plot per hypothesis item: its judged value at each rate, per search and phase (the
    phases at the step's rate: during, after), with the limit it was judged against."""
    x = _rates(records)
    searches = [s for s in (words.WITH, words.WITHOUT) if words.steps_of(records, s)]
    evidence = {s: _at(records, s) for s in searches}
    plots = []
    for item in header(records).get("hypothesis") or []:
        name = item["name"]
        unit = next((v.get("unit") or "" for ev in evidence.values() for e in ev.values()
                     for v in e.get("verdicts") or [] if v.get("item") == name), "")
        factor, label = SCALES.get(unit, (1.0, unit))
        series: list[tuple[str, list[Any]]] = []
        limit: dict[float, float] = {}
        for search in searches:
            for phase in (p for p in item.get("phases") or [] if p != "before"):
                values: list[Any] = []
                for r in x:
                    v = _verdict(evidence[search].get(r), name, phase)
                    if v and v.get("threshold") is not None:
                        limit.setdefault(r, float(v["threshold"]) * factor)
                    observed = v.get("observed") if v else None
                    values.append(None if observed is None else float(observed) * factor)
                series.append((f"{words.TITLES[search]} [{phase}]", values))
        series.append(("limit", [limit.get(r) for r in x]))
        plots.append(_plot(f"capacity-{name}", f"{name}  ({item.get('aggregate', 'every')} "
                           f"{item['expect']}) against the rate", x, series, label))
    return plots


def _verdict(evidence: dict[str, Any] | None, item: str, phase: str) -> dict[str, Any] | None:
    if not evidence:
        return None
    return next((v for v in evidence.get("verdicts") or []
                 if v.get("item") == item and v.get("phase") == phase), None)


def load_plot(records: list[Record]) -> dict[str, Any]:
    """What the load engine sent at each rate asked: where it falls short is its own limit."""
    x = _rates(records)
    series: list[tuple[str, list[Any]]] = [("asked", list(x))]
    for search in (words.WITH, words.WITHOUT):
        found = _at(records, search)
        if found:
            series.append((f"sent {words.TITLES[search]}",
                           [((found.get(r) or {}).get("load") or {}).get("sent_rate")
                            for r in x]))
            series.append((f"answered ok {words.TITLES[search]}",
                           [((found.get(r) or {}).get("load") or {}).get("ok_rate")
                            for r in x]))
    return _plot("capacity-load", "Load: asked, sent and answered at each rate", x, series,
                 "req/s")


def _link(path: Any, out: Path, text: str) -> str:
    if not path or not Path(str(path)).exists():
        return ""
    return f'<a href="{_e(os.path.relpath(str(path), out.parent))}">{_e(text)}</a>'


def _step_rows(records: list[Record], out: Path) -> str:
    rows = []
    for s in words.steps_of(records):
        evidence = s.get("evidence") or {}
        load = evidence.get("load") or {}
        verdict = str(s.get("verdict"))
        css = {"held": "ok", "failed": "bad"}.get(verdict, "warn")
        failures = "".join(f'<div class="note">{_e(line)}</div>'
                           for line in words.failure_lines(evidence))
        links = " ".join(x for x in (_link(s.get("report"), out, "report"),
                                     _link(s.get("journal"), out, "journal")) if x)
        rows.append(
            f'<tr class="step {_e(verdict)}" data-rate="{_e(s.get("rate"))}" '
            f'data-search="{_e(s.get("search"))}"><td class="num">{_e(s.get("step"))}</td>'
            f"<td>{_e(words.TITLES.get(str(s.get('search')), ''))}</td>"
            f'<td class="num">{_e(words.rate(s.get("rate")))}</td>'
            f'<td class="num">{_e(words.rate(load.get("sent_rate")))}</td>'
            f'<td class="num">{_e(format_value(load.get("on_time"), "ratio"))}</td>'
            f'<td class="num">{_e(format_value(load.get("p99_s"), "s"))}</td>'
            f'<td><span class="{css}">{_e(verdict)}</span> (exit {_e(s.get("exit_code"))})'
            f'<div class="note">{_e(s.get("reason") or "")}</div>{failures}</td>'
            f"<td>{links}</td></tr>")
    return "\n".join(rows) or '<tr><td colspan="8">no step ran</td></tr>'


def _facts(records: list[Record]) -> str:
    head, closing = header(records), result(records) or {}
    spec = head.get("capacity") or {}
    status = str(closing.get("status", "unfinished"))
    rows = [("experiment", _e(head.get("experiment"))), ("id", _e(head.get("search_id"))),
            ("source", _e(head.get("source"))), ("seed", _e(head.get("seed"))),
            ("status", f'<span class="status status-{_e(status)}" id="run-status">'
                       f"{_e(status.upper())}</span>"),
            ("exit code", _e(closing.get("exit_code", "-"))),
            ("started", _e(time.strftime("%Y-%m-%d %H:%M:%S UTC",
                                         time.gmtime(float(head.get("ts") or 0))))),
            ("search", _e(_how(spec))),
            ("each step", _e(f"{spec.get('step')} at its rate, every fault active "
                             f"({', '.join(head.get('faults') or []) or 'none declared'}); "
                             f"cooldown {spec.get('cooldown')}"))]
    if spec.get("required_rate") is not None:
        rows.append(("required rate", _e(words.rate(spec["required_rate"]))))
    return "\n".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows)


def _how(spec: dict[str, Any]) -> str:
    growth = f", growing x{spec.get('growth'):g} until a step fails" \
        if spec.get("search") == "bisect" else ""
    return (f"{spec.get('search')} from {words.rate(spec.get('from'))} to "
            f"{words.rate(spec.get('to'))}, resolution {words.rate(spec.get('resolution'))}"
            f"{growth}")


def render(records: list[Record], out: Path) -> str:
    plots = [*measure_plots(records), load_plot(records)]
    data = {"experiment": header(records).get("experiment"), "run_id": header(records).get(
        "search_id"), "phases": [], "faults": [], "events": [], "end": 0, "plots": plots}
    answer = "".join(f"<p>{_e(line)}</p>" if not line.startswith(" ") else
                     f'<p class="note">{_e(line.strip())}</p>'
                     for line in words.answer_lines(records)) or "<p>the search did not end</p>"
    title = _e(f"chaoskit capacity search: {header(records).get('experiment')}")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
{CSP}
<title>{title}</title><style>{_static("uPlot.min.css")}</style>
<style>{_static("report.css")} #legend {{ display: none; }}</style></head>
<body data-plots-total="{len(plots)}" data-plots-drawn="0">
<header><h1>{title}</h1><dl class="run">{_facts(records)}</dl></header>
<main><section id="answer"><h2>Answer</h2>{answer}</section>
<section id="steps"><h2>Steps</h2>
<table class="verdicts"><thead><tr><th>#</th><th>search</th><th>rate asked</th><th>sent</th>
<th>sent on time</th><th>p99 latency</th><th>verdict</th><th>evidence</th></tr></thead>
<tbody>{_step_rows(records, out)}</tbody></table>
<p class="hint">Each step is one run of the experiment at its rate (its own journal, faults
always reverted); "unsteady": an item failed in the step's baseline (opening rate, no fault),
so the step says nothing about its rate and is repeated once. "sent on time" below the load's
shortfall tolerance is chaoskit's own limit: the step is inconclusive, never the system's
capacity.</p></section>
<section id="plots"><h2>Against the rate</h2><div id="legend" class="legend"></div>
<noscript><p class="bad">The plots need JavaScript (inlined, no network).</p></noscript>
<div id="plot-sections"></div>
<p class="hint">Each measure is the value its step was judged on (the item's aggregate over
the phase); the limit is what it was judged against.</p></section></main>
<footer>generated by chaoskit from the search's journal at
{time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}; plots by uPlot (MIT).</footer>
<script type="application/json" id="chaoskit-data">{_script_json(data)}</script>
<script>{_inline_js(_static("uPlot.iife.min.js"))}</script>
<script>{_inline_js(_static("report.js"))}</script>
</body></html>
"""


def write_capacity_report(journal: Path) -> Path:
    """Write report.html next to the search's journal; return its path."""
    out = Path(journal).with_name("report.html")
    records = read_journal(journal, first=Kind.CAPACITY)
    out.write_text(render(records, out), encoding="utf-8")
    return out
