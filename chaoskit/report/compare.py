"""A/B comparison of two journals of one seeded experiment: the pre-freeze regression gate."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from chaoskit.errors import JournalError
from chaoskit.journal import Record, header, read_journal, result
from chaoskit.report.expectations import aggregate
from chaoskit.report.statistics import GREATER_IS_WORSE, Shift, compare_samples
from chaoskit.report.verdict import PHASE_OF, samples_by_item
from chaoskit.spec.conditions import parse_threshold

# worse statuses rank higher; an unfinished run is as bad as a crash
STATUS_RANK = {"held": 0, "failed": 1, "aborted": 2, "interrupted": 2, "error": 3, "crashed": 3}
UNFINISHED = 3


@dataclass
class ItemComparison:
    """One hypothesis item in one phase, A beside B, and what changed."""

    item: str
    phase: str
    expect: str
    aggregate: str
    a_observed: float | None
    b_observed: float | None
    a_held: bool | None
    b_held: bool | None
    shift: Shift | None
    change: str  # regressed | improved | same | untested

    @property
    def verdict_worse(self) -> bool:
        return self.a_held is not False and self.b_held is False

    @property
    def gate_fails(self) -> bool:
        return self.change == "regressed" or self.verdict_worse

    def as_dict(self) -> dict[str, Any]:
        return {"item": self.item, "phase": self.phase, "expect": self.expect,
                "aggregate": self.aggregate, "a_observed": self.a_observed,
                "b_observed": self.b_observed, "a_held": self.a_held, "b_held": self.b_held,
                "change": self.change, "verdict_worse": self.verdict_worse,
                "stats": self.shift.as_dict() if self.shift else None}


def _hypothesis(records: list[Record]) -> list[dict[str, Any]]:
    return list((header(records).get("spec") or {}).get("hypothesis") or [])


def _signature(records: list[Record]) -> list[tuple[str, str, str]]:
    return [(h["name"], h["expect"], h.get("aggregate", "every")) for h in _hypothesis(records)]


def check_comparable(a: list[Record], b: list[Record], path_a: Path, path_b: Path) -> None:
    """Refuse journals of different experiments: item-by-item comparison would be meaningless."""
    name_a, name_b = header(a).get("experiment"), header(b).get("experiment")
    if name_a != name_b:
        raise JournalError(f"{path_a} is a run of '{name_a}' but {path_b} is a run of '{name_b}'",
                           hint="compare two runs of the same experiment (one per build), e.g. "
                                "`chaoskit run X.yaml --seed 7` before and after the change")
    if _signature(a) != _signature(b):
        raise JournalError(f"the hypothesis of '{name_a}' differs between {path_a} and {path_b}",
                           hint="the experiment file changed between the runs; rerun both builds "
                                "with the same file")


def _verdicts(records: list[Record]) -> dict[tuple[str, str], dict[str, Any]]:
    closing = result(records) or {}
    return {(v["item"], v["phase"]): v for v in closing.get("verdicts", [])}


def _observed(verdict: dict[str, Any] | None, values: list[float], how: str,
              op: str) -> float | None:
    if verdict is not None:
        return verdict.get("observed")
    return aggregate(how, values, op) if values else None


def classify(shift: Shift | None, op: str) -> str:
    """'regressed' / 'improved' when B moved significantly in the expectation's bad / good way."""
    if shift is None:
        return "untested"
    worse_up = GREATER_IS_WORSE.get(op)
    if not shift.significant or worse_up is None:
        return "same"
    return "regressed" if (shift.cliffs_delta > 0) == worse_up else "improved"


def compare_items(a: list[Record], b: list[Record]) -> list[ItemComparison]:
    samples_a, samples_b = samples_by_item(a), samples_by_item(b)
    verdicts_a, verdicts_b = _verdicts(a), _verdicts(b)
    rows = []
    for item in _hypothesis(a):
        name, how = item["name"], item.get("aggregate", "every")
        op = parse_threshold(item["expect"]).op
        for phase in item.get("phases", list(PHASE_OF)):
            key, engine_phase = (name, phase), PHASE_OF[phase]
            series = (name, engine_phase)
            va = samples_a[series].values if series in samples_a else []
            vb = samples_b[series].values if series in samples_b else []
            shift = compare_samples(va, vb, item.get("confidence", 0.95), how)
            da, db = verdicts_a.get(key), verdicts_b.get(key)
            rows.append(ItemComparison(
                name, phase, item["expect"], how, _observed(da, va, how, op),
                _observed(db, vb, how, op), da["held"] if da else None,
                db["held"] if db else None, shift, classify(shift, op)))
    return rows


def status_rank(records: list[Record]) -> int:
    closing = result(records)
    return UNFINISHED if closing is None else STATUS_RANK.get(closing.get("status", ""), 3)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _held(held: bool | None) -> str:
    return "-" if held is None else ("[green]held[/]" if held else "[red]FAILED[/]")


CHANGE_STYLE = {"regressed": "[bold red]regressed[/]", "improved": "[green]improved[/]",
                "same": "same", "untested": "[dim]too few samples[/]"}


def _stats_text(shift: Shift | None) -> str:
    if shift is None:
        return ""
    low, high = shift.ci
    ratio = f"x{shift.ratio:.3g} " if shift.ratio is not None else ""
    return (f"{ratio}Δ{shift.statistic}\n[{low:.3g}, {high:.3g}] @{shift.confidence:.0%}\n"
            f"p={shift.p_value:.2g} δ={shift.cliffs_delta:+.2f}")


def comparison_table(rows: list[ItemComparison], title: str) -> Table:
    table = Table(title=title, title_justify="left", caption="Δ: B - A interval; p: Mann-Whitney "
                  "U; δ: Cliff's delta (+1: every B sample above A's)", caption_justify="left")
    table.add_column("item (phase)\nexpectation", no_wrap=True)
    table.add_column("A", justify="right", no_wrap=True)
    table.add_column("B", justify="right", no_wrap=True)
    table.add_column("verdict A→B", no_wrap=True)
    table.add_column("change", min_width=9)
    table.add_column("B vs A")
    for row in rows:
        change = CHANGE_STYLE[row.change] + (" [red](verdict worse)[/]" if row.verdict_worse
                                             else "")
        table.add_row(f"{row.item} ({row.phase})\n[dim]{row.aggregate} {row.expect}[/]",
                      _fmt(row.a_observed), _fmt(row.b_observed),
                      f"{_held(row.a_held)}→{_held(row.b_held)}", change, _stats_text(row.shift))
    return table


def _describe(records: list[Record], path: Path) -> str:
    head, closing = header(records), result(records) or {}
    return (f"{path} (run {head.get('run_id')}, seed {head.get('seed')}, "
            f"{closing.get('status', 'unfinished')})")


def compare_journals(a: Path, b: Path, console: Console | None = None) -> int:
    """Print the A/B table; 1 if B regressed significantly or its verdict is worse, else 0."""
    console = console or Console()
    records_a, records_b = read_journal(a), read_journal(b)
    check_comparable(records_a, records_b, Path(a), Path(b))
    rows = compare_items(records_a, records_b)
    console.print(f"A: {_describe(records_a, Path(a))}\nB: {_describe(records_b, Path(b))}")
    if header(records_a).get("seed") != header(records_b).get("seed"):
        console.print("[yellow]note: the seeds differ, so fault placement may differ too; "
                      "rerun with the same --seed for a like-for-like comparison[/]")
    console.print(comparison_table(rows, f"{header(records_a).get('experiment')}: A/B"))
    worse_status = status_rank(records_b) > status_rank(records_a)
    failing = [f"{r.item} ({r.phase})" for r in rows if r.gate_fails]
    if failing or worse_status:
        reasons = failing + (["B's run status is worse"] if worse_status else [])
        console.print("[bold red]B is worse than A:[/] " + ", ".join(reasons))
        return 1
    console.print("[bold green]B is no worse than A[/]")
    return 0
