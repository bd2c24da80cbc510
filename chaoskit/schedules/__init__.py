"""When a game day may run: cron firings in a time zone, allowed windows, freezes (no I/O).

`check_window` before a run and `check_schedule` before a schedule is applied return None when
allowed, else the refusal: it names the window (or freeze), the current time in the schedule's
zone, and when the window next opens. Syntax: `cron` and `windows` modules.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

from chaoskit.schedules.cron import Cron, fires, iter_fires, next_fire, parse_cron
from chaoskit.schedules.windows import Clause, Window, local_wall, parse_window
from chaoskit.schedules.zones import ScheduleError, aware, stamp, zone

__all__ = ["Clause", "Cron", "ScheduleError", "Window", "check_schedule", "check_window",
           "fires", "iter_fires", "next_fire", "parse_cron", "parse_window", "preview", "stamp",
           "zone"]

WEEK = timedelta(days=7)  # how far ahead a schedule's firings are checked against its window


def _window(value: str | Window) -> Window:
    return value if isinstance(value, Window) else parse_window(value)


def _when(moment: datetime | None, timezone: str, happens: str, never: str) -> str:
    return never if moment is None else f"{happens} {stamp(moment, timezone)}"


def outside(window: str | Window, timezone: str, now: datetime, *,
            opening: bool = True) -> str | None:
    """None when `now` is inside the window, else why not (and when it next opens)."""
    parsed = _window(window)
    wall = local_wall(now, timezone)
    if parsed.contains(wall):
        return None
    blocking = parsed.blocking(wall)
    by = f' (excluded by "{blocking.text}")' if blocking else ""
    why = f'is outside the allowed window "{parsed.text}"{by}'
    if not opening:
        return why
    opens = parsed.next_change(now, zone(timezone), inside=True)
    return f'{why}; {_when(opens, timezone, "it next opens", "it does not open within a year")}'


def frozen(freeze: str | Window, timezone: str, now: datetime) -> str | None:
    """None when `now` is outside the freeze, else the refusal's tail."""
    parsed = _window(freeze)
    if not parsed.contains(local_wall(now, timezone)):
        return None
    ends = parsed.next_change(now, zone(timezone), inside=False)
    return (f'is inside the freeze "{parsed.text}", when only approved experiments run; '
            + _when(ends, timezone, "the freeze ends", "it does not end within a year"))


def check_window(window: str | Window | None, timezone: str, now: datetime, *,
                 freeze: str | Window | None = None, approved: bool = False) -> str | None:
    """None: a run may start at `now`. Else the refusal, e.g.

    not allowed now: Sat 2026-11-07 10:15 CET (Europe/Berlin) is outside the allowed window
    "Mon-Fri 09:00-18:00"; it next opens Mon 2026-11-09 09:00 CET

    An approved experiment may run inside the freeze, never outside its own window.
    """
    now = aware(now)
    zone(timezone)
    why = outside(window, timezone, now) if window else None
    if why is None and freeze and not approved:
        why = frozen(freeze, timezone, now)
    if why is None:
        return None
    return f"not allowed now: {stamp(now, timezone)} ({timezone}) {why}"


def check_schedule(cron: str | Cron, timezone: str, window: str | Window | None,
                   now: datetime, *, horizon: timedelta = WEEK) -> str | None:
    """None when the schedule's firings over the next `horizon` (at least the next one) fall
    inside the window's weekly part, else the refusal naming the first firing outside it.

    Dates are left to each run's `check_window`: a schedule may fire before or after a dated
    window (those runs are refused), but not at hours or on days the window never allows.
    A freeze, likewise, is checked by each run, not here.
    """
    parsed = parse_cron(cron) if isinstance(cron, str) else cron
    now = aware(now)
    upcoming = iter_fires(parsed, timezone, now)
    first = next(upcoming, None)
    if first is None:
        return (f'the schedule "{parsed.text}" ({timezone}) never fires; '
                "check its day-of-month and month fields")
    if not window:
        return None
    weekly = _window(window).recurring()
    for moment in itertools.chain([first], itertools.takewhile(
            lambda m: m <= now + horizon, upcoming)):
        if not weekly.contains(local_wall(moment, timezone)):
            why = outside(window, timezone, moment, opening=False)
            return (f'the schedule "{parsed.text}" ({timezone}) fires {stamp(moment, timezone)}, '
                    f"which {why}; it is now {stamp(now, timezone)}")
    return None


def preview(cron: str | Cron, timezone: str, now: datetime, count: int = 3) -> list[str]:
    """The next firings as the refusals show times ('Mon 2026-11-09 09:30 CET')."""
    return [stamp(moment, timezone) for moment in fires(cron, timezone, aware(now), count)]
