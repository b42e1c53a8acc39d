"""The monthly rating's rules (agents/history/rating.py; docs/history.md, "The monthly rating")."""

from __future__ import annotations

import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from otklik.agents.history.rating import (
    RATING_FIELDS,
    ItemFacts,
    UnitTotals,
    classify,
    finish,
    month_bounds,
    percentile,
    rate,
)

NOV = month_bounds("2026-11", "Europe/Moscow")


def facts(unit: str, outcome: str, breached: bool = False, *, latency: int | None = None, **kw: object) -> ItemFacts:
    created = int(kw.pop("created_at", NOV.start + 3600))  # type: ignore[call-overload]
    closed = kw.pop("closed_at", created + 60 if outcome != "open" else None)
    return ItemFacts(unit, created, outcome, breached, closed, latency, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("outcome", "breached", "needs", "judged"),
    [
        ("answered", False, True, True),
        ("answered", True, True, True),
        ("moderated", False, True, True),
        ("expired", True, True, True),
        ("open", True, True, True),  # still open past its deadline
        ("open", False, True, False),  # not yet due
        ("withdrawn", False, True, False),  # withdrawn before the deadline
        ("withdrawn", True, True, True),  # withdrawn after it
        ("no_answer_needed", False, False, False),
    ],
)
def test_classify(outcome: str, breached: bool, needs: bool, judged: bool) -> None:
    assert classify(outcome, breached) == (needs, judged)


def test_month_bounds_are_the_zone_s_midnights() -> None:
    assert NOV.start == 1793480400  # 2026-11-01T00:00+03:00
    assert NOV.end - NOV.start == 30 * 86400
    dec = month_bounds("2026-12", "Asia/Vladivostok")
    assert dec.end == month_bounds("2027-01", "Asia/Vladivostok").start
    # A zone with daylight saving time: March has 31 days minus an hour.
    march = month_bounds("2026-03", "Europe/Berlin")
    assert march.end - march.start == 31 * 86400 - 3600


@pytest.mark.parametrize("label", ["2026-13", "2026-1x", "26-11", "2026/11", ""])
def test_a_bad_month_is_named(label: str) -> None:
    with pytest.raises(ValueError, match="is not YYYY-MM"):
        month_bounds(label, "Europe/Moscow")


def test_an_unknown_zone_is_named() -> None:
    with pytest.raises(ValueError, match="Mars/Olympus"):
        month_bounds("2026-11", "Mars/Olympus")


@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=60))
def test_percentile_interpolates_like_percentile_cont(values: list[int]) -> None:
    ordered = sorted(values)
    assert percentile(ordered, 0.5) == pytest.approx(statistics.median(ordered))
    if len(ordered) > 1:
        assert percentile(ordered, 0.9) == pytest.approx(statistics.quantiles(ordered, n=10, method="inclusive")[-1])
    assert percentile([], 0.5) is None


def test_rate_counts_each_column_by_its_rule() -> None:
    items = [
        facts("a", "answered", latency=100),
        facts("a", "answered", True, latency=900),
        facts("a", "moderated"),
        facts("a", "open", True),  # overdue, open when the month ended
        facts("a", "open"),  # not yet due: received, not judged
        facts("a", "withdrawn"),  # before its deadline: not judged
        facts("a", "no_answer_needed"),
        facts("a", "expired", True, closed_at=NOV.end + 5),  # open at the month's end
        facts("a", "answered", latency=50, created_at=NOV.end),  # next month
        facts("a", "answered", latency=50, created_at=NOV.start - 1),  # last month
        facts("a", "answered", latency=500, closed_at=NOV.end + 10, offensive_overdue=True),
    ]
    (row,) = rate(items, NOV)
    assert row.as_dict() == {
        "unit": "a",
        "received": 9,
        "needing_answer": 8,
        "judged": 6,  # 3 answered, moderated, open overdue, expired
        "on_time": 3,
        "breached": 3,
        "on_time_share": 0.5,
        "median_business_s": 500.0,
        "p90_business_s": 820.0,
        "unanswered_at_end": 4,  # the two open, the expired, the one answered after the month
        "moderated_without_answer": 1,
        "offensive_overdue": 1,
        "rated": True,
        "rank": 1,
    }
    assert tuple(row.as_dict()) == RATING_FIELDS


def test_ranks_by_share_then_median_and_ties_share_a_rank() -> None:
    def totals(unit: str, judged: int, breached: int, median: float | None) -> UnitTotals:
        return UnitTotals(unit, judged, judged, judged, breached, median_business_s=median)

    rows = finish(
        [
            totals("slow", 10, 0, 900.0),
            totals("fast", 10, 0, 100.0),
            totals("twin-b", 4, 1, 300.0),
            totals("twin-a", 8, 2, 300.0),
            totals("no-answers", 10, 10, None),
            totals("tiny", 1, 0, 5.0),  # below --min-judged
            totals("none-judged", 0, 0, None),
        ],
        min_judged=2,
    )
    assert [(r.unit, r.rank, r.rated) for r in rows] == [
        ("fast", 1, True),
        ("slow", 2, True),
        ("twin-a", 3, True),
        ("twin-b", 3, True),
        ("no-answers", 5, True),
        ("none-judged", None, False),
        ("tiny", None, False),
    ]
    assert rows[-2].on_time_share is None


def test_min_judged_decides_who_is_rated() -> None:
    items = [facts("a", "answered", latency=10), facts("a", "answered", latency=20), facts("b", "answered", latency=5)]
    assert [(r.unit, r.rated) for r in rate(items, NOV, min_judged=2)] == [("a", True), ("b", False)]
    assert [(r.unit, r.rank) for r in rate(items, NOV, min_judged=1)] == [("b", 1), ("a", 2)]
