"""The page view's charts of response times, pure: what to draw, in SVG units (the template draws it).

- **Per month**: the median and the 90th percentile of the working-time response time of the month's
  answered items (the rating's own figures, docs/history.md, "The monthly rating"), oldest month first, with the
  page's deadline as a line when it is counted in working time.
- **This month**: how many answered items took what share of the deadline, counted the deadline's way
  (working or calendar time, docs/responses.md, "Outcomes"): four bins in time (an answer exactly at the
  deadline is in time) and three past it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["BINS", "Bar", "LatencyBars", "MonthBars", "MonthLatencies", "latency_histogram", "month_latencies"]

# The chart's drawing area, in SVG units: bars stand on y = BASE and are at most TALL high.
BASE = 120
TALL = 100
HOUR = 3600

# The histogram's bins, as shares of the deadline: (up to and including this share, title).
BINS: tuple[tuple[float, str], ...] = (
    (0.25, "до ¼"),
    (0.5, "¼–½"),
    (0.75, "½–¾"),
    (1.0, "¾–1"),
    (1.5, "1–1½"),
    (2.0, "1½–2"),
    (math.inf, "больше 2"),
)


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar: its left edge, top and height in SVG units, and what it stands for."""

    x: int
    y: int
    height: int
    label: str
    value: float | None  # hours for a month's bar, items for a bin


@dataclass(frozen=True, slots=True)
class MonthBars:
    month: str  # YYYY-MM
    median: Bar
    p90: Bar


@dataclass(frozen=True, slots=True)
class MonthLatencies:
    """The per-month chart: the bars, the scale's top in hours, and the deadline line's height (None
    when the deadline is in calendar time: the figures are working time and would not compare)."""

    months: list[MonthBars]
    top_hours: int
    deadline_y: int | None


@dataclass(frozen=True, slots=True)
class LatencyBars:
    """This month's histogram: one bar per bin (in time first), and how many answers in all."""

    bars: list[Bar]
    answered: int
    in_time: int


def _height(value: float | None, top: float) -> int:
    return 0 if value is None or top <= 0 else round(min(value, top) / top * TALL)


def month_latencies(
    figures: Sequence[tuple[str, float | None, float | None]], deadline_s: int, working: bool
) -> MonthLatencies:
    """``figures``: (month, median, 90th percentile) of working-time response time in seconds, oldest
    month first (None: nothing answered that month). The scale's top is a whole number of hours that
    holds every figure and the deadline."""
    values = [v for _, median, p90 in figures for v in (median, p90) if v is not None]
    if working:
        values.append(deadline_s)
    top_hours = max(1, math.ceil(max(values, default=HOUR) / HOUR))
    top = top_hours * HOUR
    months = []
    for index, (month, median, p90) in enumerate(figures):
        x = 10 + index * 60
        high, low = _height(p90, top), _height(median, top)
        months.append(
            MonthBars(
                month,
                median=Bar(x + 10, BASE - low, low, _hours(median), _round_hours(median)),
                p90=Bar(x, BASE - high, high, _hours(p90), _round_hours(p90)),
            )
        )
    deadline_y = BASE - _height(deadline_s, top) if working else None
    return MonthLatencies(months, top_hours, deadline_y)


def latency_histogram(latencies_s: Iterable[int], deadline_s: int) -> LatencyBars:
    """How many of ``latencies_s`` (of the deadline's kind) fall in each of :data:`BINS`."""
    counts = [0] * len(BINS)
    for latency in latencies_s:
        share = latency / deadline_s
        counts[next(i for i, (edge, _) in enumerate(BINS) if share <= edge)] += 1
    tallest = max(counts)
    bars = [
        Bar(10 + i * 50, BASE - _height(n, tallest), _height(n, tallest), title, n)
        for i, (n, (_, title)) in enumerate(zip(counts, BINS, strict=True))
    ]
    return LatencyBars(bars, sum(counts), sum(counts[:4]))


def _round_hours(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / HOUR, 1)


def _hours(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds / HOUR:.1f} ч"
