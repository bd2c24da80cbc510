"""One registry per plug-in point, filled from entry points (built-in kinds register so too)."""

from __future__ import annotations

import difflib
from functools import cache
from importlib.metadata import entry_points
from typing import Any

FAULTS = "chaoskit.faults"
PROBES = "chaoskit.probes"

_extra: dict[str, dict[str, Any]] = {FAULTS: {}, PROBES: {}}


@cache
def _entry_points(group: str) -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=group)}


def names(group: str) -> list[str]:
    return sorted(set(_entry_points(group)) | set(_extra[group]))


def lookup(group: str, name: str) -> Any | None:
    """The class registered under `name`, or None."""
    if name in _extra[group]:
        return _extra[group][name]
    ep = _entry_points(group).get(name)
    return ep.load() if ep is not None else None


def register(group: str, name: str, cls: Any) -> None:
    """Register a kind at run time (tests, notebooks); entry points are the normal way."""
    _extra[group][name] = cls


def unregister(group: str, name: str) -> None:
    _extra[group].pop(name, None)


def suggest(group: str, name: str) -> str:
    close = difflib.get_close_matches(name, names(group), n=1)
    known = ", ".join(names(group))
    return f"did you mean '{close[0]}'? known: {known}" if close else f"known: {known}"
