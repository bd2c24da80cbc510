"""Time zones and the error every schedule and window problem raises (what to write instead)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from chaoskit.errors import ChaoskitError


class ScheduleError(ChaoskitError, ValueError):
    """A cron expression, window or time zone that cannot be read.

    A ValueError too, and its text is "message; hint": a pydantic validator may raise it as is
    and the spec's validation splits it into the problem and its fix, as for units.
    """

    code = "CK120"
    exit_status = 2

    def __init__(self, message: str, *, hint: str, field: str = "") -> None:
        super().__init__(message, hint=hint)
        self.field = field

    def __str__(self) -> str:
        return f"{self.message}; {self.hint}"


def zone(name: str) -> ZoneInfo:
    """The IANA zone `name` (UTC included)."""
    try:
        if not name or name != name.strip() or name.startswith(("/", ".")) or ".." in name:
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"unknown time zone {name!r}",
                            hint="write an IANA zone name such as Europe/Berlin, "
                                 "America/New_York or UTC", field="timezone") from None


def aware(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise TypeError("pass a timezone-aware datetime, e.g. datetime.now(UTC)")
    return now


def stamp(moment: datetime, name: str) -> str:
    """'Sat 2026-11-07 10:15 CET' in zone `name`: how refusals and previews show a time."""
    return aware(moment).astimezone(zone(name)).strftime("%a %Y-%m-%d %H:%M %Z")


def utc(moment: datetime) -> datetime:
    return aware(moment).astimezone(UTC)
