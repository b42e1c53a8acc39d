"""``otklik managers sync`` (streams/edge/managers.py) against the fake VK API: each community's complete
list of managers as a record of otklik.managers; a community without a token or refused is reported,
and stops no other; the engine then counts the managers' replies as the page's."""

from __future__ import annotations

import uuid

import aiohttp

from otklik.agents.registry import Registry
from otklik.agents.responses.engine import ResponseEngine
from otklik.schemas.managers import ManagerList
from otklik.streams.edge.managers import sync_managers
from otklik.streams.edge.vk_api import VkApiClient, VkToken
from otklik.streams.settings import VkApiSettings
from tests.fakes.vk_api import FakeClock, FakeVkApi, KnownToken, scripted_community

GROUP, OTHER, NO_TOKEN = 4242, 4343, 4444


async def test_each_community_gives_its_complete_list_and_failures_stop_no_other() -> None:
    clock = FakeClock()
    secrets = {name: f"vk1.a.{name}-{uuid.uuid4().hex}" for name in ("group", "service")}
    communities = {GROUP: scripted_community(GROUP), OTHER: scripted_community(OTHER)}
    fake = FakeVkApi(
        communities,
        {secrets["group"]: KnownToken("group", GROUP), secrets["service"]: KnownToken("service")},
        clock=clock,
    )
    tokens = {
        GROUP: VkToken.of("group", secrets["group"], "community"),
        OTHER: VkToken.of("service", secrets["service"], "service"),  # refused: managers need a community's
    }
    produced: list[ManagerList] = []

    async def produce(record: ManagerList) -> None:
        produced.append(record)

    async with fake.running(), aiohttp.ClientSession() as session:
        client = VkApiClient(
            VkApiSettings.from_env({}, api_url=fake.url), session, clock=clock, sleep=clock.sleep, draw=lambda: 0.5
        )
        done = await sync_managers(client, tokens.get, [NO_TOKEN, OTHER, GROUP], produce, now=lambda: 1_796_400_000)
    expected = sorted(f"vk:user:{user}" for user in communities[GROUP].managers)
    assert produced == [ManagerList(f"vk:{GROUP}", expected, 1_796_400_000, "api")]
    assert done[GROUP] == f"{len(expected)} managers"
    assert done[NO_TOKEN] == "no community token"
    assert done[OTHER].startswith("not read: ") and secrets["service"] not in done[OTHER]

    engine = ResponseEngine(Registry.from_mapping({"pages": [{"id": f"vk:{GROUP}"}]}).page)
    assert engine.apply_managers(produced[0]) == expected
    assert all(engine.pages[f"vk:{GROUP}"].managers[user] == [[1_796_400_000, None]] for user in expected)
