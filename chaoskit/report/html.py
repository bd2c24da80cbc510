"""The self-contained HTML report of a run: header, verdict table and interactive plots, offline.

Everything shown is derived from the journal alone. The plotting library (uPlot, MIT, vendored
in `static/`) and our drawing code are inlined, so the file opens from disk, an artifact store or
an air-gapped laptop without a network request.
"""

from __future__ import annotations

import html
import json
import re
import time
from collections import defaultdict
from importlib import resources
from pathlib import Path
from typing import Any

from chaoskit.errors import JournalError
from chaoskit.history import trends as history_trends
from chaoskit.journal import Record, header, read_journal, result
from chaoskit.report import summary
from chaoskit.spec.conditions import parse_threshold

LOAD_WINDOW = 0.1  # seconds per load record when the window length cannot be inferred
# Points per plot at most: a run of hours opens as fast as one of a minute. Longer series are
# thinned for drawing only (traffic: neighbouring records added up; probes: each stretch's
# lowest and highest sample, so a spike across a limit stays visible); verdicts, tables and
# every figure come from all the records.
MAX_POINTS = 1500
ENGINE_PHASES = ("preflight", "baseline", "inject", "recover", "rollback")
PHASE_OF = {"before": "baseline", "during": "inject", "after": "recover"}
EVENT_KINDS = ("guardrail", "abort", "inject-failed", "revert-failed", "error")
MAX_PROBE_ERROR_MARKS = 50  # a dead probe errs every period; a few marks say it, more clutter
# Which section a probe's plot goes in, by what its name says it measures.
# Whole words only: 'late' must not catch 'latency'.
SECTIONS = (("schedule", re.compile(r"(?<![a-z])(lag|late|schedul\w*|due|on-?time|deadline)"
                                    r"(?![a-z])")),
            ("offline", re.compile(r"offline|progress|batch|settle|reconcil")))


def write_report(journal: Path, history: Path | None = None) -> Path:
    """Write report.html next to the journal; return its path. `history`: the output folder
    whose run history gives each item's trend (default: the folder holding the run)."""
    journal = Path(journal)
    out = journal.with_name("report.html")
    records = read_journal(journal)
    trends = trend_plots(records, history or journal.resolve().parent.parent)
    out.write_text(render(records, trends), encoding="utf-8")
    return out


# -- time -------------------------------------------------------------------------------------
def run_time(record: Record, start_ts: float) -> float:
    """Seconds since the run started. Load windows carry their own load-relative 't', so their
    place on the run's clock comes from the wall-clock stamp instead."""
    if record["kind"] == "load" and "ts" in record:
        return round(float(record["ts"]) - start_ts, 4)
    return float(record.get("t", 0.0))


def phase_windows(records: list[Record]) -> dict[str, tuple[float, float]]:
    """Engine phase -> (start, end) seconds; the last phase ends with the last record."""
    starts = [(r["phase"], float(r["t"])) for r in records if r["kind"] == "phase"]
    end = max((float(r.get("t", 0.0)) for r in records), default=0.0)
    bounds = [t for _, t in starts[1:]] + ([end] if starts else [])
    return {name: (t, bound) for (name, t), bound in zip(starts, bounds, strict=True)}


def fault_windows(records: list[Record], end: float) -> list[dict[str, Any]]:
    """Each fault from its intent to its revert (or the run's end, if never reverted)."""
    faults: dict[str, dict[str, Any]] = {}
    for r in records:
        kind, name = r["kind"], str(r.get("fault"))
        if kind == "intent":
            faults[name] = {"name": name, "type": r.get("type", ""), "start": r["t"], "end": None,
                            "state": "intended", "facts": {}}
        elif name in faults and kind == "applied":
            faults[name].update(state="applied", facts=r.get("facts") or {})
        elif name in faults and kind == "reverted":
            faults[name].update(end=r["t"], state="reverted")
        elif name in faults and kind in ("inject-failed", "revert-failed"):
            faults[name]["state"] = kind
    for fault in faults.values():
        if fault["end"] is None:
            fault["end"] = end
    return list(faults.values())


def events(records: list[Record]) -> list[dict[str, Any]]:
    """Guardrail trips, aborts and fault failures as marks on every plot."""
    marks = []
    for r in records:
        if r["kind"] == "guardrail":
            label = f"guardrail {r.get('name')}: {r.get('value')} {r.get('condition', '')}"
        elif r["kind"] == "abort":
            label = f"abort ({r.get('by')}): {r.get('reason')}"
        elif r["kind"] in ("inject-failed", "revert-failed"):
            label = f"{r['kind']}: {r.get('fault')} {r.get('error', '')}".strip()
        elif r["kind"] == "error":
            label = f"error: {r.get('error')}"
        else:
            continue
        marks.append({"t": r["t"], "kind": r["kind"], "label": label})
    return marks


# -- plots ------------------------------------------------------------------------------------
def _plot(plot_id: str, title: str, section: str, x: list[float],
          series: list[tuple[str, list[float | None]]], unit: str = "",
          thresholds: list[dict[str, Any]] | None = None, zero: bool = True) -> dict[str, Any]:
    return {"id": plot_id, "title": title, "section": section, "unit": unit, "x": x,
            "series": [{"label": label, "values": values} for label, values in series],
            "thresholds": thresholds or [], "zero": zero}


def _width(loads: list[Record], i: int) -> float:
    """Seconds of load a record covers: its `width` (per-second records), else the gap to the
    record before it (100 ms windows of older journals)."""
    window = loads[i]
    if isinstance(window.get("width"), int | float) and window["width"] > 0:
        return float(window["width"])
    if i and isinstance(window.get("t"), int | float) and \
            isinstance(loads[i - 1].get("t"), int | float):
        return float(window["t"]) - float(loads[i - 1]["t"]) or LOAD_WINDOW
    return LOAD_WINDOW


def _per_second(loads: list[Record], field: str) -> list[float | None]:
    rates: list[float | None] = []
    for i, window in enumerate(loads):
        count = window.get(field)
        rates.append(None if count is None else round(float(count) / _width(loads, i), 3))
    return rates


_SUMMED = ("intended", "sent", "ok", "errors", "dropped", "late")


def coarsen(loads: list[Record], limit: int = MAX_POINTS) -> tuple[list[Record], int]:
    """At most `limit` load records for drawing: runs of neighbours joined (counts and widths
    added up, so rates stay exact; p50 their median, p99 and max the highest), and how many
    records each point joins."""
    if len(loads) <= limit:
        return loads, 1
    size = -(-len(loads) // limit)
    joined = []
    for start in range(0, len(loads), size):
        group = loads[start:start + size]
        record: Record = {"kind": "load", "t": group[-1].get("t"), "ts": group[-1].get("ts"),
                          "width": sum(_width(loads, start + j) for j in range(len(group)))}
        for name in _SUMMED:
            record[name] = sum(int(r.get(name) or 0) for r in group)
        p50s = sorted(r["p50_ms"] for r in group if r.get("p50_ms") is not None)
        record["p50_ms"] = p50s[len(p50s) // 2] if p50s else None
        for name in ("p99_ms", "max_ms"):
            values = [r[name] for r in group if r.get(name) is not None]
            record[name] = max(values) if values else None
        flows: dict[str, dict[str, int]] = {}
        for r in group:
            for flow, counts in (r.get("by_flow") or {}).items():
                flows.setdefault(flow, {"ok": 0})["ok"] += int(counts.get("ok") or 0)
        record["by_flow"] = flows
        joined.append(record)
    return joined, size


def thin(points: list[tuple[float, float | None]],
         limit: int = MAX_POINTS) -> list[tuple[float, float | None]]:
    """At most about `limit` samples for drawing: each stretch's lowest and highest, in time
    order (a stretch with no data keeps one gap)."""
    if len(points) <= limit:
        return points
    size = -(-len(points) // (limit // 2))
    kept: list[tuple[float, float | None]] = []
    for start in range(0, len(points), size):
        group = points[start:start + size]
        valued = [p for p in group if p[1] is not None]
        if not valued:
            kept.append(group[0])
            continue
        low = min(valued, key=lambda p: p[1] or 0.0)
        high = max(valued, key=lambda p: p[1] or 0.0)
        kept.extend(sorted({low, high}, key=lambda p: p[0]))
    return kept


def traffic_plots(records: list[Record], start_ts: float) -> list[dict[str, Any]]:
    """Request rate, completions by flow, latency and errors from the load engine's records."""
    loads = [r for r in records if r["kind"] == "load"]
    if not loads:
        return []
    loads, joined = coarsen(loads)
    note = f" (each point: {joined} records)" if joined > 1 else ""
    x = [run_time(r, start_ts) for r in loads]
    rate = _plot("load-rate", "Request rate: intended vs achieved" + note, "traffic", x,
                 [("intended", _per_second(loads, "intended")),
                  ("sent", _per_second(loads, "sent")), ("ok", _per_second(loads, "ok"))],
                 "req/s")
    latency = _plot("load-latency", "Latency (from intended send time)" + note, "traffic", x,
                    [("p50", [r.get("p50_ms") for r in loads]),
                     ("p99", [r.get("p99_ms") for r in loads]),
                     ("max", [r.get("max_ms") for r in loads])], "ms")
    errors = _plot("load-errors", "Errors, drops and late sends" + note, "traffic", x,
                   [("errors", _per_second(loads, "errors")),
                    ("dropped", _per_second(loads, "dropped")),
                    ("late", _per_second(loads, "late"))], "/s")
    return [rate, *_flow_plot(loads, x), latency, errors]


def _flow_plot(loads: list[Record], x: list[float]) -> list[dict[str, Any]]:
    """Completed requests per flow: payments, refunds and final payments must all keep up."""
    flows = sorted({f for r in loads for f in (r.get("by_flow") or {})})
    if not flows:
        return []
    series = [(flow, _per_second([{"t": r.get("t"), "width": r.get("width"),
                                   "ok": (r.get("by_flow") or {}).get(flow, {}).get("ok")}
                                  for r in loads], "ok"))
              for flow in flows]
    return [_plot("load-flows", "Completed requests by flow", "traffic", x, series, "ok/s")]


def section_of(name: str, default: str) -> str:
    for section, pattern in SECTIONS:
        if pattern.search(name.lower()):
            return section
    return default


def _item_thresholds(name: str, verdicts: list[dict[str, Any]],
                     phases: dict[str, tuple[float, float]]) -> list[dict[str, Any]]:
    """The judged limit of each phase, drawn over the phase it was judged in."""
    lines = []
    for v in verdicts:
        window = phases.get(PHASE_OF.get(v["phase"], ""))
        if v["item"] == name and v.get("threshold") is not None and window:
            lines.append({"value": v["threshold"], "from": window[0], "to": window[1],
                          "label": f"{v['phase']}: {v['aggregate']} {v['expect']}",
                          "held": v["held"], "kind": "limit"})
    return lines


def _guardrail_threshold(condition: str, phases: dict[str, tuple[float, float]]) -> list[dict]:
    try:
        threshold = parse_threshold(condition)
    except ValueError:
        return []
    if threshold.relative or not phases:
        return []
    start = min(t for t, _ in phases.values())
    end = max(t for _, t in phases.values())
    return [{"value": threshold.constant, "from": start, "to": end,
             "label": f"abort when {condition}", "held": True, "kind": "abort"}]


def _sample_series(records: list[Record]
                   ) -> dict[tuple[str, str], list[tuple[float, float | None]]]:
    """(role, name) -> [(t, value)] of every probe sample."""
    series: dict[tuple[str, str], list[tuple[float, float | None]]] = defaultdict(list)
    for r in records:
        if r["kind"] == "sample":
            series[(r.get("role", "hypothesis"), r["name"])].append((r["t"], r["value"]))
    return series


def probe_plots(records: list[Record], verdicts: list[dict[str, Any]],
                phases: dict[str, tuple[float, float]]) -> list[dict[str, Any]]:
    """One plot per hypothesis item (with its limits) and per guardrail (with its trip line)."""
    series = _sample_series(records)
    spec = header(records).get("spec") or {}
    plots = []
    for item in spec.get("hypothesis") or []:
        name, points = item["name"], thin(series.get(("hypothesis", item["name"]), []))
        plots.append(_plot(f"hypothesis-{name}", f"{name}  ({item['expect']})",
                           section_of(name, "hypothesis"), [t for t, _ in points],
                           [(name, [v for _, v in points])],
                           thresholds=_item_thresholds(name, verdicts, phases)))
    for guard in spec.get("guardrails") or []:
        name, points = guard["name"], thin(series.get(("guardrail", guard["name"]), []))
        plots.append(_plot(f"guardrail-{name}", f"{name}  (abort when {guard['abort_when']})",
                           "guardrails", [t for t, _ in points], [(name, [v for _, v in points])],
                           thresholds=_guardrail_threshold(guard["abort_when"], phases)))
    return plots


TREND_RUNS = 30  # earlier runs shown in an item's trend


def trend_plots(records: list[Record], history: Path) -> list[dict[str, Any]]:
    """Each item's observed value over the experiment's earlier runs (this one last), with the
    limit it was judged against: from the run history, when there is one."""
    head = header(records)
    try:
        trends = history_trends(history, str(head.get("experiment")), limit=TREND_RUNS,
                                upto=str(head.get("run_id")))
    except JournalError:
        return []  # a history that cannot be read costs the trend, not the report
    plots = []
    order = {"before": 0, "during": 1, "after": 2}
    for (item, phase), points in sorted(trends.items(), key=lambda kv: (kv[0][0],
                                                                          order.get(kv[0][1], 3))):
        if len(points) < 2:
            continue
        unit = next((p.unit for p in points if p.unit), "") or ""
        labels = [f"{p.run_id} ({p.status or 'unfinished'}"
                  f"{', ' + p.code_version if p.code_version else ''})" for p in points]
        plot = _plot(f"trend-{item}-{phase}", f"{item} [{phase}] over the last {len(points)} runs",
                     "history", list(range(1, len(points) + 1)),
                     [("observed", [p.observed for p in points]),
                      ("limit", [p.threshold for p in points])], unit, zero=False)
        plot["xaxis"] = {"label": "runs of this experiment, oldest first (this run last)",
                         "labels": labels}
        plots.append(plot)
    return plots


def probe_error_marks(records: list[Record]) -> list[dict[str, Any]]:
    errors = [r for r in records if r["kind"] == "probe-error"]
    return [{"t": r["t"], "kind": "probe-error", "label": f"probe {r.get('name')}: "
             f"{r.get('error')}"} for r in errors[:MAX_PROBE_ERROR_MARKS]]


def report_data(records: list[Record]) -> dict[str, Any]:
    """Everything the page draws, as one JSON-able dict."""
    head = header(records)
    closing = result(records) or {}
    phases = phase_windows(records)
    end = max((float(r.get("t", 0.0)) for r in records), default=0.0)
    verdicts = closing.get("verdicts", [])
    plots = traffic_plots(records, float(head.get("ts", 0.0))) + \
        probe_plots(records, verdicts, phases)
    return {"experiment": head.get("experiment"), "run_id": head.get("run_id"),
            "phases": [{"name": n, "from": a, "to": b} for n, (a, b) in phases.items()],
            "faults": fault_windows(records, end), "plots": plots,
            "events": events(records) + probe_error_marks(records), "end": end}


# -- page -------------------------------------------------------------------------------------
def _static(name: str) -> str:
    return resources.files("chaoskit.report").joinpath("static", name).read_text("utf-8")


def _script_json(data: Any) -> str:
    """JSON safe inside <script>: no '</script>' or '<!--' can end or confuse the element."""
    text = json.dumps(data, separators=(",", ":"), default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _inline_js(text: str) -> str:
    return text.replace("</script", "<\\/script")


def render(records: list[Record], extra_plots: list[dict[str, Any]] | None = None) -> str:
    data = report_data(records)
    data["plots"] += extra_plots or []
    page = _static("report.html")
    values = {"title": html.escape(f"chaoskit: {data['experiment']} ({data['run_id']})"),
              "uplot_css": _static("uPlot.min.css"), "report_css": _static("report.css"),
              "uplot_js": _inline_js(_static("uPlot.iife.min.js")),
              "report_js": _inline_js(_static("report.js")), "data": _script_json(data),
              "plots_total": str(len(data["plots"])), "summary": summary.html_header(records),
              "verdicts": summary.html_verdicts(records),
              "faults": summary.html_faults(data["faults"], data["events"]),
              "generated": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    return re.sub(r"\{\{(\w+)\}\}", lambda m: values[m.group(1)], page)
