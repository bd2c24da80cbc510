"""The terminal verdict table and the JSON summary, both derived from a journal."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from chaoskit.engine.journal import Record, header, result

STATUS_STYLE = {"held": "bold green", "failed": "bold red", "aborted": "bold yellow",
                "error": "bold red", "interrupted": "bold yellow", "crashed": "bold red"}


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def verdict_table(records: list[Record]) -> Table:
    closing = result(records) or {}
    table = Table(title=f"{header(records).get('experiment')}: "
                        f"{closing.get('status', 'unfinished').upper()}", title_justify="left")
    for column, justify in (("hypothesis", "left"), ("phase", "left"), ("expect", "left"),
                            ("observed", "right"), ("threshold", "right"), ("n", "right"),
                            ("verdict", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for v in closing.get("verdicts", []):
        mark = "[green]held[/]" if v["held"] else "[red]FAILED[/]"
        note = f" [dim]{v['note']}[/]" if v.get("note") else ""
        expect = f"{v['aggregate']} {v['expect']}"
        table.add_row(v["item"], v["phase"], expect, _fmt(v["observed"]), _fmt(v["threshold"]),
                      str(v["samples"]), mark + note)
    return table


def print_summary(records: list[Record], console: Console | None = None) -> None:
    console = console or Console()
    closing = result(records) or {}
    console.print(verdict_table(records))
    status = closing.get("status", "unfinished")
    line = f"[{STATUS_STYLE.get(status, 'bold')}]{status}[/] (exit {closing.get('exit_code', '?')})"
    abort = closing.get("abort")
    if abort:
        line += f"  aborted by {abort['by']}: {abort['reason']}"
    if closing.get("error"):
        line += f"  error: {closing['error']}"
    audit = closing.get("audit") or {}
    line += "  residue audit: " + ("clean" if audit.get("clean") else f"[red]{audit}[/]")
    console.print(line)


def json_summary(records: list[Record]) -> dict[str, Any]:
    head, closing = header(records), result(records) or {}
    return {"run_id": head.get("run_id"), "experiment": head.get("experiment"),
            "seed": head.get("seed"), "status": closing.get("status"),
            "exit_code": closing.get("exit_code"), "verdicts": closing.get("verdicts", []),
            "abort": closing.get("abort"), "audit": closing.get("audit"),
            "error": closing.get("error")}
