"""A community's working hours as VK publishes them, in the page registry's notation (pure).

VK keeps a community's opening hours on its addresses (``groups.getAddresses`` with ``fields=timetable``):
per weekday ``open_time``, ``close_time`` and optionally a break (``break_open_time``,
``break_close_time``), in minutes after local midnight. ``otklik registry suggest`` turns them into a
registry entry's ``schedule`` (docs/registry.md, "Schedules, deadlines and dates") for a person to review: a day with a break
becomes two ranges, a day VK does not list is a day off.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from otklik.schemas.schedule import DAY_NAMES, MINUTES_PER_DAY, Schedule


def schedule_from_timetable(timetable: Mapping[str, Mapping[str, Any]]) -> dict[str, list[str]] | None:
    """The registry's ``schedule`` for a VK timetable, or None when it gives no working time (or times
    the registry cannot hold: a close before the open, past midnight)."""
    days: list[tuple[tuple[int, int], ...]] = []
    for name in DAY_NAMES:
        day = timetable.get(name)
        if not day:
            days.append(())
            continue
        opens, closes = day.get("open_time"), day.get("close_time")
        if not isinstance(opens, int) or not isinstance(closes, int):
            return None
        if closes == 0:
            closes = MINUTES_PER_DAY  # open until midnight
        pause = (day.get("break_open_time"), day.get("break_close_time"))
        if all(isinstance(t, int) for t in pause) and opens < pause[0] < pause[1] < closes:  # type: ignore[operator]
            days.append(((opens, pause[0]), (pause[1], closes)))  # type: ignore[arg-type]
        else:
            days.append(((opens, closes),))
    try:
        schedule = Schedule(tuple(days))
    except ValueError:
        return None
    return schedule.to_mapping() if schedule.weekly_minutes else None


def suggest_entry(group_id: int, title: str | None, addresses: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A registry entry for a VK community: its id, its title, and the schedule of the first address
    that has a timetable (``work_info_status: timetable``); without one, no schedule (the defaults apply)."""
    entry: dict[str, Any] = {"id": f"vk:{group_id}"}
    if title:
        entry["title"] = title
    for address in addresses:
        timetable = address.get("timetable")
        if address.get("work_info_status") not in (None, "timetable") or not isinstance(timetable, Mapping):
            continue
        schedule = schedule_from_timetable(timetable)
        if schedule is not None:
            entry["schedule"] = schedule
            break
    return entry
