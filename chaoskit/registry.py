"""One registry per plug-in point (faults, probes, platforms), filled from entry points.

Built-in kinds register through the same entry-point groups as third-party ones
(pyproject.toml), so adding a kind is one class and one line there.
"""

from __future__ import annotations

import difflib
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from chaoskit.errors import FaultError, PlatformError, ProbeError

FAULTS = "chaoskit.faults"
PROBES = "chaoskit.probes"
PLATFORMS = "chaoskit.platforms"
GROUPS = (FAULTS, PROBES, PLATFORMS)
_NOUN = {FAULTS: "fault type", PROBES: "probe type", PLATFORMS: "platform"}
_ERROR = {FAULTS: FaultError, PROBES: ProbeError, PLATFORMS: PlatformError}

_extra: dict[str, dict[str, Any]] = {group: {} for group in GROUPS}


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


def get(group: str, name: str) -> Any:
    """The class registered under `name`; an error saying what is known when there is none."""
    try:
        found = lookup(group, name)
    except Exception as exc:  # noqa: BLE001 - a broken third-party plug-in is not our bug
        raise _ERROR[group](f"the {_NOUN[group]} '{name}' failed to load: {exc}",
                            hint="reinstall the package that provides it") from exc
    if found is None:
        raise _ERROR[group](f"unknown {_NOUN[group]} '{name}'", hint=suggest(group, name))
    return found


def register(group: str, name: str, cls: Any) -> None:
    """Register a kind at run time (tests, notebooks); entry points are the normal way."""
    _extra[group][name] = cls


def unregister(group: str, name: str) -> None:
    _extra[group].pop(name, None)


def suggest(group: str, name: str) -> str:
    close = difflib.get_close_matches(name, names(group), n=1)
    known = ", ".join(names(group))
    return f"did you mean '{close[0]}'? known: {known}" if close else f"known: {known}"
