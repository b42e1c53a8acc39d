"""The Russian production calendar (производственный календарь), 2024–2027.

Days off come from the ``holidays`` package (country RU): it lists the public holidays of Labour Code
art. 112 and the days off that each year's government decree moved, and it knows the weekend days
that a decree made working (``weekend_workdays``). It does not know the shortened pre-holiday days
(art. 95: the working day right before a public holiday is one hour shorter), nor, explicitly, which
weekday's schedule a working Saturday follows; those live in :data:`DECREES` below, one row per year,
each citing its decree. Tests pin the library's answers for the years we cover, so an upgrade of
``holidays`` that changes them fails loudly instead of silently changing deadlines.

Years outside :data:`DECREES` use the plain library: no shortened days, and a working weekend day
follows the weekday the library says its rest day moved to.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache

import holidays

__all__ = ["DECREES", "RUSSIA", "DecreeYear", "ProductionCalendar"]


@dataclass(frozen=True, slots=True)
class DecreeYear:
    """What one year's decree adds to the library's days off."""

    year: int
    decree: str
    # A weekend day made working → the weekday (0=Mon) of the day its rest moved to; that day's
    # schedule is the one the working weekend day follows (docs/clock.md, "Production calendar").
    working_weekend_days: Mapping[date, int] = field(default_factory=dict)
    # Pre-holiday days one hour shorter (Labour Code art. 95), as the Ministry of Labour's calendar lists them.
    short_days: frozenset[date] = frozenset()


_MON, _TUE = 0, 1

DECREES: dict[int, DecreeYear] = {
    row.year: row
    for row in (
        DecreeYear(
            2024,
            "Постановление Правительства РФ от 10.08.2023 № 1314 «О переносе выходных дней в 2024 году»",
            working_weekend_days={
                date(2024, 4, 27): _MON,  # rest moved to Mon 29 Apr
                date(2024, 11, 2): _TUE,  # rest moved to Tue 30 Apr
                date(2024, 12, 28): _MON,  # rest moved to Mon 30 Dec
            },
            # Not 27 Apr nor 28 Dec: those Saturdays stand in for full days (29 Apr, 30 Dec), and the
            # Minister of Labour confirmed in Dec 2024 that 28 Dec is not shortened. 2 Nov stands in
            # for 30 Apr, itself the eve of 1 May. Five short days: 248 × 8 − 5 = 1979 hours (40-hour week).
            short_days=frozenset(
                {date(2024, 2, 22), date(2024, 3, 7), date(2024, 5, 8), date(2024, 6, 11), date(2024, 11, 2)}
            ),
        ),
        DecreeYear(
            2025,
            "Постановление Правительства РФ от 04.10.2024 № 1335 «О переносе выходных дней в 2025 году»",
            working_weekend_days={date(2025, 11, 1): _MON},  # rest moved to Mon 3 Nov
            short_days=frozenset({date(2025, 3, 7), date(2025, 4, 30), date(2025, 6, 11), date(2025, 11, 1)}),
        ),
        DecreeYear(
            2026,
            "Постановление Правительства РФ от 24.09.2025 № 1466 «О переносе выходных дней в 2026 году»",
            working_weekend_days={},  # 3 and 4 Jan moved to Fri 9 Jan and Thu 31 Dec; no working weekend day
            short_days=frozenset({date(2026, 4, 30), date(2026, 5, 8), date(2026, 6, 11), date(2026, 11, 3)}),
        ),
        DecreeYear(
            2027,
            # The library's source for 2027 is consultant.ru document LAW_544706 (the 2026 decree on 2027).
            "Постановление Правительства РФ о переносе выходных дней в 2027 году (as in holidays 0.109)",
            working_weekend_days={date(2027, 2, 20): _MON},  # rest moved to Mon 22 Feb
            # TODO: add the 2027 shortened days once the Ministry of Labour's calendar for 2027 is
            # checked; by art. 95 they are likely 20 Feb, 30 Apr, 11 Jun, 3 Nov, but not confirmed.
            short_days=frozenset(),
        ),
    )
}

# The library names a moved day off "Day off (substituted from MM/DD/YYYY)" in en_US.
_SUBSTITUTED = re.compile(r"substituted from (\d{2})/(\d{2})/(\d{4})")


@lru_cache(maxsize=64)
def _library_year(year: int) -> tuple[frozenset[date], dict[date, int]]:
    """The library's days off of ``year`` and its working weekend days → weekday their rest moved to."""
    days = holidays.country_holidays("RU", years=year, language="en_US")
    moved_to: dict[date, int] = {}
    for day_off, name in days.items():
        for match in _SUBSTITUTED.finditer(name):
            month, day, from_year = (int(g) for g in match.groups())
            source = date(from_year, month, day)
            if source.weekday() >= 5:
                moved_to[source] = day_off.weekday()
    working_weekend = {d: moved_to.get(d, _MON) for d in days.weekend_workdays if d.year == year}
    return frozenset(d for d in days if d.year == year), working_weekend


class ProductionCalendar:
    """The federal production calendar for a five-day week: days off, working weekend days, short days."""

    def __init__(self, decrees: Mapping[int, DecreeYear] = DECREES) -> None:
        self._decrees = dict(decrees)

    def _year(self, year: int) -> tuple[frozenset[date], Mapping[date, int], frozenset[date]]:
        holidays_of_year, working_weekend = _library_year(year)
        row = self._decrees.get(year)
        if row is None:
            return holidays_of_year, working_weekend, frozenset()
        return holidays_of_year, {**working_weekend, **row.working_weekend_days}, row.short_days

    def is_holiday(self, d: date) -> bool:
        """A public holiday or a weekday the decree made a day off (not an ordinary weekend)."""
        return d in self._year(d.year)[0]

    def is_short_day(self, d: date) -> bool:
        """A pre-holiday working day, one hour shorter by the decree year's table."""
        return d in self._year(d.year)[2]

    def schedule_weekday(self, d: date) -> int:
        """The weekday (0=Mon..6=Sun) whose schedule ``d`` follows: a working weekend day takes the
        weekday its rest moved to; any other day its own."""
        if isinstance(d, datetime):
            d = d.date()
        return self._year(d.year)[1].get(d, d.weekday())

    def __repr__(self) -> str:
        return f"ProductionCalendar(years with decree rows: {sorted(self._decrees)})"


RUSSIA = ProductionCalendar()
