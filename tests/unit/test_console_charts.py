"""The page view's charts of response times (agents/console/charts.py): the bars' heights follow the
figures on one scale, the deadline line sits where the deadline is, and each answer falls in the bin of
the share of the deadline it took (an answer exactly at the deadline is in time)."""

from __future__ import annotations

from otklik.agents.console.charts import BASE, BINS, HOUR, TALL, latency_histogram, month_latencies


def test_each_month_has_its_median_and_90th_percentile_on_one_scale_with_the_deadline() -> None:
    chart = month_latencies(
        [("2025-10", None, None), ("2025-11", 1.5 * HOUR, 6 * HOUR), ("2025-12", 2 * HOUR, 10 * HOUR)],
        8 * HOUR,
        working=True,
    )
    assert chart.top_hours == 10  # the largest figure, in whole hours
    empty, november, december = chart.months
    assert (empty.median.height, empty.p90.height, empty.p90.label) == (0, 0, "—")
    assert (november.median.height, november.p90.height) == (15, 60)
    assert (december.median.height, december.p90.height) == (20, TALL)
    assert december.p90.y == BASE - TALL and november.median.y == BASE - 15
    assert (november.median.label, november.p90.label, december.p90.value) == ("1.5 ч", "6.0 ч", 10.0)
    assert chart.deadline_y == BASE - 80
    assert [m.p90.x for m in chart.months] == [10, 70, 130]  # oldest first, left to right


def test_the_scale_holds_the_deadline_and_a_calendar_deadline_draws_no_line() -> None:
    fast = [("2025-12", 0.5 * HOUR, 1 * HOUR)]
    working = month_latencies(fast, 4 * HOUR, working=True)
    assert working.top_hours == 4 and working.deadline_y == BASE - TALL
    assert working.months[0].p90.height == 25
    calendar = month_latencies(fast, 24 * HOUR, working=False)
    assert calendar.top_hours == 1 and calendar.deadline_y is None


def test_answers_fall_in_the_bin_of_the_share_of_the_deadline_they_took() -> None:
    deadline = 4 * HOUR
    latencies = [0, HOUR - 1, HOUR, 3 * HOUR, deadline, deadline + 1, 6 * HOUR, 8 * HOUR, 8 * HOUR + 1, 30 * HOUR]
    histogram = latency_histogram(latencies, deadline)
    # A bin holds its upper edge: a quarter of the deadline is "up to a quarter", the deadline in time.
    assert [bar.value for bar in histogram.bars] == [3, 0, 1, 1, 2, 1, 2]
    assert (histogram.answered, histogram.in_time) == (10, 5)
    assert [bar.label for bar in histogram.bars] == [title for _, title in BINS]
    assert [bar.height for bar in histogram.bars] == [TALL, 0, 33, 33, 67, 33, 67]
    assert latency_histogram([], deadline).answered == 0
    assert all(bar.height == 0 for bar in latency_histogram([], deadline).bars)
