"""The verdict table and run summary as terminal, JSON and HTML, all derived from a journal."""

from __future__ import annotations

import html
import json
import time
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from chaoskit.journal import Record, header, result
from chaoskit.report.values import format_value

STATUS_STYLE = {"held": "bold green", "failed": "bold red", "aborted": "bold yellow",
                "error": "bold red", "interrupted": "bold yellow", "crashed": "bold red",
                "inconclusive": "bold yellow", "invalid": "bold red"}
# an item's verdict in a phase, as the table shows it
MARKS = {"held": "[green]held[/]", "failed": "[red]FAILED[/]",
         "inconclusive": "[yellow]INCONCLUSIVE[/]", "not-judged": "[dim]not judged[/]"}


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def status_of(v: dict[str, Any]) -> str:
    """The item's status (journals written before statuses: from `held`)."""
    return str(v.get("status") or ("held" if v.get("held") else "failed"))


def value(v: dict[str, Any], key: str) -> str:
    return format_value(v.get(key), str(v.get("unit", "")))


def verdict_table(records: list[Record]) -> Table:
    closing = result(records) or {}
    table = Table(title=f"{header(records).get('experiment')}: "
                        f"{closing.get('status', 'unfinished').upper()}", title_justify="left")
    for column, justify in (("hypothesis", "left"), ("phase", "left"), ("expect", "left"),
                            ("observed", "right"), ("limit", "right"), ("n", "right"),
                            ("verdict", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for number, v in enumerate(closing.get("verdicts", []), 1):
        mark = MARKS.get(status_of(v), status_of(v))
        note = f" [dim]({number})[/]" if v.get("note") else ""
        expect = f"{v['aggregate']} {v['expect']}"
        table.add_row(v["item"], v["phase"], expect, value(v, "observed"),
                      value(v, "threshold"), str(v["samples"]), mark + note)
    return table


def verdict_notes(records: list[Record]) -> list[str]:
    """Notes referenced from the table by number, printed under it so columns stay readable."""
    verdicts = (result(records) or {}).get("verdicts", [])
    return [f"({n}) {v['item']} [{v['phase']}]: {v['note']}"
            for n, v in enumerate(verdicts, 1) if v.get("note")]


def example_text(example: Any) -> str:
    """One example a probe found (a violating row, a key), on one line."""
    if isinstance(example, dict):
        return ", ".join(f"{k}={v}" for k, v in example.items())
    return str(example)


def example_lines(records: list[Record]) -> list[str]:
    """What the probes of failed items found: the evidence behind the verdict."""
    return [f"{v['item']} [{v['phase']}] e.g. {example_text(e)}"
            for v in (result(records) or {}).get("verdicts", []) for e in v.get("examples") or []]


def precondition_lines(records: list[Record]) -> list[str]:
    """What the run had to achieve for its verdict to mean anything, when it did not."""
    return [f"precondition {p['name']} NOT MET: {p['detail']}"
            for p in (result(records) or {}).get("preconditions") or [] if not p.get("met")]


def wide_console() -> Console:
    """A terminal's own width; 120 columns in logs, where rich would otherwise assume 80."""
    console = Console()
    return console if console.is_terminal else Console(width=120)


def print_summary(records: list[Record], console: Console | None = None) -> None:
    console = console or wide_console()
    closing = result(records) or {}
    console.print(verdict_table(records))
    for note in verdict_notes(records):
        console.print(f"  [dim]{escape(note)}[/]")
    for line in example_lines(records):
        console.print(f"  [red]{escape(line)}[/]")
    for line in precondition_lines(records):
        console.print(f"  [yellow]{escape(line)}[/]")
    for override in header(records).get("overrides") or []:
        console.print(f"  [yellow]override: {escape(str(override))}[/]")
    status = closing.get("status", "unfinished")
    line = f"[{STATUS_STYLE.get(status, 'bold')}]{status}[/] (exit {closing.get('exit_code', '?')})"
    abort = closing.get("abort")
    if abort and abort.get("by") != "error":
        line += f"  aborted by {abort['by']}: {escape(abort['reason'])}"
    if closing.get("error"):
        line += f"  error: {escape(str(closing['error']))}"
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


# -- HTML (the report page's tables; the plots are drawn by report.html) --------------------
def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _stamp(ts: Any) -> str:
    if not isinstance(ts, int | float):
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def html_header(records: list[Record]) -> str:
    """The run's identity and outcome as a definition list."""
    head, closing = header(records), result(records) or {}
    status = closing.get("status", "unfinished")
    audit = closing.get("audit") or {}
    residue = "clean" if audit.get("clean") else _e(json.dumps(audit.get("residue") or audit))
    abort = closing.get("abort")
    rows = [("experiment", _e(head.get("experiment"))), ("run", _e(head.get("run_id"))),
            ("source", _e(head.get("source"))), ("seed", _e(head.get("seed"))),
            ("status", (f'<span class="status status-{_e(status)}" id="run-status">'
                       f"{_e(status.upper())}</span>")),
            ("exit code", _e(closing.get("exit_code", "-"))),
            ("started", _stamp(head.get("ts"))),
            ("platform", _e((head.get("platform") or {}).get("platform"))),
            ("residue audit", (f'<span class="{"ok" if audit.get("clean") else "bad"}">'
                              f"{residue}</span>"))]
    for override in head.get("overrides") or []:
        rows.append(("override", f'<span class="warn">{_e(override)}</span>'))
    if abort:
        rows.append(("aborted", (f'<span class="bad">by {_e(abort.get("by"))}: '
                                f'{_e(abort.get("reason"))}</span>')))
    if closing.get("error"):
        rows.append(("error", f'<span class="bad">{_e(closing["error"])}</span>'))
    return "\n".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows)


def stats_text(stats: dict[str, Any]) -> str:
    """One line of what the statistical test found, for the report's verdict table."""
    if not stats:
        return ""
    ci, effect = stats.get("ci") or [None, None], stats.get("effect") or {}
    parts = [f"{stats.get('statistic')} margin {_fmt(stats.get('margin'))} "
             f"[{_fmt(ci[0])}, {_fmt(ci[1])}] @{stats.get('confidence', 0):.0%}"
             + ("" if stats.get("conclusive") else " (inconclusive)")]
    if stats.get("ratio") is not None:
        rci = stats.get("ratio_ci") or [None, None]
        parts.append(f"ratio ×{_fmt(stats['ratio'])} [{_fmt(rci[0])}, {_fmt(rci[1])}]")
    parts.append(f"MWU p={_fmt(stats.get('mwu_p'))}")
    parts.append(f"Cliff's δ={_fmt(effect.get('cliffs_delta'))} ({effect.get('magnitude')})")
    n = stats.get("n") or ["?", "?"]
    parts.append(f"n={n[0]}/{n[1]}")
    return "; ".join(parts)


HTML_MARK = {"held": "held", "failed": "FAILED", "inconclusive": "INCONCLUSIVE",
             "not-judged": "not judged"}
HTML_CLASS = {"held": "ok", "failed": "bad", "inconclusive": "warn", "not-judged": "dim"}


def html_verdicts(records: list[Record]) -> str:
    """The verdict table's rows: item, phase, expectation, observed, threshold, verdict, stats."""
    rows = []
    for v in (result(records) or {}).get("verdicts", []):
        status = status_of(v)
        mark = f'<span class="{HTML_CLASS.get(status, "bad")}">{_e(HTML_MARK.get(status))}</span>'
        note = f'<div class="note">{_e(v["note"])}</div>' if v.get("note") else ""
        judged = (f'<div class="note">judged: {_e(v["judged_by"])}</div>'
                  if v.get("judged_by") else "")
        judged += "".join(f'<div class="note example">e.g. {_e(example_text(e))}</div>'
                          for e in v.get("examples") or [])
        rows.append(
            f'<tr class="verdict {_e(status)}" data-item="{_e(v["item"])}">'
            f"<td>{_e(v['item'])}</td><td>{_e(v['phase'])}</td>"
            f"<td><code>{_e(v['aggregate'])} {_e(v['expect'])}</code></td>"
            f'<td class="num">{_e(value(v, "observed"))}</td>'
            f'<td class="num">{_e(value(v, "threshold"))}</td>'
            f'<td class="num">{_e(value(v, "baseline"))}</td>'
            f'<td class="num">{_e(v.get("samples"))}</td><td>{mark}{note}{judged}</td>'
            f'<td class="stats">{_e(stats_text(v.get("stats") or {}))}</td></tr>')
    if not rows:
        rows.append('<tr><td colspan="9">no verdicts: the run did not finish</td></tr>')
    return "\n".join(rows)


def html_faults(faults: list[dict[str, Any]], marks: list[dict[str, Any]]) -> str:
    """Fault windows and notable events as table rows, in time order."""
    rows = [(f["start"], (f'<tr><td class="num">{f["start"]:.2f}–{f["end"]:.2f}s</td>'
                         f'<td>fault</td><td>{_e(f["name"])} ({_e(f["type"])}): '
                         f'{_e(f["state"])} {_e(json.dumps(f.get("facts") or {}))}</td></tr>'))
            for f in faults]
    rows += [(m["t"], (f'<tr class="{_e(m["kind"])}"><td class="num">{m["t"]:.2f}s</td>'
                      f'<td>{_e(m["kind"])}</td><td>{_e(m["label"])}</td></tr>')) for m in marks]
    if not rows:
        return '<tr><td colspan="3">no faults were injected</td></tr>'
    return "\n".join(row for _, row in sorted(rows, key=lambda r: r[0]))
