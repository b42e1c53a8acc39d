"""The catch-up service's watch rules (agents/ingest/watch_rules.py): when managers are due for a sync,
and when a community's silence is a gap."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from otklik.agents.ingest.watch_rules import MOSCOW, ManagersDue, SilenceRule, SilenceWatch, day_off

HOUR = 3600


def moscow(d: date, hour: int, minute: int = 0) -> float:
    return datetime(d.year, d.month, d.day, hour, minute, tzinfo=MOSCOW).timestamp()


# ---- managers ---------------------------------------------------------------------------------------


def test_a_community_first_seen_is_due_at_once_then_every_so_often() -> None:
    due = ManagersDue(every_s=6 * HOUR)
    assert due.seen("vk:1") is True and due.seen("vk:1") is False
    assert due.due(1000) == ["vk:1"]
    due.done("vk:1", 1000, ok=True)
    assert due.due(1000 + 6 * HOUR - 1) == []
    assert due.due(1000 + 6 * HOUR) == ["vk:1"]


def test_a_read_that_gave_no_list_is_retried_later_not_every_round() -> None:
    due = ManagersDue(every_s=6 * HOUR, retry_s=900)
    due.seen("vk:1")
    due.done("vk:1", 1000, ok=False)
    assert due.due(1000 + 899) == []
    assert due.due(1000 + 900) == ["vk:1"]
    # A list read earlier does not hide a later failure, and a success clears it.
    due.done("vk:1", 2000, ok=True)
    due.done("vk:1", 2000 + 6 * HOUR, ok=False)
    assert due.due(2000 + 6 * HOUR + 1) == []
    assert due.due(2000 + 6 * HOUR + 900) == ["vk:1"]


def test_lists_read_before_a_restart_are_not_read_again_at_once() -> None:
    due = ManagersDue(every_s=6 * HOUR)
    for page, at in (("vk:1", 10_000), ("vk:2", 12_000)):
        due.seen(page)
        due.restore(page, at)
    due.restore("vk:1", 5_000)  # an older list read back later changes nothing
    due.seen("vk:3")
    assert due.due(13_000) == ["vk:3"]
    assert due.due(10_000 + 6 * HOUR) == ["vk:3", "vk:1"]


def test_a_round_takes_the_never_read_first_then_the_longest_waiting_and_no_more_than_its_share() -> None:
    due = ManagersDue(every_s=100, per_round=3)
    for n, at in ((1, 50), (2, 10), (3, 30)):
        due.seen(f"vk:{n}")
        due.restore(f"vk:{n}", at)
    due.seen("vk:9")
    assert due.due(1000) == ["vk:9", "vk:2", "vk:3"]
    for page in due.due(1000):
        due.done(page, 1000, ok=True)
    assert due.due(1001) == ["vk:1"]


# ---- silence ----------------------------------------------------------------------------------------

MONDAY = date(2026, 11, 16)


def office_days(watch: SilenceWatch, community: str, first: date, last: date, every_min: int = 5) -> None:
    """An event every ``every_min`` minutes from 09:00 to 18:00 on working days, none otherwise."""
    d = first
    while d <= last:
        if not day_off(d.toordinal()):
            for minute in range(0, 9 * 60, every_min):
                watch.seen(community, moscow(d, 9) + minute * 60)
        d += timedelta(days=1)


def test_the_production_calendar_decides_days_off() -> None:
    assert not day_off(MONDAY.toordinal())
    assert day_off(date(2026, 11, 21).toordinal())  # a Saturday
    assert day_off(date(2026, 11, 4).toordinal())  # National Unity Day, a Wednesday


def test_a_busy_community_silent_through_its_working_hours_is_a_gap() -> None:
    watch = SilenceWatch(SilenceRule(expected=8, floor_s=1800))
    office_days(watch, "vk:1", MONDAY, date(2026, 11, 30))
    tuesday = date(2026, 12, 1)
    for minute in range(0, 120, 5):  # 09:00 to 10:55
        watch.seen("vk:1", moscow(tuesday, 9) + minute * 60)
    last = moscow(tuesday, 10, 55)
    assert watch.silent(moscow(tuesday, 11, 25)) == []  # 30 minutes: 6 events expected, short of 8
    now = moscow(tuesday, 11, 40)
    assert watch.silent(now) == [("vk:1", int(last), int(now))]
    # The same silence is not recorded again at once; it starts again from the gap's end.
    assert watch.silent(now + 600) == []
    later = now + 45 * 60
    assert watch.silent(later) == [("vk:1", int(now), int(later))]
    # An event ends the silence.
    watch.seen("vk:1", later + 60)
    assert watch.silent(later + 600) == []


def test_silence_at_night_and_on_days_off_is_the_community_s_usual_rhythm() -> None:
    watch = SilenceWatch(SilenceRule(expected=8, floor_s=1800))
    office_days(watch, "vk:1", MONDAY, date(2026, 12, 4))
    # From Friday 17:55 to Monday 08:00: nothing expected at those hours.
    assert watch.silent(moscow(date(2026, 12, 7), 8)) == []
    assert watch.expected("vk:1", moscow(date(2026, 12, 4), 18), moscow(date(2026, 12, 7), 8)) == 0.0
    # Monday morning at 10:00 it is: two hours of 12 an hour.
    assert [c for c, _, _ in watch.silent(moscow(date(2026, 12, 7), 10))] == ["vk:1"]


def test_a_community_is_judged_only_after_its_learning_days_and_never_below_the_floor() -> None:
    rule = SilenceRule(expected=8, floor_s=1800, learn_days=3)
    watch = SilenceWatch(rule)
    office_days(watch, "vk:1", MONDAY, MONDAY + timedelta(days=2), every_min=1)
    # Whole days watched: Tuesday and Wednesday (Monday began with the first event): still learning.
    thursday = MONDAY + timedelta(days=3)
    assert watch.expected("vk:1", moscow(thursday, 9), moscow(thursday, 12)) is None
    assert watch.silent(moscow(thursday, 12)) == []
    busy = SilenceWatch(rule)
    office_days(busy, "vk:1", MONDAY, MONDAY + timedelta(days=14), every_min=1)
    tuesday = MONDAY + timedelta(days=15)
    busy.seen("vk:1", moscow(tuesday, 10))
    assert busy.expected("vk:1", moscow(tuesday, 10), moscow(tuesday, 10, 20)) >= 8  # type: ignore[operator]
    assert busy.silent(moscow(tuesday, 10, 20)) == []  # below the floor
    assert [c for c, _, _ in busy.silent(moscow(tuesday, 10, 30))] == ["vk:1"]


def test_a_quiet_community_is_a_gap_only_after_days_and_an_abandoned_one_fades() -> None:
    watch = SilenceWatch(SilenceRule(expected=8, floor_s=1800))
    for n in range(10):  # two events a day, at noon and at 15:00, to Wednesday 25 November
        d = MONDAY + timedelta(days=n)
        watch.seen("vk:1", moscow(d, 12))
        watch.seen("vk:1", moscow(d, 15))
    assert watch.silent(moscow(MONDAY + timedelta(days=11), 18)) == []
    # The silence's own days are learned as quiet ones, so it takes longer than four days of two.
    assert watch.silent(moscow(MONDAY + timedelta(days=13), 18)) == []
    assert [c for c, _, _ in watch.silent(moscow(MONDAY + timedelta(days=15), 18))] == ["vk:1"]
    # Two weeks on, its learned rate is nil: no more gaps for a page nobody writes to.
    assert watch.expected("vk:1", moscow(MONDAY + timedelta(days=24), 0), moscow(MONDAY + timedelta(days=30), 0)) == 0


def test_a_page_is_judged_by_its_own_lulls_not_by_its_rate_alone() -> None:
    """Thirty events in the five minutes after 10:00 every day and none otherwise: the lull after the
    burst is the page's rhythm. A silence becomes a gap only when it is half again heavier than any
    lull of the last days: here, when a day's burst is missing."""

    def burst(watch: SilenceWatch, d: date) -> None:
        for k in range(30):
            watch.seen("vk:1", moscow(d, 10) + 10 * k)

    def trained(margin: float) -> SilenceWatch:
        watch = SilenceWatch(SilenceRule(expected=8, floor_s=1800, margin=margin))
        for n in range(10):
            burst(watch, MONDAY + timedelta(days=n))
        return watch

    def gaps_over_a_day(watch: SilenceWatch, d: date, with_burst: bool = False) -> list[tuple[str, int, int]]:
        found = []
        for minute in range(0, 24 * 60, 10):
            if with_burst and minute == 10 * 60:
                burst(watch, d)
            found += watch.silent(moscow(d, 0) + minute * 60)
        return found

    for margin, false_gaps in ((1.5, False), (0.0, True)):
        found = gaps_over_a_day(trained(margin), MONDAY + timedelta(days=10), with_burst=True)
        assert bool(found) is false_gaps, margin
    watch = trained(1.5)
    missed = MONDAY + timedelta(days=10)  # no burst: from the last one, 24 h and a half hour of its hour
    [(community, since, until)] = gaps_over_a_day(watch, missed)
    assert community == "vk:1" and since == int(moscow(MONDAY + timedelta(days=9), 10) + 290)
    assert moscow(missed, 10, 20) <= until <= moscow(missed, 10, 40)


def test_expected_zero_turns_the_rule_off() -> None:
    watch = SilenceWatch(SilenceRule(expected=0))
    office_days(watch, "vk:1", MONDAY, date(2026, 11, 30))
    assert watch.silent(moscow(date(2026, 12, 1), 17)) == []


def test_the_state_survives_a_restart_and_a_bad_entry_is_skipped() -> None:
    rule = SilenceRule(expected=8, floor_s=1800)
    watch = SilenceWatch(rule)
    office_days(watch, "vk:1", MONDAY, date(2026, 11, 30))
    state = watch.state()
    again = SilenceWatch(rule)
    assert again.load({**state, "vk:2": {"first": 1, "days": {}}, "vk:3": {"x": 1}}) == 1
    now = moscow(date(2026, 12, 1), 12)
    assert again.silent(now) == watch.silent(now) != []


def test_old_days_are_forgotten() -> None:
    rule = SilenceRule(history_days=14)
    watch = SilenceWatch(rule)
    office_days(watch, "vk:1", MONDAY, MONDAY + timedelta(days=30))
    days = sorted(watch.communities["vk:1"].days)
    assert days[-1] - days[0] <= 14
