"""The catch-up of one gap (streams/edge/catchup.py) against the fake VK API: the window it reads, the
envelopes it produces, and no token in what it logs."""

from __future__ import annotations

import logging
import uuid

import aiohttp
import orjson

from otklik.schemas.records import Gap
from otklik.streams.edge.catchup import CatchUp
from otklik.streams.edge.vk_api import VkApiClient, VkToken
from otklik.streams.edge.vk_collect import WindowReader
from otklik.streams.settings import VkApiSettings
from tests.fakes.vk_api import FakeClock, FakeVkApi, KnownToken, scripted_community

GROUP = 4301


async def test_a_gap_is_read_from_the_margin_before_it_to_now_and_produced_as_vk_api_envelopes(caplog) -> None:
    caplog.set_level(logging.DEBUG)
    clock = FakeClock()
    service, group = f"vk1.a.service-{uuid.uuid4().hex}", f"vk1.a.group-{uuid.uuid4().hex}"
    script = scripted_community(GROUP, seed=3)
    fake = FakeVkApi({GROUP: script}, {service: KnownToken("service"), group: KnownToken("group", GROUP)}, clock=clock)
    fake.deny(GROUP, 212, "wall.getComments")  # comments closed on the wall: the board and dialogs are still read
    dates = sorted(x.date for t in script.topics for x in t.comments)
    since, until, now = dates[2], dates[5], dates[8]
    produced: list[tuple[str, list[bytes]]] = []

    async def produce(key: str, values) -> None:
        produced.append((key, list(values)))

    async with fake.running(), aiohttp.ClientSession() as session:
        client = VkApiClient(VkApiSettings.from_env({}, api_url=fake.url), session, clock=clock, sleep=clock.sleep)
        reader = WindowReader(client, VkToken.of("service", service), VkToken.of("group", group))
        catchup = CatchUp(lambda g: reader, produce, margin_s=60, clock=lambda: now + 0.5)
        count = await catchup.gap(Gap(f"vk:{GROUP}", since, until, "test", "test"))
    assert fake.violations == []
    [(key, values)] = produced
    assert key == f"vk:{GROUP}" and len(values) == count
    envelopes = [orjson.loads(v) for v in values]
    assert {(e["platform"], e["source"], e["received_at"]) for e in envelopes} == {("vk", "vk-api", now + 0.5)}
    board = sorted(e["body"]["object"]["date"] for e in envelopes if e["body"]["type"] == "board_post_new")
    # From a minute before the gap to now: the answers given after the gap come with the items in it.
    assert board == [d for d in dates if since - 60 <= d <= now]
    assert "212" in caplog.text  # the part that could not be read is named
    assert service not in caplog.text and group not in caplog.text
