"""Five-field cron as Kubernetes CronJobs read it, and its next firings in a time zone.

`minute hour day-of-month month day-of-week`, each field `*`, `?` (day fields), a value, a range
`a-b`, a step `*/n`, `a/n` or `a-b/n`, or a comma list of these; month and weekday names (JAN,
MON) are accepted, weekdays are 0-6 with 0 = Sunday. The macros @yearly, @annually, @monthly,
@weekly, @daily, @midnight and @hourly stand for their five fields. As in cron, when both day
fields are restricted a day matches either of them.

Times are wall-clock times in the schedule's zone. Across a DST change, a time that does not
exist that day (02:30 when clocks jump from 02:00 to 03:00) does not fire, and a time that
happens twice (clocks going back) fires once, the first time.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock

from chaoskit.schedules.zones import ScheduleError, aware, zone

MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
          "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
          "@hourly": "0 * * * *"}
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# name, lowest, highest, names (their index + lowest is the value)
FIELDS = (("minute", 0, 59, ()), ("hour", 0, 23, ()), ("day of month", 1, 31, ()),
          ("month", 1, 12, MONTHS), ("day of week", 0, 6, WEEKDAYS))
HINT = ("write five fields 'minute hour day-of-month month day-of-week', e.g. '30 9 * * 1-5' "
        "(09:30 Monday to Friday), or a macro such as @daily")
SEARCH_DAYS = 8 * 366  # Feb 29 on a given weekday can be years away


@dataclass(frozen=True)
class Cron:
    """A parsed expression: the allowed values of each field."""

    text: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool      # the day-of-month field is `*` or `?`
    any_weekday: bool  # the day-of-week field is `*` or `?`

    def matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        by_day = day.day in self.days
        by_weekday = (day.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return by_day and by_weekday
        return by_day or by_weekday


def _fail(text: str, what: str) -> ScheduleError:
    return ScheduleError(f"cron {text!r}: {what}", hint=HINT, field="cron")


def _value(token: str, spec: tuple[str, int, int, tuple[str, ...]], text: str) -> int:
    name, low, high, names = spec
    if token.lower() in names:
        return names.index(token.lower()) + low
    if not token.isdigit():
        raise _fail(text, f"{token!r} is not a number in the {name} field")
    value = int(token)
    if not low <= value <= high:
        sunday = " (Sunday is 0, or SUN)" if name == "day of week" and value == 7 else ""
        raise _fail(text, f"{value} is out of range {low}-{high} in the {name} field{sunday}")
    return value


def _item(item: str, spec: tuple[str, int, int, tuple[str, ...]], text: str) -> set[int]:
    name, low, high, _ = spec
    span, _, step_text = item.partition("/")
    if "/" in item and not step_text.isdigit() or step_text == "0":
        raise _fail(text, f"step {step_text!r} in {item!r} ({name}) must be a positive number")
    step = int(step_text) if step_text else 1
    if span in ("*", "?"):
        first, last = low, high
    elif "-" in span:
        start, _, end = span.partition("-")
        first, last = _value(start, spec, text), _value(end, spec, text)
        if first > last:
            raise _fail(text, f"range {span!r} in the {name} field runs backwards")
    else:
        first = _value(span, spec, text)
        last = high if step_text else first
    return set(range(first, last + 1, step))


def _field(part: str, spec: tuple[str, int, int, tuple[str, ...]], text: str) -> set[int]:
    if "?" in part and spec[0] not in ("day of month", "day of week"):
        raise _fail(text, f"'?' is only for the day fields, not the {spec[0]} field")
    values: set[int] = set()
    for item in part.split(","):
        if not item:
            raise _fail(text, f"empty item in the {spec[0]} field {part!r}")
        values |= _item(item, spec, text)
    return values


def parse_cron(text: str) -> Cron:
    """The expression read, or ScheduleError naming the field at fault and what to write."""
    if not isinstance(text, str) or not text.strip():
        raise _fail(str(text), "it is empty")
    stripped = text.strip()
    if stripped.upper().startswith(("TZ=", "CRON_TZ=")):
        raise ScheduleError(f"cron {text!r}: the time zone goes in schedule.timezone",
                            hint="remove the TZ= prefix and write e.g. 'timezone: Europe/Berlin'",
                            field="cron")
    if stripped.startswith("@"):
        if stripped.lower() not in MACROS:
            raise _fail(text, f"{stripped} is not a macro Kubernetes knows "
                              f"({', '.join(MACROS)})")
        stripped = MACROS[stripped.lower()]
    parts = stripped.split()
    if len(parts) != 5:
        raise _fail(text, f"{len(parts)} fields, expected 5")
    values = [_field(part, spec, text) for part, spec in zip(parts, FIELDS, strict=True)]
    star = [part in ("*", "?", "*/1", "?/1") for part in parts]
    return Cron(text, tuple(sorted(values[0])), tuple(sorted(values[1])), frozenset(values[2]),
                frozenset(values[3]), frozenset(values[4]), star[2], star[4])


def _wall_times(cron: Cron, start: datetime) -> Iterator[datetime]:
    """Matching wall-clock (naive) times from `start` on, in order."""
    for offset in range(SEARCH_DAYS):
        day = start.date() + timedelta(days=offset)
        if not cron.matches(day):
            continue
        for hour in cron.hours:
            for minute in cron.minutes:
                wall = datetime.combine(day, clock(hour, minute))
                if wall >= start:
                    yield wall


def iter_fires(cron: str | Cron, timezone: str, after: datetime) -> Iterator[datetime]:
    """Firings strictly after `after`, in order, as aware datetimes in the zone (lazily)."""
    parsed = parse_cron(cron) if isinstance(cron, str) else cron
    where = zone(timezone)
    after = aware(after)
    local = after.astimezone(where).replace(tzinfo=None, second=0, microsecond=0)
    for wall in _wall_times(parsed, local):
        moment = wall.replace(tzinfo=where)
        instant = moment.astimezone(UTC)
        if instant.astimezone(where).replace(tzinfo=None) != wall:
            continue  # skipped by a DST change: this wall time does not exist that day
        if instant > after:  # not the second pass through a repeated hour, nor `after` itself
            yield moment


def fires(cron: str | Cron, timezone: str, after: datetime, count: int = 1) -> list[datetime]:
    """The next `count` firings strictly after `after`, as aware datetimes in the zone."""
    return list(itertools.islice(iter_fires(cron, timezone, after), count))


def next_fire(cron: str | Cron, timezone: str, after: datetime) -> datetime | None:
    """The first firing after `after` (None: the expression never fires, e.g. Feb 30)."""
    upcoming = fires(cron, timezone, after, 1)
    return upcoming[0] if upcoming else None
