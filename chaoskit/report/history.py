"""The run history for a reader: the `chaoskit history` lines, values with their units."""

from __future__ import annotations

import time

from chaoskit.history import RunRow
from chaoskit.report.values import format_value


def _when(epoch: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch)) if epoch else "-"


def render_history(rows: list[RunRow]) -> list[str]:
    """Terminal lines: one per run (newest first as given), one per verdict under it."""
    if not rows:
        return ["no runs indexed yet (runs are indexed when they end; "
                "`chaoskit history --reindex` adds runs made before)"]
    width = max(len(r.run_id) for r in rows)
    lines = [f"{'started (UTC)':19}  {'run':{width}}  {'status':12}  {'seed':>10}  code"]
    for row in rows:
        seed = "-" if row.seed is None else str(row.seed)
        lines.append(f"{_when(row.started):19}  {row.run_id:{width}}  {row.status:12}  "
                     f"{seed:>10}  {row.code_version or '-'}")
        for verdict in row.verdicts:
            lines.append(f"    {verdict.item} ({verdict.phase}): {verdict.status or '-'}, "
                         f"observed {format_value(verdict.observed, verdict.unit or '')}"
                         f"{'' if verdict.expect is None else ', expected ' + verdict.expect}")
    return lines
