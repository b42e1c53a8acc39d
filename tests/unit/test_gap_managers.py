"""Managers after a gap (docs/responses.md, "Managers after a gap"): the roles a catch-up writes
(agents/ingest/gap_managers.py), the engine counting a new manager's replies in the gap as the page's,
and the catch-up writing the roles before the window's bodies (streams/edge/catchup.py)."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp

from otklik.agents.ingest.gap_managers import roles_after_gap
from otklik.agents.ingest.vk_api_bodies import wall_reply_body
from otklik.schemas.managers import ManagerChange, ManagerList
from otklik.streams.edge.catchup import CatchUp
from otklik.streams.edge.vk_api import VkApiClient, VkToken
from otklik.streams.edge.vk_collect import WindowReader
from otklik.streams.settings import VkApiSettings
from tests.fakes.vk_api import FakeClock, FakeComment, FakeCommunity, FakePost, FakeVkApi, KnownToken
from tests.unit.test_responses import PAGE, VK, G, Run, at, item, registry

H = 3600
T = at("2026-12-04T10:00")
NEW = 9001  # becomes a manager in the gap; the callback saying so is lost


def run() -> Run:
    return Run(registry(schedule={"mon-sun": "00:00-24:00"}, calendar="none", deadline="30m calendar"))


def api(body: dict[str, Any]) -> dict[str, Any]:
    obj = dict(body["object"])
    return wall_reply_body(G, obj.pop("post_id"), obj)


def test_the_roles_begin_at_the_windows_start_and_the_list_follows_at_its_time() -> None:
    records = roles_after_gap(PAGE, ["vk:user:2", "vk:user:1", "vk:user:2"], T, T + H)
    assert records == [
        ManagerChange(PAGE, "vk:user:1", True, T, "api"),
        ManagerChange(PAGE, "vk:user:2", True, T, "api"),
        ManagerList(PAGE, ["vk:user:1", "vk:user:2"], T + H, "api"),
    ]
    assert roles_after_gap(PAGE, [], T, T + H) == [ManagerList(PAGE, [], T + H, "api")]


def gap_day(restore: bool) -> dict[str, Any]:
    """A question before the gap; the new manager answers it in the gap; the catch-up brings the
    answer two hours later, after the roles when ``restore``."""
    vk = VK()
    r = run().send(vk.comment(1, 5001, T))
    answer = vk.comment(2, NEW, T + 1500, parents=(1,), to_comment=1, to_user=5001)
    if restore:
        for record in roles_after_gap(PAGE, [f"vk:user:{NEW}"], T + 600, T + 2 * H):
            r.engine.apply_managers(record)
    r.send(api(answer), received_at=T + 2 * H)
    return r.final()


def test_a_new_managers_answer_in_the_gap_counts_as_the_pages_once_the_roles_are_restored() -> None:
    final = gap_day(restore=True)
    assert (final[item(1)].outcome, final[item(1)].closed_at, final[item(1)].responder) == (
        "answered",
        T + 1500,
        f"vk:user:{NEW}",
    )
    assert item(2) not in final  # the manager's reply is no item
    # Without them the answer is a citizen's comment and the question goes unanswered.
    final = gap_day(restore=False)
    assert final[item(1)].outcome == "open" and final[item(2)].outcome == "open"


def test_a_role_already_held_keeps_its_start_and_one_missing_from_the_list_ends_at_its_time() -> None:
    r = run()
    r.engine.manager(PAGE, "vk:user:1", True, T - 10 * H)
    r.engine.manager(PAGE, "vk:user:2", True, T - 10 * H)
    for record in roles_after_gap(PAGE, ["vk:user:1", f"vk:user:{NEW}"], T, T + 2 * H):
        r.engine.apply_managers(record)
    spans = r.engine.pages[PAGE].managers
    assert spans == {
        "vk:user:1": [[T - 10 * H, None]],
        "vk:user:2": [[T - 10 * H, T + 2 * H]],  # removed in the gap: their replies in it still count
        f"vk:user:{NEW}": [[T, None]],
    }


GROUP = 4545
NOW = 1_796_400_000


async def test_the_catch_up_writes_the_roles_before_the_bodies_and_only_with_the_communitys_token() -> None:
    c = FakeCommunity(GROUP, "Менеджеры", managers={NEW: "editor"})
    post = FakePost(1, NOW - 3 * H, "пост")
    post.comments = [FakeComment(2, 5001, NOW - H, "вопрос", [FakeComment(3, NEW, NOW - H + 60, "ответ")])]
    c.posts = [post]
    clock = FakeClock()
    service, group = (f"vk1.a.{kind}-{uuid.uuid4().hex}" for kind in ("service", "group"))
    fake = FakeVkApi({GROUP: c}, {service: KnownToken("service"), group: KnownToken("group", GROUP)}, clock=clock)
    order: list[str] = []

    async def produce(key: str, values: Any) -> None:
        order.append(f"bodies:{len(values)}")

    async def produce_managers(record: Any) -> None:
        order.append(type(record).__name__)

    async with fake.running(), aiohttp.ClientSession() as session:
        client = VkApiClient(
            VkApiSettings.from_env({}, api_url=fake.url), session, clock=clock, sleep=clock.sleep, draw=lambda: 0.5
        )
        with_token = WindowReader(client, VkToken.of("service", service), VkToken.of("group", group, "community"))
        catchup = CatchUp(lambda g: with_token, produce, clock=lambda: float(NOW), produce_managers=produce_managers)
        await catchup.window(GROUP, NOW - 2 * H, NOW)
        assert order[:2] == ["ManagerChange", "ManagerList"] and order[2].startswith("bodies:")
        order.clear()
        without = WindowReader(client, VkToken.of("service", service), None)
        await CatchUp(lambda g: without, produce, produce_managers=produce_managers).window(GROUP, NOW - 2 * H, NOW)
        assert len(order) == 1 and order[0].startswith("bodies:")
        order.clear()
        fake.deny(GROUP, 15, "groups.getMembers")  # refused: the window is read all the same
        await catchup.window(GROUP, NOW - 2 * H, NOW)
        assert len(order) == 1 and order[0].startswith("bodies:")
    assert fake.violations == []
