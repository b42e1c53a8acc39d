"""What the tests ask of the working-hours clock and the production calendar that otklik itself never
asks, answered through their public methods (docs/clock.md)."""

from __future__ import annotations

from datetime import date

from otklik.agents.clock.calendar_ru import ProductionCalendar
from otklik.agents.clock.working import WorkingClock
from otklik.schemas.schedule import MINUTES_PER_DAY, Schedule


def around_the_clock() -> Schedule:
    """Every minute of every day: with no calendar, working time equals wall time."""
    return Schedule(tuple(((0, MINUTES_PER_DAY),) for _ in range(7)))


def is_working(clock: WorkingClock, t: int) -> bool:
    """Is the second starting at ``t`` working time? (Working intervals start and end on whole seconds.)"""
    return clock.working_seconds(t, t + 1) == 1


def is_working_weekend_day(calendar: ProductionCalendar, d: date) -> bool:
    """A Saturday or Sunday the decree made a working day (it follows the schedule of another weekday)."""
    return d.weekday() >= 5 and calendar.schedule_weekday(d) != d.weekday()


def is_day_off(calendar: ProductionCalendar, d: date) -> bool:
    """A day off of the five-day week: a holiday, a moved day off or a weekend day not made working."""
    return calendar.is_holiday(d) or (d.weekday() >= 5 and not is_working_weekend_day(calendar, d))
