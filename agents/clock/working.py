"""The working-hours clock: how much of a page's working time lies between two instants.

All times are integer unix seconds (UTC). A page works by its weekly :class:`Schedule` in its own
IANA time zone, minus the days off of the production calendar and the page's own extra holidays,
plus the weekend days a decree made working (they follow the schedule of the weekday their rest
moved to); on a shortened day the working period ends an hour early (docs/clock.md, "Short days").

Speed matters (the replay path targets 100 k events/s), so each local year is laid out once as a
table of absolute working intervals per day with a running total at each midnight: a span of any
length costs two binary searches, and tables are shared by every clock with the same settings.
"""

from __future__ import annotations

import time as _time
from bisect import bisect_left, bisect_right
from datetime import date, datetime, timedelta
from datetime import time as dtime

from otklik.agents.clock.calendar_ru import RUSSIA, ProductionCalendar
from otklik.schemas.schedule import MINUTES_PER_DAY, Range, Schedule, load_zone

__all__ = ["WorkingClock"]

SHORT_DAY_MINUTES = 60  # a pre-holiday day ends one hour early (Labour Code art. 95)


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
