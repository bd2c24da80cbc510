"""Human units: durations (300ms, 2m), rates (200/s), ratios (50%, 0.5), time scales (1h=60s)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_PART = r"(\d+(?:\.\d+)?)\s*(us|µs|ms|s|m|h|d)"
_DURATION = re.compile(rf"^\s*(?:{_PART}\s*)+$")
_DURATION_PARTS = re.compile(_PART)
_DURATION_FACTORS = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0,
                     "d": 86400.0}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*(s|m|h)|rps)?\s*$")
_PERCENT = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*%\s*$")
_SCALE = re.compile(r"^\s*([^=]+?)\s*=\s*([^=]+?)\s*$")


def parse_duration(value: Any) -> float:
    """Seconds from '300ms', '2m', '1.5s', '1h30m'. Bare numbers are refused: units are required."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"expected a duration with a unit like '300ms' or '2m', got {value!r}")
    if not _DURATION.match(value):
        raise ValueError(f"'{value}' is not a duration; write e.g. 300ms, 1.5s, 2m or 1h30m")
    return sum(float(n) * _DURATION_FACTORS[unit] for n, unit in _DURATION_PARTS.findall(value))


def positive_duration(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"duration must be greater than zero, got '{value}'")
    return seconds


def parse_rate(value: Any) -> float:
    """Requests per second from 200, '200/s', '12000/m', '500rps'."""
    if isinstance(value, bool):
        raise ValueError(f"expected a rate like '200/s', got {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"rate must not be negative, got {value}")
        return float(value)
    match = _RATE.match(str(value))
    if not match:
        raise ValueError(f"'{value}' is not a rate; write e.g. 200/s, 12000/m or 200")
    per = {"s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}[match.group(2)]
    return float(match.group(1)) / per


def parse_ratio(value: Any) -> float:
    """A share in [0, 1] from '50%', 0.5 or 1."""
    if isinstance(value, bool):
        raise ValueError(f"expected a share like '50%' or 0.5, got {value!r}")
    if isinstance(value, str):
        match = _PERCENT.match(value)
        if not match:
            raise ValueError(f"'{value}' is not a share; write e.g. 50% or 0.5")
        ratio = float(match.group(1)) / 100.0
    elif isinstance(value, int | float):
        ratio = float(value)
    else:
        raise ValueError(f"expected a share like '50%' or 0.5, got {value!r}")
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"a share must be between 0% and 100%, got {value!r}")
    return ratio


def parse_time_scale(value: Any) -> float:
    """How many scenario seconds pass per run second: '1h=60s' -> 60.0; a plain number too."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value <= 0:
            raise ValueError(f"time_scale must be positive, got {value}")
        return float(value)
    match = _SCALE.match(str(value))
    if not match:
        raise ValueError(f"'{value}' is not a time scale; write e.g. 1h=60s (an hour in a minute)")
    scenario, real = positive_duration(match.group(1)), positive_duration(match.group(2))
    return scenario / real


def format_duration(seconds: float) -> str:
    """90.0 -> '1m30s', 0.25 -> '250ms', 3600 -> '1h'."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours:g}h" if hours else "", f"{minutes:g}m" if minutes else "",
             f"{secs:g}s" if secs else ""]
    return "".join(parts)


def parse_quantity(text: str) -> float:
    """'300ms' -> 0.3, '99.9%' -> 0.999, '200/s' -> 200, '5' -> 5."""
    text = text.strip()
    for parse in (float, parse_duration, parse_ratio, parse_rate):
        try:
            return float(parse(text))
        except ValueError:
            continue
    raise ValueError(f"'{text}' is not a number, duration, percentage, rate or baseline; "
                     "write e.g. '300ms', '99.9%', '5' or 'baseline * 1.5'")


def _schema(pattern: str, example: str, description: str) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", "pattern": pattern, "examples": [example],
                           "description": description})


_DUR_PATTERN = r"^\s*(\d+(\.\d+)?\s*(us|µs|ms|s|m|h|d)\s*)+$"
# Durations are floats of seconds in Python; written back as '1.5s' in JSON (journals, schema).
_AS_SECONDS = PlainSerializer(lambda v: f"{v:g}s", return_type=str, when_used="json")
_RATE_PATTERN = r"^\s*\d+(\.\d+)?\s*(/\s*(s|m|h)|rps)?\s*$"
_PERCENT_PATTERN = r"^\s*\d+(\.\d+)?\s*%\s*$"
Duration = Annotated[float, BeforeValidator(parse_duration),
                     _schema(_DUR_PATTERN, "300ms", "a duration: 300ms, 1.5s, 2m, 1h"),
                     _AS_SECONDS]
PositiveDuration = Annotated[float, BeforeValidator(positive_duration),
                             _schema(_DUR_PATTERN, "2m", "a duration greater than zero"),
                             _AS_SECONDS]
def seconds(value: Any) -> float:
    """A positive duration, or a bare number of seconds (fields that always took numbers)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value <= 0:
            raise ValueError(f"duration must be greater than zero, got {value}")
        return float(value)
    return positive_duration(value)


Seconds = Annotated[float, BeforeValidator(seconds),
                    WithJsonSchema({"anyOf": [{"type": "number", "exclusiveMinimum": 0},
                                              {"type": "string", "pattern": _DUR_PATTERN}],
                                    "examples": ["30s"],
                                    "description": "a duration (30s) or a number of seconds"}),
                    _AS_SECONDS]
Rate = Annotated[float, BeforeValidator(parse_rate),
                 WithJsonSchema({"anyOf": [{"type": "number", "minimum": 0},
                                           {"type": "string", "pattern": _RATE_PATTERN}],
                                 "examples": ["200/s"], "description": "requests per second"})]
Ratio = Annotated[float, BeforeValidator(parse_ratio),
                  WithJsonSchema({"anyOf": [{"type": "number", "minimum": 0, "maximum": 1},
                                            {"type": "string", "pattern": _PERCENT_PATTERN}],
                                  "examples": ["50%"], "description": "a share: 50% or 0.5"})]
TimeScale = Annotated[float, BeforeValidator(parse_time_scale),
                      WithJsonSchema({"anyOf": [{"type": "number", "exclusiveMinimum": 0},
                                                {"type": "string", "pattern": r"^[^=]+=[^=]+$"}],
                                      "examples": ["1h=60s"],
                                      "description": "scenario time = run time, e.g. 1h=60s"})]
