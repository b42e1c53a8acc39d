"""The silence rule (agents/ingest/watch_rules.py) on the simulator's traffic: how many false gaps it
records, and how many pages' outages it finds before they end, for a few values of its margin.

The traffic is ``otklik simulate`` for 50 pages over 21 days from Monday 2 November 2026 (about 40
events a page a day, seed 3). It has no outage, so every gap the rule records in it is false. Then the
same traffic with every page's events of an outage dropped: 2 hours from Tuesday 11:00, 4 hours from
Wednesday 10:00, 8 hours from Thursday 09:00 of the third week (one outage a run); a page counts as
found when a gap overlapping the outage is recorded before it ends. The rule is judged each simulated
minute, as the catch-up service's watch does.

Run: ``python -m bench.silence`` (about a minute). README, "Catch-up after a gap", has its figures.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

from otklik.agents.ingest.watch_rules import SilenceRule, SilenceWatch
from otklik.streams.tools.simulate.traffic import generate
from otklik.streams.tools.simulate.world import SimConfig

MSK = timezone(timedelta(hours=3))
PAGES, DAYS = 50, 21
OUTAGES = ((17, 11, 2), (18, 10, 4), (19, 9, 8))  # (day of November, hour, hours)


def traffic() -> list[tuple[float, str]]:
    """What ``otklik simulate --pages 50 --rate 0.05 --seed 3`` writes for the 21 days, made in process."""
    start = int(datetime(2026, 11, 2, tzinfo=MSK).timestamp())
    cfg = SimConfig(pages=PAGES, rate=0.05, duration=DAYS * 86400, seed=3, start=start)
    events = [
        (float(at), f"vk:{group}") for at, body in generate(cfg) if isinstance(group := body.get("group_id"), int)
    ]
    return sorted(events)


def judge(events: list[tuple[float, str]], rule: SilenceRule, outage: tuple[float, float] | None = None) -> list:
    watch = SilenceWatch(rule)
    gaps = []
    next_round = events[0][0] + 60
    for at, page in events:
        while at >= next_round:
            gaps += [(c, since, until, next_round) for c, since, until in watch.silent(next_round)]
            next_round += 60
        if outage is None or not outage[0] <= at < outage[1]:
            watch.seen(page, at)
    return gaps


def main() -> None:
    events = traffic()
    print(f"silence: {len(events)} events of {PAGES} pages over {DAYS} days (the simulator; no outage in it)")
    for margin in (1.0, 1.5, 2.0):
        rule = SilenceRule(expected=8, floor_s=1800, margin=margin)
        started = time.process_time()
        false = judge(events, rule)
        cpu = time.process_time() - started
        found = []
        for day, hour, hours in OUTAGES:
            start = datetime(2026, 11, day, hour, tzinfo=MSK).timestamp()
            end = start + hours * 3600
            gaps = judge(events, rule, (start, end))
            found.append(len({g[0] for g in gaps if g[1] < end and g[2] > start and g[3] <= end}))
        print(
            f"  margin {margin}: {len(false)} false gaps on {len({g[0] for g in false})} pages "
            f"({len(false) / (PAGES * DAYS):.3f} a page a day; {cpu:.1f} CPU s); outages of every page found "
            f"before their end: "
            + " / ".join(f"{h} h {n} of {PAGES}" for (_, _, h), n in zip(OUTAGES, found, strict=True))
        )


if __name__ == "__main__":
    main()
