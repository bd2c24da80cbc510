"""The HTML report: data derived from the journal, self-contained page, safe embedding."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from chaoskit.journal import read_journal
from chaoskit.report.html import render, report_data, section_of, write_report
from chaoskit.report.verdict import judge_item, samples_by_item
from chaoskit.spec.models import Expectation

START_TS = 1_795_600_000.0
HYPOTHESIS = [
    {"name": "p99-latency", "probe": {"type": "fake", "signal": "p99"},
     "expect": "<= baseline * 1.5", "aggregate": "p50", "phases": ["before", "during", "after"]},
    {"name": "refund-lag", "probe": {"type": "fake", "signal": "lag"}, "expect": "<= 2s",
     "aggregate": "p99", "phases": ["during", "after"]},
    {"name": "offline-progress", "probe": {"type": "fake", "signal": "batch"},
     "expect": ">= 0.5", "aggregate": "last", "phases": ["after"]},
]
GUARDRAILS = [{"name": "error-budget", "probe": {"type": "fake", "signal": "err"},
               "abort_when": "> 0.2", "for": "0s"}]
PHASES = [("preflight", 0.0), ("baseline", 0.05), ("inject", 4.0), ("recover", 10.0),
          ("rollback", 14.0)]


def _engine_phase(t: float) -> str:
    return [name for name, start in PHASES if t >= start][-1]


class JournalBuilder:
    """Writes records as the engine does (t, ts, kind first), in time order."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def add(self, t: float, kind: str, **fields: Any) -> None:
        self.records.append({"kind": kind, "t": round(t, 4), "ts": START_TS + t, **fields})

    def write(self, path: Path) -> Path:
        ordered = sorted(self.records, key=lambda r: (r["kind"] != "header", r["ts"]))
        path.write_text("".join(json.dumps(r) + "\n" for r in ordered))
        return path


def _latency(t: float) -> float:
    slow = 4.5 <= t < 9.0  # bank latency fault: p99 doubles, over the 1.5x limit
    return (240.0 if slow else 120.0) + 6 * math.sin(t * 7)


def synthetic_journal(path: Path, error: str | None = None) -> Path:
    """A game day in miniature: load, a latency fault, a failed item, a guardrail abort."""
    j = JournalBuilder()
    j.add(0.0, "header", run_id="bank-latency-1", experiment="bank-latency", seed=7,
          source="experiments/bank-latency.yaml", platform={"platform": "local"},
          spec={"hypothesis": HYPOTHESIS, "guardrails": GUARDRAILS})
    for name, start in PHASES:
        j.add(start, "phase", phase=name)
    j.add(4.5, "intent", fault="bank-latency", type="latency", intent={"latency": "200ms"})
    j.add(4.51, "applied", fault="bank-latency", type="latency", facts={"proxy": "bank"})
    j.add(9.0, "reverted", fault="bank-latency", facts={})
    j.add(6.0, "intent", fault="node-loss", type="node_loss", intent={"node": "node-2"})
    j.add(6.02, "applied", fault="node-loss", type="node_loss", facts={"node": "node-2"})
    samples: dict[tuple[str, str], list[float]] = {}
    for step in range(1, 140):
        t = step * 0.1
        phase = _engine_phase(t)
        values = {"p99-latency": _latency(t), "refund-lag": 0.4 if t < 6 else 1.1,
                  "offline-progress": min(1.0, t / 13), "error-budget": 0.25 if t > 12 else 0.01}
        for name, value in values.items():
            role = "guardrail" if name == "error-budget" else "hypothesis"
            j.add(t, "sample", name=name, role=role, phase=phase, value=value)
            samples.setdefault((name, phase), []).append(value)
        if 3.95 < t < 10.05:  # the load runs during inject: its own clock in 't', wall in 'ts'
            j.records.append({"kind": "load", "t": round(t - 3.9, 4), "ts": START_TS + t,
                              "intended": 20, "sent": 19 if t < 8 else 12, "ok": 18,
                              "errors": 1, "late": 0, "dropped": 0, "p50_ms": 40.0,
                              "p99_ms": _latency(t), "max_ms": 300.0,
                              "by_flow": {"payment": {"ok": 12}, "refund": {"ok": 6}}})
    if error:
        j.add(11.0, "error", error=error, traceback="")
    j.add(12.05, "guardrail", name="error-budget", value=0.25, condition="> 0.2")
    j.add(12.05, "abort", reason="guardrail error-budget: 0.25 > 0.2", by="guardrail")
    j.add(13.0, "probe-error", name="refund-lag", role="hypothesis", phase="recover",
          error="database unreachable")
    series = samples_by_item([{"kind": "sample", "role": "hypothesis", "name": n, "phase": p,
                               "value": v} for (n, p), vs in samples.items() for v in vs])
    verdicts = [judge_item(Expectation.model_validate(h), phase, series).as_dict()
                for h in HYPOTHESIS for phase in h["phases"]]
    j.add(14.2, "audit", clean=True, residue={})
    j.add(14.3, "result", status="aborted", exit_code=3, verdicts=verdicts,
          audit={"clean": True, "residue": {}}, error=error,
          abort={"reason": "guardrail error-budget: 0.25 > 0.2", "by": "guardrail"})
    return j.write(path)


def test_plots_cover_traffic_every_item_and_guardrail(tmp_path: Path) -> None:
    data = report_data(read_journal(synthetic_journal(tmp_path / "journal.jsonl")))
    ids = [p["id"] for p in data["plots"]]
    assert ids == ["load-rate", "load-flows", "load-latency", "load-errors",
                   "hypothesis-p99-latency",
                   "hypothesis-refund-lag", "hypothesis-offline-progress",
                   "guardrail-error-budget"]
    sections = {p["id"]: p["section"] for p in data["plots"]}
    assert sections["hypothesis-refund-lag"] == "schedule"
    assert sections["hypothesis-offline-progress"] == "offline"
    assert sections["guardrail-error-budget"] == "guardrails"


def test_load_windows_become_rates_on_the_run_clock(tmp_path: Path) -> None:
    data = report_data(read_journal(synthetic_journal(tmp_path / "journal.jsonl")))
    rate = next(p for p in data["plots"] if p["id"] == "load-rate")
    assert rate["x"][0] == 4.0  # from ts, not the load engine's own 't' (0.1)
    intended, sent = rate["series"][0]["values"], rate["series"][1]["values"]
    assert intended[3] == 200.0  # 20 requests per 100 ms window
    assert sent[3] == 190.0 and sent[-1] == 120.0
    flows = next(p for p in data["plots"] if p["id"] == "load-flows")
    assert [(s["label"], s["values"][2]) for s in flows["series"]] == [("payment", 120.0),
                                                                      ("refund", 60.0)]


def test_fault_windows_events_and_phase_limits(tmp_path: Path) -> None:
    data = report_data(read_journal(synthetic_journal(tmp_path / "journal.jsonl")))
    faults = {f["name"]: f for f in data["faults"]}
    assert (faults["bank-latency"]["start"], faults["bank-latency"]["end"]) == (4.5, 9.0)
    assert faults["node-loss"]["state"] == "applied"
    assert faults["node-loss"]["end"] == data["end"]  # never reverted: shaded to the end
    kinds = [e["kind"] for e in data["events"]]
    assert kinds == ["guardrail", "abort", "probe-error"]
    latency = next(p for p in data["plots"] if p["id"] == "hypothesis-p99-latency")
    limits = {(t["from"], t["to"]): t for t in latency["thresholds"]}
    during = limits[(4.0, 10.0)]
    assert during["held"] is False and during["value"] > 150  # 1.5 x the baseline median
    guard = next(p for p in data["plots"] if p["id"] == "guardrail-error-budget")
    assert guard["thresholds"][0]["value"] == 0.2 and guard["thresholds"][0]["kind"] == "abort"


def test_page_is_self_contained_and_shows_the_verdicts(tmp_path: Path) -> None:
    report = write_report(synthetic_journal(tmp_path / "journal.jsonl"))
    assert report == tmp_path / "report.html"
    page = report.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.IGNORECASE)
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", page, re.IGNORECASE)
    assert "@import" not in page
    assert 'data-plots-total="8"' in page
    assert re.search(r'<tr class="verdict failed" data-item="p99-latency">', page)
    assert 'id="run-status">ABORTED<' in page
    assert "by guardrail: guardrail error-budget: 0.25 &gt; 0.2" in page
    assert "{{" not in page  # every placeholder filled


def test_hostile_text_cannot_break_out_of_the_page(tmp_path: Path) -> None:
    nasty = "</script><script>alert(1)</script><!--"
    page = render(read_journal(synthetic_journal(tmp_path / "journal.jsonl", error=nasty)))
    assert "<script>alert(1)" not in page
    blob = re.search(r'<script type="application/json" id="chaoskit-data">(.*?)</script>',
                     page, re.DOTALL)
    assert blob is not None
    data = json.loads(blob.group(1))
    assert data["experiment"] == "bank-latency"
    assert any(e["label"] == f"error: {nasty}" for e in data["events"])  # intact, yet inert


def test_an_unfinished_run_still_renders(tmp_path: Path) -> None:
    path = synthetic_journal(tmp_path / "journal.jsonl")
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[: len(lines) // 2]) + "\n")
    page = write_report(path).read_text()
    assert "UNFINISHED" in page and "no verdicts: the run did not finish" in page


def test_sections_follow_what_the_name_measures() -> None:
    assert section_of("final-payment-lag", "hypothesis") == "schedule"
    assert section_of("refunds-on-time", "hypothesis") == "schedule"
    assert section_of("settlement-batch", "hypothesis") == "offline"
    assert section_of("p99", "hypothesis") == "hypothesis"


def test_a_long_run_is_drawn_with_few_points_and_exact_rates() -> None:
    seconds = 3 * 3600  # three hours of per-second load records and 1 s samples
    records: list[dict[str, Any]] = [{"kind": "header", "t": 0.0, "ts": START_TS,
                                      "experiment": "long", "run_id": "long-1",
                                      "spec": {"hypothesis": HYPOTHESIS[:1]}}]
    for s in range(seconds):
        spike = s == 5000
        records.append({"kind": "load", "t": float(s), "ts": START_TS + s + 1, "width": 1.0,
                        "intended": 2000, "sent": 2000, "ok": 1990 if s % 2 else 2000,
                        "errors": 0, "dropped": 0, "late": 0, "p50_ms": 4.0,
                        "p99_ms": 900.0 if spike else 9.0, "max_ms": 20.0,
                        "by_flow": {"pay": {"ok": 1990 if s % 2 else 2000}}})
        records.append({"kind": "sample", "t": float(s), "ts": START_TS + s,
                        "name": "p99-latency", "role": "hypothesis", "phase": "inject",
                        "value": 5.0 if s == 7777 else 0.1})
    data = report_data(records)
    plots = {p["id"]: p for p in data["plots"]}
    for plot in plots.values():
        assert len(plot["x"]) <= 1500
    rate = plots["load-rate"]
    assert "each point" in rate["title"]
    assert set(rate["series"][0]["values"]) == {2000.0}   # rates stay exact when joined
    assert set(rate["series"][2]["values"]) == {1995.0}   # the mean over each point's seconds
    assert max(v for v in plots["load-latency"]["series"][1]["values"] if v) == 900.0
    item = plots["hypothesis-p99-latency"]["series"][0]["values"]
    assert max(item) == 5.0 and min(item) == 0.1           # the spike survives thinning


def test_old_journals_with_100ms_windows_still_give_rates() -> None:
    loads = [{"kind": "load", "t": round(0.1 * i, 1), "ts": START_TS + 0.1 * i, "sent": 5}
             for i in range(1, 6)]
    data = report_data([{"kind": "header", "t": 0.0, "ts": START_TS, "spec": {}}, *loads])
    rate = next(p for p in data["plots"] if p["id"] == "load-rate")
    assert rate["series"][1]["values"] == [50.0] * 5
