"""Schedules without I/O: cron firings in a zone (DST included), allowed windows, freezes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chaoskit.errors import ChaoskitError
from chaoskit.schedules import (
    ScheduleError,
    check_schedule,
    check_window,
    fires,
    next_fire,
    parse_cron,
    parse_window,
    preview,
)

BERLIN, NEW_YORK = "Europe/Berlin", "America/New_York"
WORKDAYS = "Mon-Fri 09:00-18:00"


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# -- cron ----------------------------------------------------------------------------------------


def test_cron_fields_names_steps_and_macros() -> None:
    cron = parse_cron("*/15 9-17 * JAN,jul MON-FRI")
    assert cron.minutes == (0, 15, 30, 45) and cron.hours == tuple(range(9, 18))
    assert cron.months == {1, 7} and cron.weekdays == {1, 2, 3, 4, 5}
    assert parse_cron("5/20 * * * *").minutes == (5, 25, 45)
    assert parse_cron("@daily").minutes == (0,) and parse_cron("@hourly").hours == tuple(range(24))
    assert parse_cron("0 0 ? * SUN").weekdays == {0}


def test_next_fire_is_in_the_schedules_zone_and_strictly_after() -> None:
    saturday = at(2026, 11, 7, 12, 0)
    monday = next_fire("30 9 * * 1-5", BERLIN, saturday)
    assert monday == at(2026, 11, 9, 8, 30)  # 09:30 CET
    assert monday is not None and monday.tzinfo is not None
    assert monday.strftime("%H:%M %Z") == "09:30 CET"
    assert next_fire("30 9 * * 1-5", BERLIN, monday) == at(2026, 11, 10, 8, 30)
    assert next_fire("* * * * *", "UTC", at(2026, 1, 1, 0, 0)) == at(2026, 1, 1, 0, 1)


def test_when_both_day_fields_are_restricted_either_matches_as_in_cron() -> None:
    days = [m.date().isoformat() for m in fires("0 12 13 * 5", "UTC", at(2026, 2, 1), 4)]
    assert days == ["2026-02-06", "2026-02-13", "2026-02-20", "2026-02-27"]  # Fridays + the 13th
    days = [m.date().isoformat() for m in fires("0 12 1-7 * *", "UTC", at(2026, 2, 1), 2)]
    assert days == ["2026-02-01", "2026-02-02"]


def test_a_time_skipped_by_the_spring_change_does_not_fire_that_day() -> None:
    # Europe/Berlin jumps from 02:00 to 03:00 on Sunday 2026-03-29
    shown = preview("30 2 * * *", BERLIN, at(2026, 3, 27), 3)
    assert shown == ["Fri 2026-03-27 02:30 CET", "Sat 2026-03-28 02:30 CET",
                     "Mon 2026-03-30 02:30 CEST"]
    # America/New_York jumps on 2026-03-08; 09:30 exists and moves from 14:30 to 13:30 UTC
    before, after = fires("30 9 * * *", NEW_YORK, at(2026, 3, 7), 2)
    assert (before.astimezone(UTC).hour, after.astimezone(UTC).hour) == (14, 13)


def test_a_time_repeated_by_the_autumn_change_fires_once() -> None:
    # Europe/Berlin goes back from 03:00 to 02:00 on Sunday 2026-10-25
    shown = preview("30 2 * * *", BERLIN, at(2026, 10, 24), 3)
    assert shown == ["Sat 2026-10-24 02:30 CEST", "Sun 2026-10-25 02:30 CEST",
                     "Mon 2026-10-26 02:30 CET"]
    first = fires("30 2 * * *", BERLIN, at(2026, 10, 24, 12), 1)[0]
    assert next_fire("30 2 * * *", BERLIN, first) == at(2026, 10, 26, 1, 30)  # not again at 03:30


def test_an_expression_that_never_fires() -> None:
    assert next_fire("0 0 30 2 *", "UTC", at(2026, 1, 1)) is None
    message = check_schedule("0 0 30 2 *", "UTC", None, at(2026, 1, 1))
    assert message is not None and "never fires" in message


@pytest.mark.parametrize(("text", "says"), [
    ("* * * *", "4 fields, expected 5"),
    ("0 0 * * 7", "7 is out of range 0-6 in the day of week field (Sunday is 0, or SUN)"),
    ("61 * * * *", "61 is out of range 0-59 in the minute field"),
    ("5-1 * * * *", "range '5-1' in the minute field runs backwards"),
    ("*/0 * * * *", "must be a positive number"),
    ("0 ? * * *", "'?' is only for the day fields"),
    ("@every 5m", "is not a macro Kubernetes knows"),
    ("TZ=Europe/Berlin 0 9 * * *", "the time zone goes in schedule.timezone"),
    ("0 9 * * Mo", "'Mo' is not a number in the day of week field"),
])
def test_bad_cron_says_what_is_wrong_and_what_to_write(text: str, says: str) -> None:
    with pytest.raises(ScheduleError) as raised:
        parse_cron(text)
    assert says in raised.value.message
    assert raised.value.hint and raised.value.field == "cron"
    assert "; " not in raised.value.message  # the spec's validation splits message; hint there


def test_unknown_time_zone() -> None:
    with pytest.raises(ScheduleError) as raised:
        next_fire("0 9 * * *", "Europe/Berlln", at(2026, 1, 1))
    assert "unknown time zone 'Europe/Berlln'" in raised.value.render()
    assert "Europe/Berlin" in raised.value.hint


# -- windows -------------------------------------------------------------------------------------


def test_inside_the_window_is_allowed() -> None:
    assert check_window(WORKDAYS, BERLIN, at(2026, 11, 9, 10, 0)) is None  # Mon 11:00 CET
    assert check_window(None, BERLIN, at(2026, 11, 7, 3, 0)) is None       # no window: any time


def test_outside_the_window_names_it_the_time_there_and_when_it_opens() -> None:
    message = check_window(WORKDAYS, BERLIN, at(2026, 11, 7, 9, 15))  # Saturday
    assert message == ('not allowed now: Sat 2026-11-07 10:15 CET (Europe/Berlin) is outside the '
                       'allowed window "Mon-Fri 09:00-18:00"; it next opens Mon 2026-11-09 '
                       '09:00 CET')
    late = check_window(WORKDAYS, BERLIN, at(2026, 11, 9, 17, 0))  # Monday 18:00: end exclusive
    assert late is not None and "Mon 2026-11-09 18:00 CET" in late
    assert "it next opens Tue 2026-11-10 09:00 CET" in late


def test_a_window_across_midnight_belongs_to_the_day_it_opens() -> None:
    window = "Fri 22:00-02:00"
    assert check_window(window, "UTC", at(2026, 11, 6, 23, 0)) is None   # Friday 23:00
    assert check_window(window, "UTC", at(2026, 11, 7, 1, 59)) is None   # Saturday 01:59
    saturday_night = check_window(window, "UTC", at(2026, 11, 7, 23, 0))
    assert saturday_night is not None and "next opens Fri 2026-11-13 22:00 UTC" in saturday_night
    friday_early = check_window(window, "UTC", at(2026, 11, 6, 1, 0))  # Thursday's night: no
    assert friday_early is not None
    assert check_window("22:00-06:00", "UTC", at(2026, 11, 10, 5, 59)) is None


def test_a_window_is_wall_clock_time_across_a_dst_change() -> None:
    # 07:30 UTC is 08:30 in Berlin before 2026-03-29 and 09:30 after it
    before = check_window(WORKDAYS, BERLIN, at(2026, 3, 27, 7, 30))
    assert before is not None and "Fri 2026-03-27 08:30 CET" in before
    assert check_window(WORKDAYS, BERLIN, at(2026, 3, 30, 7, 30)) is None
    # New York falls back on Sunday 2026-11-01: the night window still ends at 06:00 local
    night = "Sun 00:00-06:00"
    assert check_window(night, NEW_YORK, at(2026, 11, 1, 10, 59)) is None   # 05:59 EST
    after = check_window(night, NEW_YORK, at(2026, 11, 1, 11, 0))           # 06:00 EST
    assert after is not None and "Sun 2026-11-01 06:00 EST" in after
    assert "next opens Sun 2026-11-08 00:00 EST" in after


def test_date_ranges_and_lists() -> None:
    window = "2026-11-01..2026-11-09,2026-11-20 08:00-20:00"
    assert check_window(window, BERLIN, at(2026, 11, 5, 12)) is None
    assert check_window(window, BERLIN, at(2026, 11, 20, 12)) is None
    between = check_window(window, BERLIN, at(2026, 11, 12, 12))
    assert between is not None and "next opens Fri 2026-11-20 08:00 CET" in between
    past = check_window("2025-01-01..2025-01-31", BERLIN, at(2026, 11, 12, 12))
    assert past is not None and past.endswith("it does not open within a year")


def test_not_clauses_carve_out_of_the_window() -> None:
    window = "Mon-Fri 09:00-18:00; not 2026-11-10..2026-11-12"
    message = check_window(window, BERLIN, at(2026, 11, 11, 10))
    assert message is not None
    assert 'excluded by "not 2026-11-10..2026-11-12"' in message
    assert "next opens Fri 2026-11-13 09:00 CET" in message
    assert check_window("not Sat,Sun", "UTC", at(2026, 11, 11, 3)) is None  # only exclusions


def test_a_freeze_refuses_all_but_approved_experiments() -> None:
    freeze = "2026-11-04..2026-11-12"
    now = at(2026, 11, 10, 9)
    message = check_window(WORKDAYS, BERLIN, now, freeze=freeze)
    assert message == ('not allowed now: Tue 2026-11-10 10:00 CET (Europe/Berlin) is inside the '
                       'freeze "2026-11-04..2026-11-12", when only approved experiments run; the '
                       'freeze ends Fri 2026-11-13 00:00 CET')
    assert check_window(WORKDAYS, BERLIN, now, freeze=freeze, approved=True) is None
    saturday = check_window(WORKDAYS, BERLIN, at(2026, 11, 7, 10), freeze=freeze, approved=True)
    assert saturday is not None and "outside the allowed window" in saturday  # approved != any time
    assert check_window(None, BERLIN, at(2026, 11, 20, 10), freeze=freeze) is None


def test_a_schedule_firing_outside_its_window_is_refused() -> None:
    now = at(2026, 11, 7, 9, 15)
    assert check_schedule("30 9 * * 1-5", BERLIN, WORKDAYS, now) is None
    message = check_schedule("30 9 * * *", BERLIN, WORKDAYS, now)
    assert message == ('the schedule "30 9 * * *" (Europe/Berlin) fires Sun 2026-11-08 09:30 CET, '
                       'which is outside the allowed window "Mon-Fri 09:00-18:00"; it is now '
                       'Sat 2026-11-07 10:15 CET')
    every_minute = check_schedule("* * * * *", BERLIN, WORKDAYS, at(2026, 11, 9, 9))  # Mon 10:00
    assert every_minute is not None and "fires Mon 2026-11-09 18:00 CET" in every_minute
    utc_cron = check_schedule("30 8 * * 1-5", BERLIN, "Mon-Fri 09:00-18:00", at(2026, 3, 20))
    assert utc_cron is not None and "08:30 CET" in utc_cron  # 08:30 local, not UTC


def test_a_schedule_may_fire_outside_the_dates_of_its_window_but_not_its_hours() -> None:
    """Runs outside the dates are refused one by one; hours the window never allows are a
    mistake in the schedule (a cron written in UTC, say)."""
    window = "2026-11-01..2026-11-09 Mon-Fri 09:00-18:00; not 2026-11-04"
    october = at(2026, 10, 20)
    assert check_schedule("30 9 * * 1-5", BERLIN, window, october) is None
    assert check_window(window, BERLIN, at(2026, 10, 21, 8, 30)) is not None  # that run: refused
    assert check_schedule("30 19 * * 1-5", BERLIN, window, october) is not None


@pytest.mark.parametrize(("text", "says"), [
    ("Mon-Fry 09:00-18:00", "'Fry' is not a day"),
    ("9-18", "'9-18' is not days, dates or hours"),
    ("Mon 25:00-26:00", "'25:00-26:00' is not a time range"),
    ("Mon 09:00-09:00", "'09:00-09:00' is an empty time range"),
    ("Mon Tue", "two days in one clause 'Mon Tue'"),
    ("2026-02-30", "'2026-02-30' is not a date (YYYY-MM-DD)"),
    ("2026-11-09..2026-11-01", "ends before it starts"),
    ("not", "says nothing"),
    ("", "it is empty"),
])
def test_bad_window_syntax_names_the_part_and_what_to_write(text: str, says: str) -> None:
    with pytest.raises(ScheduleError) as raised:
        parse_window(text)
    error = raised.value
    assert says in error.message and error.field == "window"
    assert "Mon-Fri 09:00-18:00" in error.hint or "09:00-18:00" in error.hint
    assert "; " not in error.message
    assert str(error) == f"{error.message}; {error.hint}"  # as pydantic validators raise it
    assert isinstance(error, ValueError) and isinstance(error, ChaoskitError)
    assert error.exit_status == 2


def test_windows_accept_full_day_names_lines_and_wrapping_day_ranges() -> None:
    window = parse_window("Friday-Monday 00:00-24:00\nnot 2026-11-09")
    assert len(window.clauses) == 2
    assert window.text == "Friday-Monday 00:00-24:00; not 2026-11-09"  # as refusals quote it
    assert window.clauses[0].days == {4, 5, 6, 0}
    assert check_window("Sat-Sun", "UTC", at(2026, 11, 8, 23, 59)) is None


def test_now_must_be_timezone_aware() -> None:
    with pytest.raises(TypeError):
        check_window(WORKDAYS, BERLIN, datetime(2026, 11, 9, 10))


def test_the_opening_search_is_quick_even_when_the_window_is_rare() -> None:
    started = datetime.now(UTC)
    message = check_window("2026-12-21..2026-12-31 Mon 03:00-03:05", "UTC", at(2026, 3, 1))
    assert message is not None and "next opens Mon 2026-12-21 03:00 UTC" in message
    assert check_window("not Mon-Sun", "UTC", at(2026, 3, 1)) is not None  # never opens
    assert datetime.now(UTC) - started < timedelta(seconds=2)


def test_a_pydantic_validator_may_raise_schedule_errors_as_they_are() -> None:
    from pydantic import BaseModel, ValidationError, field_validator

    class Schedule(BaseModel):
        window: str

        @field_validator("window")
        @classmethod
        def readable(cls, value: str) -> str:
            parse_window(value)
            return value

    with pytest.raises(ValidationError) as raised:
        Schedule(window="Mon-Fry 09:00-18:00")
    message, _, hint = raised.value.errors()[0]["msg"].partition("; ")
    assert message == "Value error, window: 'Fry' is not a day (Mon, Tue, Wed, Thu, Fri, Sat, Sun)"
    assert hint.startswith('write clauses like "Mon-Fri 09:00-18:00"')
