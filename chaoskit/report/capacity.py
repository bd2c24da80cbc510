"""A capacity search as people read it, from its journal (search.jsonl) alone: the evidence of
each step (taken from the step run's own journal when it ends), the answer in words, which item
failed first and by how much, what the faults cost, the terminal table and the JSON summary.
The HTML page is `capacity_html`."""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from chaoskit.journal import Kind, Record, header, result
from chaoskit.report.summary import STATUS_STYLE, wide_console
from chaoskit.report.values import format_value
from chaoskit.report.verdict import PHASE_OF
from chaoskit.spec.conditions import COMPARE, parse_expectation

WITH, WITHOUT = "with-faults", "without-faults"
TITLES = {WITH: "with the faults", WITHOUT: "without the faults"}
VERDICT_STYLE = {"held": "green", "failed": "red", "unsteady": "yellow",
                 "inconclusive": "yellow", "aborted": "yellow", "error": "red",
                 "interrupted": "yellow"}
_KEPT = ("item", "phase", "status", "observed", "threshold", "baseline", "unit", "expect",
         "aggregate", "samples", "note")


def rate(value: float | None) -> str:
    return format_value(value, "rate")


# -- a step's evidence, from its run's journal -------------------------------------------------
def step_evidence(records: list[Record]) -> dict[str, Any]:
    """What a step's run shows: what the load engine sent, each item's verdict with the moment
    a failed item first crossed its limit, the abort, the preconditions."""
    closing = result(records) or {}
    starts = {r["phase"]: float(r["t"]) for r in records if r["kind"] == Kind.PHASE}
    verdicts = [{k: v.get(k) for k in _KEPT} for v in closing.get("verdicts") or []]
    for verdict, crossed in zip(verdicts, _first_crossings(records, verdicts, starts),
                                strict=True):
        if crossed is not None:  # seconds into its phase, and into the run (the order)
            verdict["first_crossed_s"], verdict["first_crossed_t"] = crossed
    return {"load": _sent(records), "verdicts": verdicts, "abort": closing.get("abort"),
            "preconditions": closing.get("preconditions") or [],
            "error": closing.get("error"),
            "audit_clean": (closing.get("audit") or {}).get("clean")}


def _sent(records: list[Record]) -> dict[str, Any] | None:
    """The inject phase's load: what was asked, sent (on time), answered."""
    summary = next((r for r in records if r["kind"] == Kind.LOAD_SUMMARY
                    and r.get("phase") == "inject" and not r.get("distributed")), None)
    if summary is None:
        return None
    seconds = float(summary.get("run_seconds") or 0.0)
    intended, behind = int(summary.get("intended") or 0), int(summary.get("behind") or 0)
    sent, ok = int(summary.get("sent") or 0), int(summary.get("ok") or 0)
    latency = summary.get("latency_ms") or {}
    return {"intended": intended, "sent": sent, "ok": ok, "behind": behind,
            "errors": int(summary.get("errors") or 0), "run_seconds": seconds,
            "sent_rate": sent / seconds if seconds else None,
            "ok_rate": ok / seconds if seconds else None,
            "on_time": 1 - behind / intended if intended else None,
            "p99_s": latency["p99"] / 1000.0 if latency.get("p99") is not None else None}


def _first_crossings(records: list[Record], verdicts: list[dict[str, Any]],
                     starts: dict[str, float]) -> list[tuple[float, float] | None]:
    """For each failed verdict, its first sample past its limit: (seconds into its phase,
    seconds into the run)."""
    found: list[tuple[float, float] | None] = []
    for v in verdicts:
        phase = PHASE_OF.get(str(v.get("phase")), "")
        if v.get("status") != "failed" or v.get("threshold") is None or phase not in starts:
            found.append(None)
            continue
        op = parse_expectation(str(v["expect"]))[0]
        crossing = next(((float(r["t"]) - starts[phase], float(r["t"])) for r in records
                         if r["kind"] == Kind.SAMPLE and r.get("role") == "hypothesis"
                         and r.get("name") == v["item"] and r.get("phase") == phase
                         and r.get("value") is not None
                         and not COMPARE[op](float(r["value"]), float(v["threshold"]))), None)
        found.append(crossing)
    return found


# -- words ---------------------------------------------------------------------------------------
def by_how_much(v: dict[str, Any]) -> str:
    """'412 ms against <= 100 ms: 312 ms over (4.1x)', '97.1% against >= 99.9%: 2.8 points
    short'."""
    observed, limit, unit = v.get("observed"), v.get("threshold"), str(v.get("unit") or "")
    shown = f"{format_value(observed, unit)} against {v.get('expect')}"
    if observed is None or limit is None:
        return shown + (f" ({v['note']})" if v.get("note") else "")
    op = parse_expectation(str(v["expect"]))[0]
    gap = abs(float(observed) - float(limit))
    amount = f"{gap * 100:.3g} points" if unit == "ratio" else format_value(gap, unit)
    if op in ("<=", "<"):
        times = f" ({float(observed) / float(limit):.2g}x the limit)" if limit > 0 else ""
        return f"{shown}: {amount} over{times}"
    if op in (">=", ">"):
        return f"{shown}: {amount} short"
    return f"{shown}: off by {amount}"


def failed_first(evidence: dict[str, Any]) -> list[dict[str, Any]]:
    """A step's failed items, the one that crossed its limit first in the run leading (items
    judged on their aggregate, with no single crossing sample, after them)."""
    failed = [v for v in evidence.get("verdicts") or [] if v.get("status") == "failed"]
    return sorted(failed, key=lambda v: (v.get("first_crossed_t") is None,
                                         v.get("first_crossed_t") or 0.0))


def failure_lines(evidence: dict[str, Any]) -> list[str]:
    lines = []
    for v in failed_first(evidence):
        when = (f", first past the limit {format_value(v['first_crossed_s'], 's')} into "
                f"{v['phase']}" if v.get("first_crossed_s") is not None else "")
        lines.append(f"{v['item']} [{v['phase']}]: {by_how_much(v)}{when}")
    return lines


def answer_text(c: dict[str, Any]) -> str:
    """One search's answer in a sentence."""
    held, failed = c.get("held"), c.get("failed")
    answer = c.get("answer")
    if answer == "found":
        return (f"capacity {rate(held)}: the highest rate that held; the lowest that failed "
                f"was {rate(failed)}")
    if answer == "at-least":
        return (f"held at every rate tried, up to {rate(c.get('high'))} (the top of the range):"
                f" the capacity is at least {rate(held)}")
    if answer == "below":
        return (f"failed already at {rate(failed)} (the bottom of the range): the capacity is "
                "below it")
    stopped = f"stopped at {rate(c.get('stopped_at'))}: {c.get('stopped')}"
    if c.get("generator_limit") is not None:
        stopped = (f"inconclusive above {rate(held) if held is not None else 'every rate'}: "
                   f"chaoskit could not send {rate(c['generator_limit'])} (its own limit, not "
                   f"the system's capacity); {c.get('stopped')}")
    if answer == "partial":
        bound = (f"the capacity is at least {rate(held)}" if held is not None
                 else "no rate held")
        if failed is not None:
            bound += f" and below {rate(failed)}"
        return f"{bound}; {stopped}"
    return f"no rate was judged; {stopped}"


def gate_text(c: dict[str, Any]) -> str | None:
    if c.get("required") is None:
        return None
    words = {"met": "held", "not met": "FAILED", "not judged": "was not judged"}
    return f"required rate {rate(c['required'])}: {words.get(str(c.get('gate')), c.get('gate'))}"


def _bound(value: float | None, unit: str) -> str:
    return "unbounded" if value is None else format_value(value, unit)


def cost_text(cost: dict[str, Any] | None, note: str = "") -> str:
    if cost is None:
        return f"what the faults cost: unknown ({note or 'a search found no rate that held'})"
    low, high = cost["rate_range"]
    r_low, r_high = cost["ratio_range"]
    head = ("the faults cost" if cost["exact"] else
            "bounds only (a search did not bracket its capacity): the faults cost")
    text = (f"{head} {rate(cost['rate'])} of capacity ({_bound(low, 'rate')} to "
            f"{_bound(high, 'rate')} within the searches' resolution); with them the system "
            f"takes {format_value(cost['ratio'], 'ratio')} of its fault-free capacity "
            f"({_bound(r_low, 'ratio')} to {_bound(r_high, 'ratio')})")
    if high is not None and high <= 0:
        text += (". NOT A COST: the system held less without the faults than with them, so "
                 "what varies between steps (the system, the machine) outweighs the faults "
                 "at this resolution; repeat with longer steps, on a quieter machine")
    elif low is not None and low <= 0:
        text += ". Not distinguishable from no cost at this resolution"
    return text


def contradictions(records: list[Record]) -> list[str]:
    """Rates at which the system held with the faults and failed without them: noise larger
    than the faults' effect, said where it shows."""
    held = {s["rate"] for s in steps_of(records, WITH) if s.get("verdict") == "held"}
    failed = sorted(s["rate"] for s in steps_of(records, WITHOUT)
                    if s.get("verdict") == "failed" and s["rate"] in held)
    return [f"at {rate(r)} the system held with the faults but failed without them: the "
            "verdict at that rate is not repeatable here" for r in failed]


# -- the journal ---------------------------------------------------------------------------------
def steps_of(records: list[Record], search: str | None = None) -> list[Record]:
    return [r for r in records if r["kind"] == Kind.RATE_STEP_ENDED
            and (search is None or r.get("search") == search)]


def first_failure(records: list[Record], conclusion: dict[str, Any], search: str = WITH
                  ) -> Record | None:
    """The step at the lowest rate that failed: where the first item broke."""
    if conclusion.get("failed") is None:
        return None
    return next((s for s in steps_of(records, search) if s.get("verdict") == "failed"
                 and s.get("rate") == conclusion["failed"]), None)


def answer_lines(records: list[Record]) -> list[str]:
    closing = result(records) or {}
    searches = closing.get("searches") or {}
    lines = []
    for search, conclusion in searches.items():
        lines.append(f"{TITLES.get(search, search)}: {answer_text(conclusion)}")
        gate = gate_text(conclusion)
        if gate:
            lines.append(f"  {gate}")
        step = first_failure(records, conclusion, search)
        if step is not None:
            lines.append(f"  failed first at {rate(step['rate'])}:")
            lines += [f"    {line}" for line in failure_lines(step.get("evidence") or {})]
    if WITHOUT in searches:
        lines.append(cost_text(closing.get("cost"), str(closing.get("cost_note") or "")))
        lines += contradictions(records)
    return lines


def step_table(records: list[Record]) -> Table:
    closing = result(records) or {}
    table = Table(title=f"capacity search {header(records).get('experiment')}: "
                        f"{str(closing.get('status', 'unfinished')).upper()}",
                  title_justify="left")
    for column, justify in (("#", "right"), ("search", "left"), ("rate", "right"),
                            ("sent", "right"), ("on time", "right"), ("verdict", "left"),
                            ("why", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for s in steps_of(records):
        load = (s.get("evidence") or {}).get("load") or {}
        style = VERDICT_STYLE.get(str(s.get("verdict")), "")
        table.add_row(str(s.get("step")), TITLES.get(str(s.get("search")), ""),
                      rate(s.get("rate")), rate(load.get("sent_rate")),
                      format_value(load.get("on_time"), "ratio"),
                      f"[{style}]{escape(str(s.get('verdict')))}[/]" if style else
                      escape(str(s.get("verdict"))), escape(_short(str(s.get("reason") or ""))))
    return table


def _short(text: str, width: int = 90) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def print_search(records: list[Record], console: Console | None = None) -> None:
    console = console or wide_console()
    closing = result(records) or {}
    console.print(step_table(records))
    for line in answer_lines(records):
        console.print(escape(line))
    status = str(closing.get("status", "unfinished"))
    console.print(f"[{STATUS_STYLE.get(status, 'bold')}]{status}[/] "
                  f"(exit {closing.get('exit_code', '?')})")


def json_summary(records: list[Record]) -> dict[str, Any]:
    head, closing = header(records), result(records) or {}
    searches = closing.get("searches") or {}
    faulted = searches.get(WITH) or {}
    return {"search_id": head.get("search_id"), "experiment": head.get("experiment"),
            "seed": head.get("seed"), "status": closing.get("status"),
            "exit_code": closing.get("exit_code"),
            # the capacity only when the search established it (never chaoskit's own limit)
            "capacity": faulted.get("held") if faulted.get("answer") == "found" else None,
            "at_least": faulted.get("held"), "lowest_failed": faulted.get("failed"),
            "answer": answer_text(faulted)
            if faulted else None, "searches": searches, "cost": closing.get("cost"),
            "steps": [{k: s.get(k) for k in ("search", "step", "rate", "verdict", "exit_code",
                                             "reason", "journal")} for s in steps_of(records)]}


def finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None
