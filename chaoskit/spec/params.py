"""Experiment parameters: `${name}` anywhere in an experiment or system file, a default per
parameter, and `--set name=value` on the command line. Pure.

    parameters:
      rate: {default: 40/s, description: the evening's base rate}
      entry: {description: the system's base URL}        # no default: --set entry=... needed
    load: {profile: [{shape: constant, rate: "${rate}"}]}

A value that is exactly `${name}` takes the parameter's value as is (a number stays a
number); inside other text it is written into it. `$${` writes a literal `${`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

Loc = tuple[str | int, ...]
_REF = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_-]*)\}")


class ParameterSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    default: Any = Field(default=None, description="the value when --set does not give one "
                         "(none: the parameter must be set)")
    description: str = ""


def parse_sets(pairs: list[str]) -> dict[str, str]:
    """`name=value` pairs from the command line (the value may contain '=')."""
    values: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--set {pair}: write NAME=VALUE, e.g. --set rate=300/s")
        values[name.strip()] = value
    return values


def substitute(data: Any, values: dict[str, Any],
               unknown: Callable[[Loc, str], None], loc: Loc = ()) -> Any:
    """`data` with every `${name}` replaced; `unknown(loc, name)` for names without a value."""
    if isinstance(data, dict):
        return {k: substitute(v, values, unknown, (*loc, k)) for k, v in data.items()}
    if isinstance(data, list):
        return [substitute(v, values, unknown, (*loc, i)) for i, v in enumerate(data)]
    if not isinstance(data, str) or "${" not in data:
        return data
    whole = _REF.fullmatch(data)
    if whole and not whole.group(1):
        name = whole.group(2)
        if name not in values:
            unknown(loc, name)
            return data
        return values[name]

    def replace(match: re.Match[str]) -> str:
        if match.group(1):  # $${x}: a literal ${x}
            return "${" + match.group(2) + "}"
        if match.group(2) not in values:
            unknown(loc, match.group(2))
            return match.group(0)
        return str(values[match.group(2)])
    return _REF.sub(replace, data)
