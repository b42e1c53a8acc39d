"""Weekly schedules, time zones and deadlines as the page registry writes them (docs/clock.md).

These are values of the registry's format: ``{"mon-fri": "09:00-18:00"}``, ``"Asia/Novosibirsk"``,
``"8h working"``. The working-hours clock that computes with them is ``otklik.agents.clock.working``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "DAY_NAMES",
    "MINUTES_PER_DAY",
    "Deadline",
    "Range",
    "Schedule",
    "WorkingTime",
    "load_zone",
    "parse_schedule",
]

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_DAY = 1440

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


class WorkingTime(Protocol):
    """What a deadline needs of a clock (``otklik.agents.clock.working.WorkingClock``)."""

    def add_working(self, start: int, seconds: int) -> int: ...

    def working_seconds(self, start: int, end: int) -> int: ...


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

    def due_at(self, clock: WorkingTime, created_at: int) -> int:
        """When an item created at ``created_at`` is due (a night item's working clock starts in the morning)."""
        if self.working:
            return clock.add_working(created_at, self.seconds)
        return created_at + self.seconds

    def elapsed(self, clock: WorkingTime, start: int, end: int) -> int:
        """Seconds of the deadline's kind between ``start`` and ``end``: working or wall time."""
        if self.working:
            return clock.working_seconds(start, end)
        return max(0, end - start)

    def __str__(self) -> str:
        return self.text
