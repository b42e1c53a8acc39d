"""``otklik registry suggest``: a community's VK timetable as the registry's schedule
(agents/ingest/vk_schedule.py), and the entries drafted from the fake VK API (streams/edge/registry_suggest.py)."""

from __future__ import annotations

import uuid

import aiohttp
import yaml

from otklik.agents.ingest.vk_schedule import schedule_from_timetable, suggest_entry
from otklik.agents.registry import Registry
from otklik.streams.edge.registry_suggest import render, suggest
from otklik.streams.edge.vk_api import VkApiClient, VkToken
from otklik.streams.settings import VkApiSettings
from tests.fakes.vk_api import FakeClock, FakeVkApi, KnownToken, scripted_community


def test_a_break_splits_the_day_and_unlisted_days_are_off() -> None:
    timetable = {
        "mon": {"open_time": 540, "close_time": 1080, "break_open_time": 780, "break_close_time": 840},
        "sat": {"open_time": 600, "close_time": 840},
    }
    assert schedule_from_timetable(timetable) == {"mon": ["09:00-13:00", "14:00-18:00"], "sat": ["10:00-14:00"]}


def test_open_until_midnight_and_times_the_registry_cannot_hold() -> None:
    assert schedule_from_timetable({"fri": {"open_time": 1200, "close_time": 0}}) == {"fri": ["20:00-24:00"]}
    assert schedule_from_timetable({"fri": {"open_time": 1200, "close_time": 120}}) is None  # past midnight
    assert schedule_from_timetable({}) is None


def test_an_entry_takes_the_first_address_with_a_timetable() -> None:
    addresses = [
        {"id": 1, "work_info_status": "no_information"},
        {"id": 2, "work_info_status": "timetable", "timetable": {"tue": {"open_time": 480, "close_time": 1020}}},
    ]
    entry = suggest_entry(5, "Школа № 5", addresses)
    assert entry == {"id": "vk:5", "title": "Школа № 5", "schedule": {"tue": ["08:00-17:00"]}}
    assert suggest_entry(5, None, addresses[:1]) == {"id": "vk:5"}


async def test_suggested_entries_from_the_vk_api_load_as_a_registry() -> None:
    clock = FakeClock()
    secret = f"vk1.a.service-{uuid.uuid4().hex}"
    communities = {g: scripted_community(g) for g in (4101, 4102)}
    communities[4102].addresses = []  # no address: the defaults' schedule applies
    fake = FakeVkApi(communities, {secret: KnownToken("service")}, clock=clock)
    async with fake.running(), aiohttp.ClientSession() as session:
        client = VkApiClient(VkApiSettings.from_env({}, api_url=fake.url), session, clock=clock, sleep=clock.sleep)
        entries = await suggest(client, VkToken.of("service", secret), [4101, 4102])
    assert fake.violations == []
    weekday = ["09:00-13:00", "14:00-18:00"]
    assert entries == [
        {
            "id": "vk:4101",
            "title": "Сообщество 4101",
            "schedule": dict.fromkeys(("mon", "tue", "wed", "thu", "fri"), weekday),
        },
        {"id": "vk:4102", "title": "Сообщество 4102"},
    ]
    text = render(entries)
    registry = Registry.from_mapping(yaml.safe_load(text))
    assert registry.page("vk:4101").title == "Сообщество 4101"
    assert registry.page("vk:4101").schedule.weekly_minutes == 5 * 8 * 60
