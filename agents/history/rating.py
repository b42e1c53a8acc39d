"""The monthly rating: which items count, and how units rank (docs/history.md, "The monthly rating").

Pure: the store (`streams/store/`) classifies each item with :func:`classify` when it writes it and sums
the flags in SQL; :func:`rate` computes the same rating from items in memory (the output of ``otklik
replay``, a test's expectation). Both end in :func:`finish`, so shares, percentiles and ranks are
rounded and ordered in one place.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, NamedTuple
from zoneinfo import ZoneInfo

__all__ = [
    "RATING_FIELDS",
    "UNIT_KINDS",
    "ItemFacts",
    "Month",
    "RatingRow",
    "UnitTotals",
    "classify",
    "finish",
    "month_bounds",
    "percentile",
    "rate",
]

# What a rating can be computed by: the item's page, or the page's place in the registry.
UNIT_KINDS: Final = ("page", "municipality", "sector", "region")

# The keys of a rating row, in the order of the CSV columns (the JSON object has exactly these).
RATING_FIELDS: Final = (
    "unit",
    "received",
    "needing_answer",
    "judged",
    "on_time",
    "breached",
    "on_time_share",
    "median_business_s",
    "p90_business_s",
    "unanswered_at_end",
    "moderated_without_answer",
    "offensive_overdue",
    "rated",
    "rank",
)

# Outcomes judged against the deadline whatever their time: the item was answered, removed by the page,
# or left open to the retention horizon. `open` and `withdrawn` are judged only once past the deadline.
_ALWAYS_JUDGED: Final = frozenset({"answered", "moderated", "expired"})


class Flags(NamedTuple):
    needs_answer: bool
    judged: bool


def classify(outcome: str, breached: bool) -> Flags:
    """Whether an item needs an answer, and whether it was judged against its deadline.

    An item withdrawn by its author before the deadline, or still open and not yet due, is not judged:
    nobody could have been late with it. One withdrawn or still open past the deadline is (breached).
    """
    needs_answer = outcome != "no_answer_needed"
    return Flags(needs_answer, needs_answer and (outcome in _ALWAYS_JUDGED or breached))


class Month(NamedTuple):
    """A calendar month in a time zone, as unix seconds: ``start <= created_at < end``."""

    label: str  # "2026-11"
    zone: str
    start: int
    end: int


def month_bounds(label: str, zone: str) -> Month:
    """The month ``YYYY-MM`` in ``zone``; ValueError naming the problem for a bad label or zone."""
    try:
        year_text, month_text = label.split("-")
        year, month = int(year_text), int(month_text)
        if len(year_text) != 4 or not 1 <= month <= 12:
            raise ValueError
    except ValueError:
        raise ValueError(f"month {label!r} is not YYYY-MM") from None
    try:
        tz = ZoneInfo(zone)
    except (KeyError, ValueError) as exc:  # ZoneInfoNotFoundError is a KeyError
        raise ValueError(f"time zone {zone!r} is unknown") from exc
    start = datetime(year, month, 1, tzinfo=tz)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=tz)
    return Month(f"{year:04d}-{month:02d}", zone, int(start.timestamp()), int(end.timestamp()))


def percentile(sorted_values: Sequence[int | float], fraction: float) -> float | None:
    """Linear interpolation between the closest ranks: PostgreSQL's ``percentile_cont``."""
    n = len(sorted_values)
    if n == 0:
        return None
    position = fraction * (n - 1)
    lower = math.floor(position)
    upper = min(lower + 1, n - 1)
    low = float(sorted_values[lower])
    return low + (float(sorted_values[upper]) - low) * (position - lower)


@dataclass(frozen=True, slots=True)
class ItemFacts:
    """What the rating needs of one item."""

    unit: str
    created_at: int
    outcome: str
    breached: bool
    closed_at: int | None
    business_latency_s: int | None
    offensive_overdue: bool = False


@dataclass(slots=True)
class UnitTotals:
    """One unit's sums over the month's items (a SQL ``GROUP BY`` row, or :func:`rate`'s tally)."""

    unit: str
    received: int = 0
    needing_answer: int = 0
    judged: int = 0
    breached: int = 0
    unanswered_at_end: int = 0
    moderated_without_answer: int = 0
    offensive_overdue: int = 0
    median_business_s: float | None = None
    p90_business_s: float | None = None
    answered_latencies: list[int] = field(default_factory=list)  # :func:`rate` only


@dataclass(frozen=True, slots=True)
class RatingRow:
    unit: str
    received: int
    needing_answer: int
    judged: int
    on_time: int
    breached: int
    on_time_share: float | None
    median_business_s: float | None
    p90_business_s: float | None
    unanswered_at_end: int
    moderated_without_answer: int
    offensive_overdue: int
    rated: bool
    rank: int | None

    def as_dict(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in RATING_FIELDS}


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def finish(totals: Iterable[UnitTotals], min_judged: int) -> list[RatingRow]:
    """Rating rows from per-unit sums: shares, rounding, and ranks; best first, then unrated by name.

    A unit is rated when at least ``min_judged`` of its items were judged. Rated units rank by on-time
    share (highest first), ties broken by the median working-time latency (lowest first, none last);
    units equal in both share a rank (1, 2, 2, 4).
    """
    rows: list[RatingRow] = []
    for t in totals:
        on_time = t.judged - t.breached
        share = on_time / t.judged if t.judged else None
        rows.append(
            RatingRow(
                unit=t.unit,
                received=t.received,
                needing_answer=t.needing_answer,
                judged=t.judged,
                on_time=on_time,
                breached=t.breached,
                on_time_share=_round(share, 4),
                median_business_s=_round(t.median_business_s, 1),
                p90_business_s=_round(t.p90_business_s, 1),
                unanswered_at_end=t.unanswered_at_end,
                moderated_without_answer=t.moderated_without_answer,
                offensive_overdue=t.offensive_overdue,
                rated=t.judged >= min_judged and t.judged > 0,
                rank=None,
            )
        )

    def order(row: RatingRow) -> tuple[float, float]:
        median = row.median_business_s
        return (-(row.on_time_share or 0.0), math.inf if median is None else median)

    rated = sorted((r for r in rows if r.rated), key=lambda r: (order(r), r.unit))
    ranked: list[RatingRow] = []
    previous: tuple[float, float] | None = None
    rank = 0
    for position, row in enumerate(rated, start=1):
        key = order(row)
        if key != previous:
            rank, previous = position, key
        ranked.append(_with_rank(row, rank))
    unrated = sorted((r for r in rows if not r.rated), key=lambda r: r.unit)
    return ranked + unrated


def _with_rank(row: RatingRow, rank: int) -> RatingRow:
    values = row.as_dict()
    values["rank"] = rank
    return RatingRow(**values)  # type: ignore[arg-type]


def rate(items: Iterable[ItemFacts], month: Month, min_judged: int = 2) -> list[RatingRow]:
    """The rating of ``month`` from items in memory: those created within it, grouped by ``unit``."""
    units: dict[str, UnitTotals] = {}
    for it in items:
        if not month.start <= it.created_at < month.end:
            continue
        t = units.get(it.unit)
        if t is None:
            t = units[it.unit] = UnitTotals(it.unit)
        t.received += 1
        flags = classify(it.outcome, it.breached)
        if flags.needs_answer:
            t.needing_answer += 1
            if it.closed_at is None or it.closed_at >= month.end:
                t.unanswered_at_end += 1
        if flags.judged:
            t.judged += 1
            t.breached += it.breached
        if it.outcome == "answered" and it.business_latency_s is not None:
            t.answered_latencies.append(it.business_latency_s)
        if it.outcome == "moderated":
            t.moderated_without_answer += 1
        t.offensive_overdue += it.offensive_overdue
    for t in units.values():
        latencies = sorted(t.answered_latencies)
        t.median_business_s = percentile(latencies, 0.5)
        t.p90_business_s = percentile(latencies, 0.9)
    return finish(units.values(), min_judged)
