"""What the catch-up service decides while it watches ``otklik.raw``, without I/O: when each community's
managers are due for a sync, and when a community's silence is far beyond its usual rate
(docs/data-flow.md, "Gaps and catch-up"; docs/responses.md, "Page replies"). The service itself is
streams/edge/watch.py.

Everything takes the time as an argument, so tests drive it with a fake clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

from otklik.agents.clock.calendar_ru import ProductionCalendar

# ---- managers ---------------------------------------------------------------------------------------


@dataclass
class ManagersDue:
    """Which communities' manager lists to read now: one never read at once (first seen), the others
    ``every_s`` after their last list; one whose read gave no list is tried again ``retry_s`` after.
    At most ``per_round`` a round, those never read first, then the longest waiting, so a start after a
    long stop (or with many new communities) spreads its reads over rounds instead of all at once."""

    every_s: int
    retry_s: int = 900
    per_round: int = 50
    synced: dict[str, int] = field(default_factory=dict)  # page -> time of its last list
    failed: dict[str, int] = field(default_factory=dict)  # page -> time of a later read that gave none
    known: set[str] = field(default_factory=set)

    def seen(self, page: str) -> bool:
        """Note a community; True when it is new to this service."""
        if page in self.known:
            return False
        self.known.add(page)
        return True

    def restore(self, page: str, at: int) -> None:
        """A list read earlier (``otklik.managers`` read back at start): no read until ``every_s`` after it."""
        if at > self.synced.get(page, -1):
            self.synced[page] = at

    def next_at(self, page: str) -> int:
        """When ``page`` is next due (0: never read, due now)."""
        last = self.synced.get(page)
        due = 0 if last is None else last + self.every_s
        tried = self.failed.get(page)
        if tried is not None and (last is None or tried > last):
            due = max(due, tried + self.retry_s)
        return due

    def due(self, now: int) -> list[str]:
        ready = [(page in self.synced, self.next_at(page), page) for page in self.known]
        ready = [r for r in ready if r[1] <= now]
        ready.sort()
        return [page for _, _, page in ready[: self.per_round]]

    def done(self, page: str, at: int, ok: bool) -> None:
        if ok:
            self.restore(page, at)
            self.failed.pop(page, None)
        else:
            self.failed[page] = at


# ---- silence ----------------------------------------------------------------------------------------

MOSCOW = timezone(timedelta(hours=3))  # no daylight saving since 2014
_CALENDAR = ProductionCalendar()


@lru_cache(maxsize=4096)
def day_off(ordinal: int) -> bool:
    """Whether the day (a proleptic Gregorian ordinal) is a day off by the federal production calendar."""
    d = date.fromordinal(ordinal)
    if _CALENDAR.is_holiday(d):
        return True
    return d.weekday() >= 5 and _CALENDAR.schedule_weekday(d) == d.weekday()


def _slot(at: float) -> tuple[int, int]:
    """(day ordinal, hour) of unix time ``at`` in Moscow time: the hours the rates are learned in. One
    zone for every page is enough: a page's rhythm repeats daily in any zone; only the edge of a day
    off shifts by the page's offset from Moscow."""
    t = datetime.fromtimestamp(at, MOSCOW)
    return t.toordinal(), t.hour


@dataclass(frozen=True)
class SilenceRule:
    """A community's silence is a gap when it is far beyond the silences it usually has. Its usual rate
    is learned per hour of day, working days apart from days off, over the last ``history_days`` whole
    days; a silence's weight is the number of events that rate gives it. A silence is a gap when it is
    at least ``floor_s`` long and its weight is at least ``expected`` and at least ``margin`` times the
    heaviest silence the community had (and that was no gap) in those days: traffic comes in bursts,
    so a rate alone would take a page's ordinary lulls for gaps. A false gap costs a catch-up read of
    the window (a few API calls), never a wrong figure. Judged only after ``learn_days`` whole days of
    rates and as many days of silences; ``expected`` 0 turns the rule off."""

    expected: float = 8.0
    floor_s: int = 1800
    margin: float = 1.5
    learn_days: int = 3
    history_days: int = 14


@dataclass
class _Community:
    first: float  # the first event watched
    quiet_since: float  # the last event, or the end of the last gap recorded for this silence
    days: dict[int, list[int]] = field(default_factory=dict)  # day ordinal -> events per hour
    heaviest: dict[int, float] = field(default_factory=dict)  # day ordinal -> weight of its heaviest silence
    in_gap: bool = False  # the silence going on was recorded as a gap (its weight is not a usual one)
    rates_day: int = -1  # the day the rates below were computed on (they use whole past days only)
    rates: tuple[list[float], list[float]] | None = None  # (working day, day off) -> events per hour
    peak: float = 0.0


class SilenceWatch:
    """Per community: events per hour of the last days, the heaviest silences, and the silence since
    the last event."""

    def __init__(self, rule: SilenceRule) -> None:
        self.rule = rule
        self.communities: dict[str, _Community] = {}

    def seen(self, community: str, at: float) -> None:
        c = self.communities.get(community)
        if c is None:
            c = self.communities[community] = _Community(at, at)
        day, hour = _slot(at)
        counts = c.days.get(day)
        if counts is None:
            counts = c.days[day] = [0] * 24
            oldest = day - self.rule.history_days
            for old in [d for d in c.days if d < oldest]:
                del c.days[old]
            for old in [d for d in c.heaviest if d < oldest]:
                del c.heaviest[old]
        counts[hour] += 1
        if at > c.quiet_since:
            if not c.in_gap and at - c.quiet_since >= 60:  # a silence ended: remember how heavy it was
                weight = self._weight(c, c.quiet_since, at, math.inf)
                if weight is not None:
                    c.heaviest[day] = max(weight, c.heaviest.get(day, 0.0))
            c.quiet_since = at
            c.in_gap = False
        if at < c.first:
            c.first = at

    def _rates(self, c: _Community, today: int) -> tuple[list[float], list[float]] | None:
        """Events per hour, per hour of day, on working days and days off; None while learning."""
        if c.rates_day == today:
            return c.rates
        first_whole = _slot(c.first)[0] + 1
        days = range(max(first_whole, today - self.rule.history_days), today)
        c.rates_day, c.rates, c.peak = today, None, 0.0
        if len(days) < self.rule.learn_days:
            return None
        sums: tuple[list[float], list[float]] = ([0.0] * 24, [0.0] * 24)
        n = [0, 0]
        for d in days:
            kind = 1 if day_off(d) else 0
            n[kind] += 1
            counts = c.days.get(d)
            if counts is not None:
                for h in range(24):
                    sums[kind][h] += counts[h]
        both = [sums[0][h] + sums[1][h] for h in range(24)]
        rates = tuple(
            [s / n[kind] for s in sums[kind]] if n[kind] else [b / len(days) for b in both] for kind in (0, 1)
        )
        c.rates = (rates[0], rates[1])
        c.peak = max(max(rates[0]), max(rates[1]))
        return c.rates

    def _weight(self, c: _Community, since: float, until: float, enough: float) -> float | None:
        """Events the usual rate gives ``[since, until)``, counted no further than ``enough``; None
        while learning."""
        rates = self._rates(c, _slot(until)[0])
        if rates is None:
            return None
        if c.peak * (until - since) / 3600 < enough:  # an upper bound short of enough: no need to count
            enough = math.inf
        total = 0.0
        t = since
        while t < until and total < enough:
            hour_end = (math.floor(t / 3600) + 1) * 3600  # Moscow's offset is whole hours
            end = min(hour_end, until)
            day, hour = _slot(t)
            total += rates[1 if day_off(day) else 0][hour] * (end - t) / 3600
            t = end
        return total

    def expected(self, community: str, since: float, until: float) -> float | None:
        """Events the community's usual rate gives ``[since, until)``; None while still learning."""
        c = self.communities.get(community)
        return None if c is None else self._weight(c, since, until, math.inf)

    def threshold(self, community: str, today: int) -> float | None:
        """The weight a silence of the community needs to be a gap; None while its silences are learned."""
        c = self.communities.get(community)
        if c is None:
            return None
        known = [w for d, w in c.heaviest.items() if today - self.rule.history_days <= d < today]
        if len(known) < self.rule.learn_days:
            return None
        return max(self.rule.expected, self.rule.margin * max(known))

    def silent(self, now: float) -> list[tuple[str, int, int]]:
        """The communities whose silence is a gap now, as (community, since, until); each such
        silence starts again at ``now``, so a long one gives a gap per stretch, not one per call."""
        if self.rule.expected <= 0:
            return []
        out = []
        today = _slot(now)[0]
        for community, c in self.communities.items():
            since = c.quiet_since
            if now - since < self.rule.floor_s:
                continue
            needed = self.threshold(community, today)
            if needed is None:
                continue
            weight = self._weight(c, since, now, needed)
            if weight is not None and weight >= needed:
                out.append((community, int(since), int(now)))
                c.quiet_since = now
                c.in_gap = True
        return out

    # The state file's form: {"community": {"first", "quiet_since", "in_gap", "days": {"ordinal": [24
    # counts]}, "heaviest": {"ordinal": weight}}}.

    def state(self) -> dict[str, Any]:
        return {
            k: {
                "first": c.first,
                "quiet_since": c.quiet_since,
                "in_gap": c.in_gap,
                "days": {str(d): v for d, v in c.days.items()},
                "heaviest": {str(d): w for d, w in c.heaviest.items()},
            }
            for k, c in self.communities.items()
        }

    def load(self, state: Mapping[str, Any]) -> int:
        """Communities from :meth:`state`'s form; entries not of that form are skipped. Returns how many."""
        loaded = 0
        for community, value in state.items():
            try:
                days = {int(d): [int(x) for x in v] for d, v in value["days"].items()}
                if any(len(v) != 24 for v in days.values()):
                    continue
                heaviest = {int(d): float(w) for d, w in (value.get("heaviest") or {}).items()}
                c = _Community(float(value["first"]), float(value["quiet_since"]), days, heaviest)
                c.in_gap = bool(value.get("in_gap", False))
            except (KeyError, TypeError, ValueError, AttributeError):
                continue
            self.communities[community] = c
            loaded += 1
        return loaded
