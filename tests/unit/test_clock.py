"""The working-hours clock: schedules, the calendar's effects, time zones, and its arithmetic's laws."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otklik.agents.clock.calendar_ru import RUSSIA
from otklik.agents.clock.working import WorkingClock
from otklik.schemas.schedule import Deadline, Schedule, parse_schedule
from tests.clock_helpers import around_the_clock, is_day_off, is_working

HOUR = 3600
MOSCOW = "Europe/Moscow"
VLADIVOSTOK = "Asia/Vladivostok"


def at(tz: str, *fields: int) -> int:
    """Unix seconds of a local wall time in ``tz``."""
    return int(datetime(*fields, tzinfo=ZoneInfo(tz)).timestamp())


def local(tz: str, t: int) -> datetime:
    return datetime.fromtimestamp(t, ZoneInfo(tz)).replace(tzinfo=None)


OFFICE = Schedule.office()
moscow = WorkingClock(MOSCOW, OFFICE, RUSSIA)


def day_total(clock: WorkingClock, d: date) -> int:
    start = at(clock.timezone, d.year, d.month, d.day)
    nd = d + timedelta(days=1)
    return clock.working_seconds(start, at(clock.timezone, nd.year, nd.month, nd.day))


# ---- parse_schedule --------------------------------------------------------------------------------


def test_parse_schedule_days_spans_lists_and_merging() -> None:
    s = parse_schedule(
        {"mon-thu": "09:00-18:00", "fri": ["14:00-16:45", "09:00-13:00"], "sat": "10:00-12:00, 12:00-14:00"}
    )
    assert s[0] == s[3] == ((540, 1080),)
    assert s[4] == ((540, 780), (840, 1005))  # sorted
    assert s[5] == ((600, 840),)  # adjacent ranges merge
    assert s[6] == ()  # a day not named is a day off
    assert s.to_mapping()["fri"] == ["09:00-13:00", "14:00-16:45"]


def test_parse_schedule_whole_day_and_roundtrip() -> None:
    s = parse_schedule({"mon-sun": "00:00-24:00"})
    assert s == around_the_clock()
    assert s.weekly_minutes == 7 * 1440
    assert parse_schedule(Schedule.office().to_mapping()) == Schedule.office()


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"tue": ["09:00-13:00", "12:00-18:00"]}, ["tue", "'09:00-13:00'", "'12:00-18:00'", "overlap"]),
        ({"wed": "18:00-09:00"}, ["wed", "'18:00-09:00'", "ends before it starts"]),
        ({"thu": "9-18"}, ["thu", "'9-18'", "HH:MM-HH:MM"]),
        ({"fri": "09:00-24:30"}, ["fri", "'09:00-24:30'"]),
        ({"fri": "09:70-18:00"}, ["fri", "'09:70-18:00'"]),
        ({"sat": "24:00-24:00"}, ["sat", "'24:00-24:00'"]),
        ({"mon": 540}, ["mon", "540"]),
        ({"mnd": "09:00-18:00"}, ["'mnd'", "unknown day"]),
        ({"fri-mon": "09:00-18:00"}, ["'fri-mon'", "unknown day"]),
        ({"mon-fri": "09:00-18:00", "wed": "10:00-11:00"}, ["wed", "more than once"]),
        ({}, ["no working hours"]),
        ({"mon": []}, ["no working hours"]),
    ],
)
def test_parse_schedule_errors_name_the_day_and_the_range(spec: dict, words: list[str]) -> None:
    with pytest.raises(ValueError) as info:
        parse_schedule(spec)
    for word in words:
        assert word in str(info.value)


# ---- the calendar's effects, by example ------------------------------------------------------------


def test_a_night_comment_starts_its_clock_at_the_next_working_minute() -> None:
    night = at(MOSCOW, 2025, 6, 2, 23, 30)  # Monday night
    assert moscow.next_working_moment(night) == at(MOSCOW, 2025, 6, 3, 9, 0)
    assert moscow.working_seconds(night, at(MOSCOW, 2025, 6, 3, 9, 0)) == 0
    assert Deadline.parse("1h working").due_at(moscow, night) == at(MOSCOW, 2025, 6, 3, 10, 0)
    assert Deadline.parse("8h working").due_at(moscow, night) == at(MOSCOW, 2025, 6, 3, 17, 0)


def test_a_holiday_and_the_moved_day_off_after_it_count_nothing() -> None:
    assert day_total(moscow, date(2025, 6, 12)) == 0  # Russia Day
    assert day_total(moscow, date(2025, 6, 13)) == 0  # moved from Sat 8 Mar
    evening = at(MOSCOW, 2025, 6, 11, 17, 30)  # after the short day's end
    assert moscow.next_working_moment(evening) == at(MOSCOW, 2025, 6, 16, 9, 0)
    assert not is_working(moscow, at(MOSCOW, 2025, 6, 12, 12, 0))


def test_a_shortened_pre_holiday_day_ends_an_hour_early() -> None:
    assert is_working(moscow, at(MOSCOW, 2025, 6, 11, 16, 59, 59))
    assert not is_working(moscow, at(MOSCOW, 2025, 6, 11, 17, 0))
    assert day_total(moscow, date(2025, 6, 11)) == 8 * HOUR
    assert day_total(moscow, date(2025, 6, 10)) == 9 * HOUR
    # An item from 16:00 on the short day: one hour that day, the rest on Monday 16 Jun.
    assert Deadline.parse("4h working").due_at(moscow, at(MOSCOW, 2025, 6, 11, 16, 0)) == at(MOSCOW, 2025, 6, 16, 12, 0)


def test_a_short_day_cuts_the_last_range_even_with_a_lunch_break() -> None:
    lunch = WorkingClock(MOSCOW, parse_schedule({"mon-fri": ["08:00-12:00", "13:00-17:00"]}), RUSSIA)
    assert lunch.local_ranges(date(2025, 4, 30)) == ((480, 720), (780, 960))
    always = WorkingClock(MOSCOW, around_the_clock(), RUSSIA)
    assert always.local_ranges(date(2025, 4, 30)) == ((0, 1380),)  # a 24-hour day ends at 23:00


def test_a_working_saturday_follows_the_schedule_of_the_day_its_rest_moved_to() -> None:
    # 1 Nov 2025 is worked for Mon 3 Nov, and it is a pre-holiday day (4 Nov).
    uneven = WorkingClock(MOSCOW, parse_schedule({"mon-thu": "08:00-17:00", "fri": "08:00-15:45"}), RUSSIA)
    assert uneven.local_ranges(date(2025, 11, 1)) == ((480, 960),)  # Monday's 08:00–17:00, an hour shorter
    assert day_total(moscow, date(2025, 11, 1)) == 8 * HOUR
    assert is_working(moscow, at(MOSCOW, 2025, 11, 1, 10, 0))
    assert day_total(moscow, date(2025, 11, 8)) == 0  # an ordinary Saturday
    # 2 Nov 2024 is worked for Tue 30 Apr.
    tuesday = WorkingClock(MOSCOW, parse_schedule({"mon": "10:00-12:00", "tue": "13:00-18:00"}), RUSSIA)
    assert tuesday.local_ranges(date(2024, 11, 2)) == ((780, 1020),)  # and short


def test_same_instant_in_two_time_zones() -> None:
    vladivostok = WorkingClock(VLADIVOSTOK, OFFICE, RUSSIA)
    instant = int(datetime(2025, 6, 10, 9, 30, tzinfo=ZoneInfo("UTC")).timestamp())  # 12:30 MSK, 19:30 VLAT
    assert is_working(moscow, instant)
    assert not is_working(vladivostok, instant)
    assert moscow.working_seconds(instant, instant + 2 * HOUR) == 2 * HOUR
    assert vladivostok.working_seconds(instant, instant + 2 * HOUR) == 0
    assert vladivostok.next_working_moment(instant) == at(VLADIVOSTOK, 2025, 6, 11, 9, 0)
    assert vladivostok.next_working_moment(instant) == at(MOSCOW, 2025, 6, 11, 2, 0)


def test_31_december_2026_is_off_and_the_clock_crosses_into_2027() -> None:
    assert day_total(moscow, date(2026, 12, 31)) == 0
    assert day_total(moscow, date(2026, 12, 30)) == 9 * HOUR
    due = Deadline.parse("8h working").due_at(moscow, at(MOSCOW, 2026, 12, 30, 17, 0))
    assert local(MOSCOW, due) == datetime(2027, 1, 11, 16, 0)  # 1–10 Jan 2027 off
    assert moscow.working_seconds(at(MOSCOW, 2026, 12, 30, 17, 0), due) == 8 * HOUR


def test_new_year_2026_holidays_span_the_year_boundary() -> None:
    start = at(MOSCOW, 2025, 12, 30, 17, 0)
    assert moscow.working_seconds(start, at(MOSCOW, 2026, 1, 12, 9, 0)) == HOUR
    assert moscow.next_working_moment(at(MOSCOW, 2025, 12, 30, 18, 0)) == at(MOSCOW, 2026, 1, 12, 9, 0)


def test_a_regional_holiday_from_extra_holidays() -> None:
    kazan = WorkingClock(MOSCOW, OFFICE, RUSSIA, extra_holidays=frozenset({date(2025, 6, 6)}))
    assert day_total(kazan, date(2025, 6, 6)) == 0
    assert day_total(moscow, date(2025, 6, 6)) == 9 * HOUR
    assert day_total(kazan, date(2025, 6, 5)) == 9 * HOUR  # an extra holiday shortens no day before it
    shortened = WorkingClock(
        MOSCOW, OFFICE, RUSSIA, extra_holidays=frozenset({date(2025, 6, 6)}), short_days=frozenset({date(2025, 6, 5)})
    )
    assert day_total(shortened, date(2025, 6, 5)) == 8 * HOUR


def test_without_the_calendar_holidays_are_ordinary_days() -> None:
    plain = WorkingClock(MOSCOW, OFFICE, None)
    assert day_total(plain, date(2025, 6, 12)) == 9 * HOUR
    assert day_total(plain, date(2025, 6, 11)) == 9 * HOUR  # no decree short day either
    assert day_total(plain, date(2025, 11, 1)) == 0  # nor working Saturdays


def test_a_saturday_schedule_works_ordinary_saturdays_but_not_holidays() -> None:
    clinic = WorkingClock(VLADIVOSTOK, parse_schedule({"mon-fri": "08:00-17:00", "sat": "09:00-13:00"}), RUSSIA)
    assert day_total(clinic, date(2025, 11, 8)) == 4 * HOUR
    assert day_total(clinic, date(2025, 3, 8)) == 0  # Women's Day on a Saturday


def test_dst_days_have_23_and_25_hours_in_a_zone_with_dst() -> None:
    berlin = WorkingClock("Europe/Berlin", around_the_clock(), None)
    assert day_total(berlin, date(2025, 3, 30)) == 23 * HOUR
    assert day_total(berlin, date(2025, 10, 26)) == 25 * HOUR
    office = WorkingClock("Europe/Berlin", OFFICE, None)
    assert day_total(office, date(2025, 3, 31)) == 9 * HOUR
    assert office.next_working_moment(at("Europe/Berlin", 2025, 3, 29, 20, 0)) == at("Europe/Berlin", 2025, 3, 31, 9, 0)


def test_add_working_boundaries() -> None:
    night = at(MOSCOW, 2025, 6, 2, 23, 30)
    assert moscow.add_working(night, 0) == night  # zero: the instant itself, even at night
    five_pm = at(MOSCOW, 2025, 6, 2, 17, 0)
    assert moscow.add_working(five_pm, HOUR) == at(MOSCOW, 2025, 6, 2, 18, 0)  # the end, not next morning
    assert moscow.add_working(five_pm, HOUR + 1) == at(MOSCOW, 2025, 6, 3, 9, 0, 1)
    with pytest.raises(ValueError):
        moscow.add_working(five_pm, -1)


def test_working_seconds_of_an_empty_or_reversed_span_is_zero() -> None:
    t = at(MOSCOW, 2025, 6, 2, 12, 0)
    assert moscow.working_seconds(t, t) == 0
    assert moscow.working_seconds(t, t - HOUR) == 0


def test_a_whole_year_of_working_time_matches_the_production_calendar() -> None:
    # 2025: 247 working days of 8 h, 4 of them an hour shorter = 1972 h (the official norm).
    eight = WorkingClock(MOSCOW, parse_schedule({"mon-fri": "09:00-17:00"}), RUSSIA)
    assert eight.working_seconds(at(MOSCOW, 2025, 1, 1), at(MOSCOW, 2026, 1, 1)) == 1972 * HOUR
    assert eight.working_seconds(at(MOSCOW, 2026, 1, 1), at(MOSCOW, 2027, 1, 1)) == 1972 * HOUR
    assert eight.working_seconds(at(MOSCOW, 2024, 1, 1), at(MOSCOW, 2025, 1, 1)) == 1979 * HOUR


def test_clocks_with_the_same_settings_share_their_tables() -> None:
    a = WorkingClock(MOSCOW, Schedule.office(), RUSSIA)
    b = WorkingClock(MOSCOW, parse_schedule({"mon-fri": "09:00-18:00"}), RUSSIA)
    assert a._years is b._years
    assert WorkingClock(VLADIVOSTOK, OFFICE, RUSSIA)._years is not a._years


def test_an_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Europe/Mosow'"):
        WorkingClock("Europe/Mosow", OFFICE, RUSSIA)


# ---- Deadline --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds", "working", "canonical"),
    [
        ("8h working", 8 * HOUR, True, "8h working"),
        ("4h working", 4 * HOUR, True, "4h working"),
        ("24h calendar", 24 * HOUR, False, "24h calendar"),
        ("30m working", 1800, True, "30m working"),
        ("1m working", 60, True, "1m working"),
        ("90m calendar", 5400, False, "90m calendar"),
        ("1h30m working", 5400, True, "1h30m working"),
        ("  8H   Working ", 8 * HOUR, True, "8h working"),
    ],
)
def test_deadline_parse(text: str, seconds: int, working: bool, canonical: str) -> None:
    deadline = Deadline.parse(text)
    assert (deadline.seconds, deadline.working, deadline.text) == (seconds, working, canonical)
    assert deadline.kind == ("working" if working else "calendar")
    assert Deadline.parse(deadline.text) == deadline


@pytest.mark.parametrize(
    "text", ["8 hours", "8h", "working", "8h business", "0h working", "h working", "8x working", "", "-1h working"]
)
def test_deadline_parse_errors(text: str) -> None:
    with pytest.raises(ValueError, match="deadline"):
        Deadline.parse(text)


def test_deadline_due_at_and_elapsed_by_kind() -> None:
    friday_evening = at(MOSCOW, 2025, 6, 6, 17, 0)
    working = Deadline.parse("2h working")
    calendar = Deadline.parse("2h calendar")
    assert working.due_at(moscow, friday_evening) == at(MOSCOW, 2025, 6, 9, 10, 0)
    assert calendar.due_at(moscow, friday_evening) == friday_evening + 2 * HOUR
    monday = at(MOSCOW, 2025, 6, 9, 10, 0)
    assert working.elapsed(moscow, friday_evening, monday) == 2 * HOUR
    assert calendar.elapsed(moscow, friday_evening, monday) == monday - friday_evening
    assert calendar.elapsed(moscow, monday, friday_evening) == 0


# ---- laws, with hypothesis -------------------------------------------------------------------------

LUNCH = parse_schedule({"mon-fri": ["08:00-12:00", "13:00-17:00"], "sat": "09:00-13:00"})
CLOCKS = [
    moscow,
    WorkingClock(
        VLADIVOSTOK,
        LUNCH,
        RUSSIA,
        extra_holidays=frozenset({date(2025, 6, 6)}),
        short_days=frozenset({date(2025, 6, 5)}),
    ),
    WorkingClock("America/New_York", OFFICE, None),  # a zone with DST
    WorkingClock("Europe/Berlin", around_the_clock(), RUSSIA),  # 23- and 25-hour days, with holidays
]
clocks = st.sampled_from(CLOCKS)
# 2023-06-01 .. 2028-01-01: covers the table's years and their boundaries.
instants = st.integers(min_value=1_685_577_600, max_value=1_830_297_600)
spans = st.integers(min_value=0, max_value=40 * 86400)
LAWS = settings(max_examples=150, deadline=None)


def reference_working_seconds(clock: WorkingClock, a: int, b: int) -> int:
    """A slow, independent sum over local days, straight from the rules (no year tables)."""
    zone = ZoneInfo(clock.timezone)
    d = datetime.fromtimestamp(a, zone).date() - timedelta(days=1)
    last = datetime.fromtimestamp(b, zone).date() + timedelta(days=1)
    total = 0
    while d <= last:
        for s, e in clock.local_ranges(d):
            day0 = datetime(d.year, d.month, d.day, tzinfo=zone)
            start = int((day0.replace(hour=s // 60, minute=s % 60)).timestamp())
            end_day = d + timedelta(days=e // 1440)
            end = int(
                datetime(end_day.year, end_day.month, end_day.day, (e % 1440) // 60, e % 60, tzinfo=zone).timestamp()
            )
            total += max(0, min(end, b) - max(start, a))
        d += timedelta(days=1)
    return total


@LAWS
@given(clock=clocks, a=instants, span=spans)
def test_working_seconds_matches_a_slow_reference(clock: WorkingClock, a: int, span: int) -> None:
    assert clock.working_seconds(a, a + span) == reference_working_seconds(clock, a, a + span)


@LAWS
@given(clock=clocks, a=instants, x=spans, y=spans)
def test_working_time_adds_up_over_adjacent_intervals(clock: WorkingClock, a: int, x: int, y: int) -> None:
    b, c = a + x, a + x + y
    assert clock.working_seconds(a, c) == clock.working_seconds(a, b) + clock.working_seconds(b, c)


@LAWS
@given(clock=clocks, a=instants, x=spans, y=spans)
def test_working_time_is_monotone_in_end_and_at_most_wall_time(clock: WorkingClock, a: int, x: int, y: int) -> None:
    shorter, longer = sorted((x, y))
    w_short = clock.working_seconds(a, a + shorter)
    assert 0 <= w_short <= clock.working_seconds(a, a + longer) <= longer


@LAWS
@given(day=st.dates(min_value=date(2024, 1, 1), max_value=date(2027, 12, 31)))
def test_no_working_time_on_a_day_off(day: date) -> None:
    if is_day_off(RUSSIA, day):
        assert day_total(moscow, day) == 0
    else:
        assert day_total(moscow, day) == (8 if RUSSIA.is_short_day(day) else 9) * HOUR


@LAWS
@given(
    a=instants,
    span=spans,
    zone=st.sampled_from(["Europe/Moscow", "Europe/Berlin", "America/New_York", "Asia/Kamchatka"]),
)
def test_a_24_7_schedule_without_calendar_is_wall_time(a: int, span: int, zone: str) -> None:
    clock = WorkingClock(zone, around_the_clock(), None)
    assert clock.working_seconds(a, a + span) == span
    assert clock.add_working(a, span) == a + span
    assert is_working(clock, a) and clock.next_working_moment(a) == a


@LAWS
@given(clock=clocks, start=instants, n=st.integers(min_value=0, max_value=200 * HOUR))
def test_add_working_is_the_inverse_of_working_seconds(clock: WorkingClock, start: int, n: int) -> None:
    due = clock.add_working(start, n)
    assert due >= start
    assert clock.working_seconds(start, due) == n
    if n > 0:  # and it is the first such instant
        assert clock.working_seconds(start, due - 1) == n - 1


@LAWS
@given(clock=clocks, t=instants)
def test_next_working_moment_is_the_first_working_instant(clock: WorkingClock, t: int) -> None:
    nxt = clock.next_working_moment(t)
    assert nxt >= t
    assert is_working(clock, nxt)
    assert clock.working_seconds(t, nxt) == 0
    assert is_working(clock, t) == (nxt == t)
    assert clock.add_working(t, 1) == nxt + 1
