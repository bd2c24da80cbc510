"""Values with their units in every table and line: `9.2 ms`, `100%`, `3 rows`, never floats."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from chaoskit.report.summary import print_summary
from chaoskit.report.values import format_value


@pytest.mark.parametrize(("value", "unit", "shown"), [
    (0.00915, "s", "9.15 ms"), (0.5, "s", "500 ms"), (1.25, "s", "1.25 s"),
    (0.0000123, "s", "12.3 µs"), (1.0, "ratio", "100%"), (0.999, "ratio", "99.9%"),
    (0.001, "ratio", "0.1%"), (0.0, "ratio", "0%"), (3.0, "rows", "3 rows"),
    (1.0, "rows", "1 row"), (0.0, "requests", "0 requests"),
    (1.0, "requests", "1 request"), (2.0, "mismatches", "2 mismatches"),
    (200.0, "rate", "200/s"), (12345.678, "amount", "12,345.68"),
    (1536.0, "bytes", "1.5 KiB"), (7.0, "count", "7"), (None, "s", "-"),
])
def test_values_read_in_their_units(value: float | None, unit: str, shown: str) -> None:
    assert format_value(value, unit) == shown


def test_the_verdict_table_shows_units_statuses_and_unmet_preconditions() -> None:
    verdicts = [
        {"item": "gateway-p99", "phase": "during", "expect": "<= 500ms", "aggregate": "p90",
         "held": True, "status": "held", "observed": 0.00915, "threshold": 0.5, "samples": 20,
         "unit": "s"},
        {"item": "refunds-on-schedule", "phase": "during", "expect": ">= 99.9%",
         "aggregate": "every", "held": False, "status": "inconclusive", "observed": None,
         "threshold": None, "samples": 0, "unit": "ratio", "note": "no evidence: ..."},
        {"item": "money-safe", "phase": "after", "expect": "== 0", "aggregate": "every",
         "held": False, "status": "not-judged", "observed": None, "threshold": None,
         "samples": 0, "unit": "rows", "note": "not judged: the run stopped"},
    ]
    records = [{"kind": "header", "experiment": "x"},
               {"kind": "result", "status": "inconclusive", "exit_code": 5,
                "verdicts": verdicts, "audit": {"clean": True},
                "preconditions": [{"name": "load-delivered", "met": False,
                                   "detail": "chaoskit sent 59% of the arrivals"}]}]
    out = io.StringIO()
    print_summary(records, Console(file=out, width=160))
    text = out.getvalue()
    assert "9.15 ms" in text and "500 ms" in text and "0.00915" not in text
    assert "INCONCLUSIVE" in text and "not judged" in text and "FAILED" not in text
    assert "precondition load-delivered NOT MET: chaoskit sent 59%" in text
