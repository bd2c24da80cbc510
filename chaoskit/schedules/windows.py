"""Allowed windows and freezes: wall-clock periods in a time zone, with `not` for exceptions.

A window is clauses separated by ";" (or new lines). A clause is any of, in any order:

    days        Mon-Fri   Sat,Sun   Fri-Mon (wraps)        default: every day
    dates       2026-11-01..2026-11-09   2026-11-11         inclusive; default: any date
    hours       09:00-18:00   22:00-02:00 (across midnight)  end exclusive, 24:00 allowed;
                                                             default: the whole day

and may start with `not`. A moment is inside the window when it matches at least one plain
clause (or there is none) and no `not` clause. Days and dates name the day a period starts:
`Fri 22:00-02:00` runs from Friday 22:00 to Saturday 02:00. Times are wall-clock times in the
schedule's zone, so `09:00-18:00` means 09:00 local time in winter and in summer.

    window: "Mon-Fri 09:00-18:00; not 2026-11-04..2026-11-12"

A freeze (the pre-peak weeks when only approved experiments run) is written the same way, e.g.
"2026-11-04..2026-11-12"; see `check_window`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from zoneinfo import ZoneInfo

from chaoskit.schedules.zones import ScheduleError, aware, zone

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
FULL_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
HINT = ('write clauses like "Mon-Fri 09:00-18:00", "2026-11-01..2026-11-09" or '
        '"not 2026-11-10..2026-11-12", separated by ";"')
_HOURS = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")
_DATES = re.compile(r"^\d{4}-\d{2}-\d{2}(\.\.\d{4}-\d{2}-\d{2})?(,\d{4}-\d{2}-\d{2}"
                    r"(\.\.\d{4}-\d{2}-\d{2})?)*$")
_DAYS = re.compile(r"^[A-Za-z]+(-[A-Za-z]+)?(,[A-Za-z]+(-[A-Za-z]+)?)*$")
SEARCH_DAYS = 400
DAY = 24 * 60


@dataclass(frozen=True)
class Clause:
    text: str
    exclude: bool = False
    days: frozenset[int] | None = None               # 0 = Monday; None: every day
    dates: tuple[tuple[date, date], ...] = ()        # inclusive; empty: any date
    start: int = 0                                   # minutes after midnight
    end: int = DAY                                   # exclusive; <= start: the next day

    def _opens_on(self, day: date) -> bool:
        return ((self.days is None or day.weekday() in self.days)
                and (not self.dates or any(a <= day <= b for a, b in self.dates)))

    def covers(self, wall: datetime) -> bool:
        minute = wall.hour * 60 + wall.minute + wall.second / 60
        if self.start < self.end:
            return self.start <= minute < self.end and self._opens_on(wall.date())
        return ((minute >= self.start and self._opens_on(wall.date()))
                or (minute < self.end and self._opens_on(wall.date() - timedelta(days=1))))

    def edges(self, day: date) -> list[datetime]:
        """Wall times on `day` where this clause may start or stop covering."""
        midnight = datetime.combine(day, clock())
        return [midnight + timedelta(minutes=m) for m in {0, self.start, self.end % DAY}]


@dataclass(frozen=True)
class Window:
    text: str
    clauses: tuple[Clause, ...]

    def blocking(self, wall: datetime) -> Clause | None:
        """The `not` clause that excludes `wall`, if one does."""
        return next((c for c in self.clauses if c.exclude and c.covers(wall)), None)

    def contains(self, wall: datetime) -> bool:
        plain = [c for c in self.clauses if not c.exclude]
        if plain and not any(c.covers(wall) for c in plain):
            return False
        return self.blocking(wall) is None

    def recurring(self) -> Window:
        """The window without its dates: what every week repeats (plain clauses lose their
        dates, dated `not` clauses are dropped). A schedule is checked against this."""
        kept = tuple(replace(c, dates=()) for c in self.clauses if not (c.exclude and c.dates))
        return Window(self.text, kept)

    def next_change(self, after: datetime, where: ZoneInfo, inside: bool) -> datetime | None:
        """The first moment after `after` at which `contains` is `inside` (within ~a year)."""
        local = aware(after).astimezone(where).replace(tzinfo=None)
        candidates = sorted({edge for offset in range(-1, SEARCH_DAYS) for clause in self.clauses
                             for edge in clause.edges(local.date() + timedelta(days=offset))})
        for wall in candidates:
            moment = wall.replace(tzinfo=where)
            if moment.astimezone(UTC) <= after.astimezone(UTC):
                continue
            seen = moment.astimezone(UTC).astimezone(where).replace(tzinfo=None)
            if self.contains(seen) == inside:
                return moment.astimezone(UTC).astimezone(where)
        return None


def _fail(what: str, hint: str = HINT) -> ScheduleError:
    """Names the offending part only: the window's text may hold "; " (the spec splits there)."""
    return ScheduleError(f"window: {what}", hint=hint, field="window")


def _day(name: str) -> int:
    lowered = name.lower()
    for index, full in enumerate(FULL_DAYS):
        if lowered == DAYS[index] or lowered == full:
            return index
    raise _fail(f"{name!r} is not a day (Mon, Tue, Wed, Thu, Fri, Sat, Sun)")


def _days(token: str) -> frozenset[int]:
    found: set[int] = set()
    for part in token.split(","):
        first, _, last = part.partition("-")
        start = _day(first)
        stop = _day(last) if last else start
        found |= {(start + i) % 7 for i in range((stop - start) % 7 + 1)}
    return frozenset(found)


def _date(token: str) -> date:
    try:
        return date.fromisoformat(token)
    except ValueError:
        raise _fail(f"{token!r} is not a date (YYYY-MM-DD)") from None


def _dates(token: str) -> tuple[tuple[date, date], ...]:
    ranges = []
    for part in token.split(","):
        first, _, last = part.partition("..")
        start, stop = _date(first), _date(last or first)
        if stop < start:
            raise _fail(f"the date range {part!r} ends before it starts")
        ranges.append((start, stop))
    return tuple(ranges)


def _hours(match: re.Match[str], token: str) -> tuple[int, int]:
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2):
        raise _fail(f"{token!r} is not a time range (00:00 to 24:00)")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start == end:
        raise _fail(f"{token!r} is an empty time range",
                    hint="write e.g. 09:00-18:00, or leave the hours out for the whole day")
    return start, end


def _clause(raw: str) -> Clause:
    tokens = raw.split()
    exclude = bool(tokens) and tokens[0].lower() == "not"
    tokens = tokens[1:] if exclude else tokens
    if not tokens:
        raise _fail(f"{raw.strip() or 'a clause'!r} says nothing: add days, dates or hours")
    days: frozenset[int] | None = None
    dates: tuple[tuple[date, date], ...] | None = None
    hours: tuple[int, int] | None = None
    for token in tokens:
        if (match := _HOURS.match(token)) is not None:
            _once(hours, "hours", raw)
            hours = _hours(match, token)
        elif _DATES.match(token):
            _once(dates, "dates", raw)
            dates = _dates(token)
        elif _DAYS.match(token):
            _once(days, "days", raw)
            days = _days(token)
        else:
            raise _fail(f"{token!r} is not days, dates or hours")
    start, end = hours or (0, DAY)
    return Clause(" ".join(raw.split()), exclude, days, dates or (), start, end)


def _once(seen: object, kind: str, raw: str) -> None:
    if seen is not None:
        raise _fail(f"two {kind} in one clause {raw.strip()!r}: split it with ';'")


def parse_window(text: str) -> Window:
    """The window read, or ScheduleError saying which part is wrong and what to write."""
    if not isinstance(text, str) or not text.strip():
        raise _fail("it is empty",
                    hint="leave `window` out to allow any time, or " + HINT)
    raws = [r for r in re.split(r"[;\n]", text) if r.strip()]
    clauses = tuple(_clause(r) for r in raws)
    return Window("; ".join(c.text for c in clauses), clauses)


def local_wall(moment: datetime, timezone: str) -> datetime:
    """`moment` as a naive wall-clock time in `timezone` (what clauses compare against)."""
    return aware(moment).astimezone(zone(timezone)).replace(tzinfo=None)
