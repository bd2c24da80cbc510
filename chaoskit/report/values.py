"""Values as people read them: `9.2 ms`, `99.9%`, `3 rows`, `200/s`, never `0.0092` or `1`.

Every probe says the unit of what it measures (`unit()`); the engine journals it, and every
table, line and plot label formats through here.
"""

from __future__ import annotations

import math

UNITS = ("s", "ratio", "count", "rows", "requests", "mismatches", "rate", "amount", "bytes",
         "cores", "")


def _sig(value: float, digits: int = 3) -> str:
    """`value` to `digits` significant digits, without a trailing '.0' or exponent."""
    if value == 0:
        return "0"
    text = f"{value:.{digits}g}"
    if "e" in text:
        text = f"{value:.{max(0, digits - 1 - math.floor(math.log10(abs(value))))}f}"
    return text


def seconds(value: float) -> str:
    size = abs(value)
    if size == 0:
        return "0 ms"
    if size < 1e-3:
        return f"{_sig(value * 1e6, 3)} µs"
    if size < 1:
        return f"{_sig(value * 1e3, 3)} ms"
    if size < 120:
        return f"{_sig(value, 3)} s"
    minutes, rest = divmod(round(value), 60)
    return f"{minutes}m {rest:02d}s" if minutes < 120 else f"{minutes // 60}h {minutes % 60:02d}m"


def ratio(value: float) -> str:
    percent = value * 100
    if percent in (0, 100):
        return f"{percent:.0f}%"
    return f"{_sig(percent, 3) if abs(percent) >= 0.01 else _sig(percent, 2)}%"


def count(value: float, noun: str = "", plural: str = "") -> str:
    text = f"{value:,.0f}" if float(value).is_integer() else _sig(value, 4)
    if not noun:
        return text
    return f"{text} {noun}" if value == 1 else f"{text} {plural or noun + 's'}"


def size(value: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{_sig(value, 3)} {unit}"
        value /= 1024
    return f"{value} B"


def format_value(value: float | None, unit: str = "") -> str:
    """One number for a reader, in its unit; '-' when there is none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    formats = {"s": seconds, "ratio": ratio, "count": count,
               "rows": lambda v: count(v, "row"), "requests": lambda v: count(v, "request"),
               "mismatches": lambda v: count(v, "mismatch", "mismatches"),
               "rate": lambda v: f"{_sig(v, 4)}/s",
               "amount": lambda v: f"{v:,.2f}", "bytes": size,
               "cores": lambda v: f"{_sig(v, 3)} cores"}
    return formats.get(unit, lambda v: _sig(v, 4))(float(value))
