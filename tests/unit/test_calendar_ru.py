"""The production calendar: pin the answers of ``holidays`` for the years we cover, and the kept table.

If an upgrade of ``holidays`` changes any of these, deadlines change: this file must fail first.
"""

from __future__ import annotations

from datetime import date, timedelta

import holidays
import pytest

from otklik.agents.clock.calendar_ru import DECREES, RUSSIA, DecreeYear, ProductionCalendar
from tests.clock_helpers import is_day_off, is_working_weekend_day


def _days(year: int) -> list[date]:
    d, out = date(year, 1, 1), []
    while d.year == year:
        out.append(d)
        d += timedelta(days=1)
    return out


def test_library_version_is_the_pinned_one() -> None:
    # pyproject pins holidays==0.109; the pinned answers below are that version's.
    assert holidays.__version__ == "0.109"


# Days off on weekdays (Mon–Fri), from the decrees; weekends are off anyway.
WEEKDAYS_OFF = {
    2024: [
        "2024-01-01",
        "2024-01-02",
        "2024-01-03",
        "2024-01-04",
        "2024-01-05",
        "2024-01-08",
        "2024-02-23",
        "2024-03-08",
        "2024-04-29",
        "2024-04-30",
        "2024-05-01",
        "2024-05-09",
        "2024-05-10",
        "2024-06-12",
        "2024-11-04",
        "2024-12-30",
        "2024-12-31",
    ],
    2025: [
        "2025-01-01",
        "2025-01-02",
        "2025-01-03",
        "2025-01-06",
        "2025-01-07",
        "2025-01-08",
        "2025-05-01",
        "2025-05-02",
        "2025-05-08",
        "2025-05-09",
        "2025-06-12",
        "2025-06-13",
        "2025-11-03",
        "2025-11-04",
        "2025-12-31",
    ],
    2026: [
        "2026-01-01",
        "2026-01-02",
        "2026-01-05",
        "2026-01-06",
        "2026-01-07",
        "2026-01-08",
        "2026-01-09",
        "2026-02-23",
        "2026-03-09",
        "2026-05-01",
        "2026-05-11",
        "2026-06-12",
        "2026-11-04",
        "2026-12-31",
    ],
    2027: [
        "2027-01-01",
        "2027-01-04",
        "2027-01-05",
        "2027-01-06",
        "2027-01-07",
        "2027-01-08",
        "2027-02-22",
        "2027-02-23",
        "2027-03-08",
        "2027-05-03",
        "2027-05-10",
        "2027-06-14",
        "2027-11-04",
        "2027-11-05",
        "2027-12-31",
    ],
}
WORKING_WEEKEND_DAYS = {
    2024: ["2024-04-27", "2024-11-02", "2024-12-28"],
    2025: ["2025-11-01"],
    2026: [],
    2027: ["2027-02-20"],
}
WORKING_DAYS = {2024: 248, 2025: 247, 2026: 247, 2027: 247}


@pytest.mark.parametrize("year", sorted(WEEKDAYS_OFF))
def test_days_off_of_each_year_are_pinned(year: int) -> None:
    expected_weekdays_off = {date.fromisoformat(d) for d in WEEKDAYS_OFF[year]}
    expected_working_weekend = {date.fromisoformat(d) for d in WORKING_WEEKEND_DAYS[year]}
    for d in _days(year):
        if d.weekday() < 5:
            assert is_day_off(RUSSIA, d) == (d in expected_weekdays_off), d
        else:
            assert is_day_off(RUSSIA, d) == (d not in expected_working_weekend), d
            assert is_working_weekend_day(RUSSIA, d) == (d in expected_working_weekend), d


@pytest.mark.parametrize("year", sorted(WORKING_DAYS))
def test_working_days_per_year_by_a_five_day_week(year: int) -> None:
    assert sum(not is_day_off(RUSSIA, d) for d in _days(year)) == WORKING_DAYS[year]


@pytest.mark.parametrize(
    ("day", "off"),
    [
        # New-year holidays 2026: 1–11 Jan off (3, 4 Jan moved to 9 Jan and 31 Dec).
        *[(date(2026, 1, n), True) for n in range(1, 12)],
        (date(2026, 1, 12), False),
        (date(2025, 12, 31), True),  # moved from Sun 5 Jan 2025
        (date(2026, 12, 31), True),  # moved from Sun 4 Jan 2026
        (date(2025, 12, 30), False),
        (date(2026, 12, 30), False),
        (date(2025, 6, 12), True),
        (date(2025, 6, 13), True),  # moved from Sat 8 Mar
        (date(2025, 5, 2), True),  # moved from Sat 4 Jan
        (date(2025, 5, 8), True),  # moved from Sun 23 Feb
        (date(2025, 5, 7), False),
        (date(2025, 11, 1), False),  # a working Saturday
        (date(2025, 11, 3), True),
        (date(2025, 3, 8), True),  # a holiday on a Saturday is still a holiday
        (date(2024, 12, 28), False),
        (date(2024, 12, 30), True),
        (date(2026, 3, 9), True),
        (date(2026, 5, 11), True),
        (date(2026, 2, 23), True),
    ],
)
def test_pinned_dates(day: date, off: bool) -> None:
    assert is_day_off(RUSSIA, day) is off


def test_holidays_on_weekends_are_holidays_not_ordinary_weekends() -> None:
    # A page that works on Saturdays still rests on 8 Mar 2025 (Sat) and 9 May 2026 (Sat).
    assert RUSSIA.is_holiday(date(2025, 3, 8))
    assert RUSSIA.is_holiday(date(2026, 5, 9))
    assert not RUSSIA.is_holiday(date(2025, 3, 15))  # an ordinary Saturday
    assert not RUSSIA.is_holiday(date(2025, 11, 1))  # a working Saturday


@pytest.mark.parametrize(
    ("year", "short"),
    [
        (2024, ["2024-02-22", "2024-03-07", "2024-05-08", "2024-06-11", "2024-11-02"]),
        (2025, ["2025-03-07", "2025-04-30", "2025-06-11", "2025-11-01"]),
        (2026, ["2026-04-30", "2026-05-08", "2026-06-11", "2026-11-03"]),
    ],
)
def test_short_days_of_each_year(year: int, short: list[str]) -> None:
    expected = {date.fromisoformat(d) for d in short}
    assert {d for d in _days(year) if RUSSIA.is_short_day(d)} == expected


def test_short_days_are_working_days_before_a_day_off() -> None:
    for row in DECREES.values():
        for d in row.short_days:
            assert not is_day_off(RUSSIA, d), d
            assert is_day_off(RUSSIA, d + timedelta(days=1)), d


def test_2024_working_saturdays_that_replace_full_days_are_not_short() -> None:
    # 28 Dec 2024 stands in for Mon 30 Dec; the Minister of Labour said it is not shortened.
    assert not RUSSIA.is_short_day(date(2024, 12, 28))
    assert not RUSSIA.is_short_day(date(2024, 4, 27))
    assert RUSSIA.is_short_day(date(2024, 11, 2))


@pytest.mark.parametrize(
    ("day", "weekday"),
    [
        (date(2024, 4, 27), 0),  # rest moved to Mon 29 Apr
        (date(2024, 11, 2), 1),  # rest moved to Tue 30 Apr
        (date(2024, 12, 28), 0),  # rest moved to Mon 30 Dec
        (date(2025, 11, 1), 0),  # rest moved to Mon 3 Nov
        (date(2027, 2, 20), 0),  # rest moved to Mon 22 Feb
        (date(2025, 11, 5), 2),  # an ordinary Wednesday
        (date(2025, 11, 8), 5),  # an ordinary Saturday
    ],
)
def test_schedule_weekday(day: date, weekday: int) -> None:
    assert RUSSIA.schedule_weekday(day) == weekday


@pytest.mark.parametrize("year", sorted(DECREES))
def test_kept_table_agrees_with_the_library(year: int) -> None:
    row = DECREES[year]
    library = holidays.country_holidays("RU", years=year)
    assert set(row.working_weekend_days) == {d for d in library.weekend_workdays if d.year == year}
    assert row.decree  # every row cites its decree
    # The table's weekday is the weekday of the day off the library says was substituted from it.
    plain = ProductionCalendar(decrees={})
    for d, weekday in row.working_weekend_days.items():
        assert plain.schedule_weekday(d) == weekday, d


def test_years_outside_the_table_fall_back_to_the_library() -> None:
    calendar = ProductionCalendar(decrees={})
    assert is_day_off(calendar, date(2025, 6, 13))  # the library knows moved days off
    assert not is_day_off(calendar, date(2025, 11, 1))  # and working Saturdays
    assert not calendar.is_short_day(date(2025, 6, 11))  # but no short days
    assert is_day_off(RUSSIA, date(2023, 2, 24))  # 2023, not in the table: moved from Sun 1 Jan
    assert not RUSSIA.is_short_day(date(2023, 2, 22))


def test_a_custom_row_adds_short_days() -> None:
    calendar = ProductionCalendar(decrees={2025: DecreeYear(2025, "test", short_days=frozenset({date(2025, 7, 1)}))})
    assert calendar.is_short_day(date(2025, 7, 1))
    assert not calendar.is_short_day(date(2025, 6, 11))
