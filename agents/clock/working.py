"""The working-hours clock: how much of a page's working time lies between two instants.

All times are integer unix seconds (UTC). A page works by its weekly :class:`Schedule` in its own
IANA time zone, minus the days off of the production calendar and the page's own extra holidays,
plus the weekend days a decree made working (they follow the schedule of the weekday their rest
moved to); on a shortened day the working period ends an hour early (DESIGN.md, "The working-hours
clock").

Speed matters (the replay path targets 100 k events/s), so each local year is laid out once as a
table of absolute working intervals per day with a running total at each midnight: a span of any
length costs two binary searches, and tables are shared by every clock with the same settings.
"""

from __future__ import annotations

import re
import time as _time
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as dtime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from otklik.agents.clock.calendar_ru import RUSSIA, ProductionCalendar

__all__ = [
    "DAY_NAMES",
    "Deadline",
    "Schedule",
    "WorkingClock",
    "load_zone",
    "parse_schedule",
]

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_DAY = 1440
SHORT_DAY_MINUTES = 60  # a pre-holiday day ends one hour early (Labour Code art. 95)

Range = tuple[int, int]  # (start_minute, end_minute) since local midnight, end ≤ 1440


def _fmt_minute(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _fmt_range(r: Range) -> str:
    return f"{_fmt_minute(r[0])}-{_fmt_minute(r[1])}"


@dataclass(frozen=True, slots=True)
class Schedule:
    """A weekly schedule: for each weekday (0=Mon..6=Sun) its sorted, disjoint working ranges."""

    days: tuple[tuple[Range, ...], ...]

    def __post_init__(self) -> None:
        if len(self.days) != 7:
            raise ValueError(f"a schedule has 7 days, got {len(self.days)}")
        for weekday, ranges in enumerate(self.days):
            previous_end = -1
            for start, end in ranges:
                if not (0 <= start < end <= MINUTES_PER_DAY) or start < previous_end:
                    raise ValueError(f"schedule: {DAY_NAMES[weekday]}: bad ranges {ranges!r}")
                previous_end = end

    def __getitem__(self, weekday: int) -> tuple[Range, ...]:
        return self.days[weekday]

    @property
    def weekly_minutes(self) -> int:
        return sum(end - start for ranges in self.days for start, end in ranges)

    def to_mapping(self) -> dict[str, list[str]]:
        """The schedule in the registry's notation (working days only), e.g. ``{"mon": ["09:00-18:00"]}``."""
        return {DAY_NAMES[wd]: [_fmt_range(r) for r in ranges] for wd, ranges in enumerate(self.days) if ranges}

    @classmethod
    def always(cls) -> Schedule:
        """24/7: with ``calendar=None`` working time equals wall time."""
        return cls(tuple(((0, MINUTES_PER_DAY),) for _ in range(7)))

    @classmethod
    def office(cls) -> Schedule:
        """The built-in default: Monday to Friday 09:00–18:00."""
        return cls(tuple(((9 * 60, 18 * 60),) if wd < 5 else () for wd in range(7)))


_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def _parse_minute(hours: str, minutes: str) -> int | None:
    h, m = int(hours), int(minutes)
    if m > 59 or h > 24 or (h == 24 and m != 0):
        return None
    return h * 60 + m


def _parse_range(day: str, text: object) -> Range:
    if not isinstance(text, str):
        raise ValueError(f"schedule: {day}: range {text!r} is not text like '09:00-18:00'")
    match = _RANGE.match(text)
    if not match:
        raise ValueError(f"schedule: {day}: bad range {text!r}: expected HH:MM-HH:MM, e.g. '09:00-18:00'")
    start = _parse_minute(match[1], match[2])
    end = _parse_minute(match[3], match[4])
    if start is None or end is None or start == MINUTES_PER_DAY:
        raise ValueError(f"schedule: {day}: bad time in {text!r}: hours 00–23 (24:00 only as an end), minutes 00–59")
    if end <= start:
        raise ValueError(
            f"schedule: {day}: range {text!r} ends before it starts (ranges cannot cross midnight; split them)"
        )
    return start, end


def _day_keys(key: object) -> list[int]:
    """``"mon"`` → [0]; ``"mon-fri"`` → [0..4]."""
    if not isinstance(key, str):
        raise ValueError(f"schedule: day {key!r} is not a day name")
    name = key.strip().lower()
    if name in DAY_NAMES:
        return [DAY_NAMES.index(name)]
    first, sep, last = name.partition("-")
    if sep and first.strip() in DAY_NAMES and last.strip() in DAY_NAMES:
        a, b = DAY_NAMES.index(first.strip()), DAY_NAMES.index(last.strip())
        if a < b:
            return list(range(a, b + 1))
    raise ValueError(
        f"schedule: unknown day {key!r}: use mon, tue, wed, thu, fri, sat, sun or a span such as 'mon-fri'"
    )


def parse_schedule(spec: Mapping[str, str | Sequence[str] | None]) -> Schedule:
    """Parse the registry's notation: ``{"mon-thu": "09:00-18:00", "fri": ["09:00-13:00", "14:00-16:45"]}``.

    A day not named is a day off; ``"00:00-24:00"`` is a whole day; adjacent ranges merge. Raises
    ``ValueError`` naming the day and the bad range (format, end before start, overlap).
    """
    if not isinstance(spec, Mapping):
        raise ValueError(f"schedule must map days to ranges, e.g. {{'mon-fri': '09:00-18:00'}}, got {spec!r}")
    days: list[list[Range] | None] = [None] * 7
    for key, value in spec.items():
        for weekday in _day_keys(key):
            day = DAY_NAMES[weekday]
            if days[weekday] is not None:
                raise ValueError(f"schedule: {day} is given more than once (key {key!r})")
            texts: Sequence[object]
            if value is None:
                texts = []
            elif isinstance(value, str):
                texts = [part for part in value.split(",") if part.strip()]
            elif isinstance(value, Sequence):
                texts = value
            else:
                raise ValueError(f"schedule: {day}: expected a range or a list of ranges, got {value!r}")
            ranges = sorted(_parse_range(day, text) for text in texts)
            merged: list[Range] = []
            for start, end in ranges:
                if merged and start < merged[-1][1]:
                    raise ValueError(
                        f"schedule: {day}: ranges {_fmt_range(merged[-1])!r} and {_fmt_range((start, end))!r} overlap"
                    )
                if merged and start == merged[-1][1]:
                    merged[-1] = (merged[-1][0], end)
                else:
                    merged.append((start, end))
            days[weekday] = merged
    schedule = Schedule(tuple(tuple(ranges or ()) for ranges in days))
    if schedule.weekly_minutes == 0:
        raise ValueError("schedule has no working hours at all; name at least one day, e.g. {'mon-fri': '09:00-18:00'}")
    return schedule


def load_zone(name: str) -> ZoneInfo:
    """An IANA time zone, or ``ValueError("unknown time zone 'Europe/Mosow'")``."""
    if not isinstance(name, str) or not name or name.startswith(("/", ".")) or ".." in name:
        raise ValueError(f"unknown time zone {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {name!r}") from None


class _YearTable:
    """One local year: per day its absolute working intervals and the working total before it."""

    __slots__ = ("day_starts", "end", "intervals", "prefix", "start", "total", "year")

    def __init__(self, year: int, day_starts: list[int], intervals: list[tuple[Range, ...]]) -> None:
        self.year = year
        self.day_starts = day_starts  # len = days + 1; the last is next year's first midnight
        self.start = day_starts[0]
        self.end = day_starts[-1]
        self.intervals = intervals
        prefix = [0]
        for day in intervals:
            prefix.append(prefix[-1] + sum(e - s for s, e in day))
        self.prefix = prefix
        self.total = prefix[-1]

    def day_index(self, t: int) -> int:
        return bisect_right(self.day_starts, t) - 1

    def worked_before(self, t: int) -> int:
        """Working seconds from this year's first midnight to ``t`` (start ≤ t < end)."""
        i = bisect_right(self.day_starts, t) - 1
        worked = self.prefix[i]
        for s, e in self.intervals[i]:
            if t <= s:
                break
            worked += (t if t < e else e) - s
        return worked


# Year tables shared by every clock with the same settings (pages of one region share a handful).
_SHARED_TABLES: dict[tuple[object, ...], dict[int, _YearTable]] = {}

# How far add_working and next_working_moment look before deciding there is no working time.
_MAX_YEARS_AHEAD = 10


class WorkingClock:
    """Working time of one page: its zone, weekly schedule, production calendar and own days."""

    __slots__ = ("_recent", "_years", "_zone", "calendar", "extra_holidays", "schedule", "short_days", "timezone")

    def __init__(
        self,
        timezone: str,
        schedule: Schedule,
        calendar: ProductionCalendar | None = RUSSIA,
        extra_holidays: frozenset[date] = frozenset(),
        short_days: frozenset[date] = frozenset(),
    ) -> None:
        self.timezone = timezone
        self._zone = load_zone(timezone)
        self.schedule = schedule
        self.calendar = calendar
        self.extra_holidays = frozenset(extra_holidays)
        self.short_days = frozenset(short_days)
        key = (timezone, schedule, calendar, self.extra_holidays, self.short_days)
        self._years = _SHARED_TABLES.setdefault(key, {})
        self._recent: _YearTable | None = None  # the table last looked up: times come in runs

    def __repr__(self) -> str:
        calendar = "none" if self.calendar is None else "ru"
        return f"WorkingClock({self.timezone!r}, {self.schedule.to_mapping()!r}, calendar={calendar})"

    # ---- the local rules of one date -------------------------------------------------------------

    def local_ranges(self, d: date) -> tuple[Range, ...]:
        """Working ranges (minutes since local midnight) of the local date ``d``."""
        if d in self.extra_holidays:
            return ()
        short = d in self.short_days
        if self.calendar is None:
            weekday = d.weekday()
        else:
            if self.calendar.is_holiday(d):
                return ()
            weekday = self.calendar.schedule_weekday(d)
            short = short or self.calendar.is_short_day(d)
        ranges = self.schedule[weekday]
        if short and ranges:
            # The working period ends an hour early: clip every range at the last end minus an hour.
            cut = ranges[-1][1] - SHORT_DAY_MINUTES
            ranges = tuple((s, min(e, cut)) for s, e in ranges if s < cut)
        return ranges

    def _instant(self, d: date, minute: int) -> int:
        if minute >= MINUTES_PER_DAY:
            d, minute = d + timedelta(days=1), minute - MINUTES_PER_DAY
        return int(datetime.combine(d, dtime(minute // 60, minute % 60), self._zone).timestamp())

    def _build_year(self, year: int) -> _YearTable:
        d = date(year, 1, 1)
        day_starts = [self._instant(d, 0)]
        intervals: list[tuple[Range, ...]] = []
        while d.year == year:
            next_midnight = self._instant(d, MINUTES_PER_DAY)
            day: list[Range] = []
            floor = day_starts[-1]
            for start_minute, end_minute in self.local_ranges(d):
                # Clip into the day and keep order even around a DST fold or gap.
                s = min(max(self._instant(d, start_minute), floor), next_midnight)
                e = min(max(self._instant(d, end_minute), s), next_midnight)
                if e > s:
                    day.append((s, e))
                    floor = e
            intervals.append(tuple(day))
            day_starts.append(next_midnight)
            d += timedelta(days=1)
        return _YearTable(year, day_starts, intervals)

    def _table(self, year: int) -> _YearTable:
        table = self._years.get(year)
        if table is None:
            table = self._years[year] = self._build_year(year)
        return table

    def _table_at(self, t: int) -> _YearTable:
        recent = self._recent
        if recent is not None and recent.start <= t < recent.end:
            return recent
        self._recent = table = self._table_by_year(t)
        return table

    def _table_by_year(self, t: int) -> _YearTable:
        table = self._table(_time.gmtime(t).tm_year)
        # The local year starts up to ±14 h away from the UTC one.
        if t < table.start:
            return self._table(table.year - 1)
        if t >= table.end:
            return self._table(table.year + 1)
        return table

    # ---- the public arithmetic ---------------------------------------------------------------------

    def working_seconds(self, start: int, end: int) -> int:
        """Working seconds in [start, end); 0 when end ≤ start."""
        if end <= start:
            return 0
        first = self._table_at(start)
        last = first if end < first.end else self._table_at(end)
        if first is last:
            return last.worked_before(end) - first.worked_before(start)
        worked = first.total - first.worked_before(start)
        for year in range(first.year + 1, last.year):
            worked += self._table(year).total
        return worked + last.worked_before(end)

    def add_working(self, start: int, seconds: int) -> int:
        """The first instant at which ``seconds`` of working time have passed since ``start``.

        An item written at night therefore accumulates from the next working minute; ``seconds=0``
        returns ``start`` itself.
        """
        if seconds < 0:
            raise ValueError(f"seconds must be ≥ 0, got {seconds}")
        if seconds == 0:
            return start
        table = self._table_at(start)
        target = table.worked_before(start) + seconds
        for _ in range(_MAX_YEARS_AHEAD):
            if target <= table.total:
                day = bisect_left(table.prefix, target) - 1
                remaining = target - table.prefix[day]
                for s, e in table.intervals[day]:
                    if remaining <= e - s:
                        return s + remaining
                    remaining -= e - s
                raise AssertionError("year table is inconsistent")  # pragma: no cover
            target -= table.total
            table = self._table(table.year + 1)
        raise ValueError(f"no working time within {_MAX_YEARS_AHEAD} years after {start}")

    def next_working_moment(self, t: int) -> int:
        """``t`` itself when it is working time, else the start of the next working period."""
        table = self._table_at(t)
        day = table.day_index(t)
        for s, e in table.intervals[day]:
            if t < e:
                return s if s > t else t
        for _ in range(_MAX_YEARS_AHEAD):
            # The first later day whose running total grows is the next day with working time.
            worked_so_far = table.prefix[day + 1]
            if worked_so_far < table.total:
                next_day = bisect_right(table.prefix, worked_so_far) - 1
                return table.intervals[next_day][0][0]
            table, day = self._table(table.year + 1), -1
        raise ValueError(f"no working time within {_MAX_YEARS_AHEAD} years after {t}")

    def is_working(self, t: int) -> bool:
        table = self._table_at(t)
        for s, e in table.intervals[table.day_index(t)]:
            if s <= t < e:
                return True
        return False


_DEADLINE_AMOUNT = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?$")


@dataclass(frozen=True, slots=True)
class Deadline:
    """A first-response deadline: so many seconds of working time, or of calendar (wall) time."""

    seconds: int
    working: bool
    text: str

    @classmethod
    def parse(cls, text: str) -> Deadline:
        """``"8h working"``, ``"4h working"``, ``"30m working"``, ``"1h30m working"``, ``"24h calendar"``…"""
        hint = "write it like '8h working', '30m working', '1h30m working' or '24h calendar'"
        if not isinstance(text, str):
            raise ValueError(f"deadline {text!r} is not text; {hint}")
        parts = text.strip().lower().split()
        if len(parts) != 2 or parts[1] not in ("working", "calendar"):
            raise ValueError(f"deadline {text!r} is not understood: {hint}")
        amount = _DEADLINE_AMOUNT.match(parts[0])
        if not amount or not (amount[1] or amount[2]):
            raise ValueError(f"deadline {text!r}: bad amount {parts[0]!r}; {hint}")
        hours, minutes = int(amount[1] or 0), int(amount[2] or 0)
        seconds = hours * 3600 + minutes * 60
        if seconds <= 0:
            raise ValueError(f"deadline {text!r} must be longer than zero")
        canonical = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
        return cls(seconds=seconds, working=parts[1] == "working", text=f"{canonical} {parts[1]}")

    @property
    def kind(self) -> str:
        return "working" if self.working else "calendar"

    def due_at(self, clock: WorkingClock, created_at: int) -> int:
        """When an item created at ``created_at`` is due (a night item's working clock starts in the morning)."""
        if self.working:
            return clock.add_working(created_at, self.seconds)
        return created_at + self.seconds

    def elapsed(self, clock: WorkingClock, start: int, end: int) -> int:
        """Seconds of the deadline's kind between ``start`` and ``end``: working or wall time."""
        if self.working:
            return clock.working_seconds(start, end)
        return max(0, end - start)

    def __str__(self) -> str:
        return self.text
