"""The VK API client against the fake VK API (tests/fakes/vk_api.py) on loopback: every request checked
against VK's methods.json, every answer against responses.json. Time is a fake clock shared by the
client (its token buckets and backoff pauses) and the fake (its rate limits): nothing sleeps for real."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from otklik.streams.edge.vk_api import (
    Call,
    VkAccessError,
    VkApiClient,
    VkApiError,
    VkAuthError,
    VkRetriesExhausted,
    VkToken,
    history_params,
)
from otklik.streams.settings import VkApiSettings
from tests.fakes.vk_api import FakeClock, FakeComment, FakeVkApi, KnownToken, scripted_community

GROUP = 101
OTHER = 202


@dataclass
class World:
    fake: FakeVkApi
    client: VkApiClient
    clock: FakeClock
    service: VkToken
    community: VkToken
    other_community: VkToken
    user: VkToken
    secrets: list[str]


def make_tokens() -> dict[str, str]:
    # Distinctive values, so the test that greps for them cannot miss one.
    return {kind: f"vk1.a.{kind}-{uuid.uuid4().hex}" for kind in ("service", "group", "other", "user")}


def make_fake(secrets: dict[str, str], clock: FakeClock) -> FakeVkApi:
    communities = {
        GROUP: scripted_community(GROUP, posts=3, comments=12, dialogs=30, messages=4),
        OTHER: scripted_community(OTHER, seed=1),
    }
    # A post with more comments than one page holds, one of them with a long thread.
    long_post = communities[GROUP].posts[0]
    next_id = 50_000
    for n in range(230):
        long_post.comments.append(FakeComment(next_id + n, 7000 + n, 1_796_400_000 + n, f"comment {n}"))
    long_post.comments[0].replies.extend(
        FakeComment(60_000 + n, 8000 + n, 1_796_500_000 + n, f"reply {n}") for n in range(25)
    )
    tokens = {
        secrets["service"]: KnownToken("service"),
        secrets["group"]: KnownToken("group", GROUP),
        secrets["other"]: KnownToken("group", OTHER),
        secrets["user"]: KnownToken("user"),
    }
    return FakeVkApi(communities, tokens, clock=clock)


@pytest.fixture
async def world() -> AsyncIterator[World]:
    clock = FakeClock()
    secrets = make_tokens()
    fake = make_fake(secrets, clock)
    async with fake.running():
        settings = VkApiSettings.from_env({}, api_url=fake.url, vk_api_backoff=0.5, vk_api_max_backoff=8.0)
        async with aiohttp.ClientSession() as session:
            client = VkApiClient(settings, session, clock=clock, sleep=clock.sleep, draw=lambda: 0.5)
            yield World(
                fake,
                client,
                clock,
                VkToken.of("service", secrets["service"], "service"),
                VkToken.of("group", secrets["group"], f"community {GROUP}"),
                VkToken.of("group", secrets["other"], f"community {OTHER}"),
                VkToken.of("user", secrets["user"], "user"),
                list(secrets.values()),
            )
    assert fake.violations == [], "the fake VK API saw requests or answers against VK's schema"


async def everything(w: World) -> dict[str, Any]:
    """One call of each method, as plain data (to compare runs)."""
    c, g = w.client, w.fake.communities[GROUP]
    post = g.posts[1]
    conversations = await c.messages_get_conversations(w.community, GROUP, count=5)
    return {
        "wall": (await c.wall_get(w.service, GROUP)).model_dump(),
        "comments": (await c.wall_get_comments(w.service, GROUP, post.id)).model_dump(),
        "topics": (await c.board_get_topics(w.service, GROUP)).model_dump(),
        "board": (await c.board_get_comments(w.service, GROUP, g.topics[0].id)).model_dump(),
        "conversations": conversations.model_dump(),
        "history": (
            await c.messages_get_history(w.community, GROUP, conversations.items[0].conversation.peer.id)
        ).model_dump(),
        "managers": (await c.groups_get_managers(w.community, GROUP)).model_dump(),
        "addresses": (await c.groups_get_addresses(w.service, GROUP)).model_dump(),
        "groups": (await c.groups_get_by_id(w.service, [GROUP, OTHER])).model_dump(),
    }


# ---- the methods --------------------------------------------------------------------------------------


async def test_every_method_answers_typed_and_as_the_script_says(world: World) -> None:
    got = await everything(world)
    g = world.fake.communities[GROUP]
    assert [p["id"] for p in got["wall"]["items"]] == [p.id for p in sorted(g.posts, key=lambda p: -p.date)]
    post = g.posts[1]
    assert [c["id"] for c in got["comments"]["items"]] == [c.id for c in post.comments]
    assert [r["id"] for r in got["comments"]["items"][0]["thread"]["items"]] == [r.id for r in post.comments[0].replies]
    assert {t["id"] for t in got["topics"]["items"]} == {t.id for t in g.topics}
    assert [c["from_id"] for c in got["board"]["items"]] == [c.from_id for c in g.topics[0].comments]
    assert got["conversations"]["count"] == len(g.dialogs)
    assert got["history"]["items"][0]["peer_id"] in g.dialogs
    assert {(m["id"], m["role"]) for m in got["managers"]["items"]} == set(g.managers.items())
    assert got["addresses"]["items"][0]["timetable"]["mon"]["open_time"] == 540
    assert [x["id"] for x in got["groups"]["groups"]] == [GROUP, OTHER]
    assert world.client.requests == len(world.fake.log) == len(got)


async def test_the_client_keeps_to_vks_rates_so_the_fake_never_says_too_many(world: World) -> None:
    # 30 requests with the service token at its 3/s, as fast as the client will go.
    for _ in range(30):
        await world.client.wall_get(world.service, GROUP, count=1)
    assert world.fake.answers() == {"ok": 30}
    assert world.clock.now - 1000.0 >= 29 / 3 - 1e-6  # the client waited out its bucket, in fake time


async def test_two_objects_of_one_token_share_its_bucket(world: World) -> None:
    twin = VkToken.of("service", world.service.value, "the same token again")
    for n in range(12):
        await world.client.wall_get(world.service if n % 2 else twin, GROUP, count=1)
    assert world.fake.answers() == {"ok": 12}
    assert world.clock.now - 1000.0 >= 11 / 3 - 1e-6


# ---- paging -------------------------------------------------------------------------------------------


async def test_offset_paging_reads_every_comment_once(world: World) -> None:
    post = world.fake.communities[GROUP].posts[0]

    async def page(offset: int) -> Any:
        return await world.client.wall_get_comments(world.service, GROUP, post.id, offset=offset, count=100)

    got = [c.id async for c in world.client.pages(page)]
    assert got == sorted(c.id for c in post.comments)
    assert len(got) == 242 and world.fake.requests_of("wall.getComments") == 3


async def test_paging_by_start_comment_id_and_a_long_thread_by_comment_id(world: World) -> None:
    post = world.fake.communities[GROUP].posts[0]
    top = post.comments[0]
    first = await world.client.wall_get_comments(world.service, GROUP, post.id, count=100)
    assert first.items[0].thread is not None
    assert first.items[0].thread.count == len(top.replies) > 10  # a thread longer than 10 comes cut
    assert len(first.items[0].thread.items) == 10
    # The next page starts at the comment after the last one read.
    second = await world.client.wall_get_comments(
        world.service, GROUP, post.id, start_comment_id=first.items[-1].id + 1, count=100
    )
    assert second.items[0].id == sorted(c.id for c in post.comments)[100]
    replies: list[int] = []
    while len(replies) < len(top.replies):
        page = await world.client.wall_get_comments(
            world.service, GROUP, post.id, comment_id=top.id, offset=len(replies), count=10
        )
        assert page.items, "the thread ended early"
        replies += [r.id for r in page.items]
        assert all(r.parents_stack == [top.id] for r in page.items)
    assert replies == [r.id for r in top.replies]


# ---- execute batches ----------------------------------------------------------------------------------


def history_calls(w: World) -> list[Call]:
    return [Call("messages.getHistory", history_params(GROUP, peer)) for peer in w.fake.communities[GROUP].dialogs]


async def test_a_community_tokens_calls_go_in_executes_of_25_with_the_same_answers(world: World) -> None:
    calls = history_calls(world)
    assert len(calls) == 30
    batched = await world.client.batch(calls, world.community, GROUP)
    assert world.fake.requests_of("execute") == 2 and world.fake.calls_of("messages.getHistory") == 30
    assert world.fake.requests_of("messages.getHistory") == 0
    one_by_one = [await world.client.call(c.method, world.community, c.params, group=GROUP) for c in calls]
    assert [r.model_dump() for r in batched] == [r.model_dump() for r in one_by_one]


async def test_a_service_tokens_calls_go_one_by_one(world: World) -> None:
    posts = world.fake.communities[GROUP].posts
    calls = [Call("wall.getComments", {"owner_id": -GROUP, "post_id": p.id, "count": 100}) for p in posts]
    results = await world.client.batch(calls, world.service, GROUP)
    assert world.fake.requests_of("execute") == 0 and world.fake.requests_of("wall.getComments") == len(posts)
    assert [r.count for r in results] == [len(p.comments) for p in posts]
    # A user token may execute them: one request.
    again = await world.client.batch(calls, world.user, GROUP)
    assert world.fake.requests_of("execute") == 1
    assert [r.model_dump() for r in again] == [r.model_dump() for r in results]


async def test_in_a_batch_one_calls_access_error_leaves_the_others_answered(world: World) -> None:
    calls = [
        Call("groups.getMembers", {"group_id": GROUP, "filter": "managers"}),
        Call("groups.getById", {"group_ids": [OTHER]}),
        Call("messages.getHistory", history_params(GROUP, next(iter(world.fake.communities[GROUP].dialogs)))),
    ]
    world.fake.fail_method("groups.getMembers", 15)
    results = await world.client.batch(calls, world.community, GROUP)
    assert isinstance(results[0], VkAccessError) and results[0].code == 15
    assert "groups.getMembers" in str(results[0]) and str(GROUP) in str(results[0])
    assert results[1].groups[0].id == OTHER and results[2].count == 4
    assert world.fake.requests_of("execute") == 1


# ---- retries ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", [6, 9, 10, 29, 500, 502, 503])
async def test_a_retryable_failure_changes_nothing_in_the_answers(fault: int) -> None:
    answers = []
    for inject in (False, True):
        clock, secrets = FakeClock(), make_tokens()
        fake = make_fake(secrets, clock)
        async with fake.running(), aiohttp.ClientSession() as session:
            client = VkApiClient(
                VkApiSettings.from_env({}, api_url=fake.url), session, clock=clock, sleep=clock.sleep, draw=lambda: 0.0
            )
            w = World(
                fake,
                client,
                clock,
                VkToken.of("service", secrets["service"]),
                VkToken.of("group", secrets["group"]),
                VkToken.of("group", secrets["other"]),
                VkToken.of("user", secrets["user"]),
                [],
            )
            if inject:
                for number in (2, 5, 6):  # two in a row at 5 and 6: the same call fails twice
                    fake.fail_request(number, fault)
            answers.append(await everything(w))
            seen = fake.answers()
        assert fake.violations == []
        if inject:
            kind = f"http {fault}" if fault >= 500 else f"error {fault}"
            assert seen[kind] == 3 and seen["ok"] == len(answers[0])
            assert client.requests == len(answers[0]) + 3
            assert sorted(p for p in clock.pauses if p in (0.25, 0.5)) == [0.25, 0.25, 0.5]  # backoff 0.5·2ⁿ⁻¹/2
    assert answers[0] == answers[1]


async def test_inner_calls_that_hit_rate_limits_are_retried_in_a_later_execute(world: World) -> None:
    clean = await world.client.batch(history_calls(world), world.community, GROUP)
    world.fake.fail_method("messages.getHistory", 6, times=3)
    world.fake.fail_method("messages.getHistory", 10, times=1)
    retried = await world.client.batch(history_calls(world), world.community, GROUP)
    assert [r.model_dump() for r in retried] == [r.model_dump() for r in clean]
    assert world.fake.requests_of("execute") == 2 + 3  # clean: 25 + 5; retried: 25 + 5, then the 4 again


async def test_a_client_faster_than_vk_gets_error_6_and_still_the_same_answers(world: World) -> None:
    expected = [(await world.client.wall_get(world.service, GROUP, count=1)).model_dump() for _ in range(3)]
    before = len(world.fake.log)
    hasty = VkApiClient(
        VkApiSettings.from_env({}, api_url=world.fake.url, vk_api_service_rate=50.0, vk_api_backoff=0.2),
        world.client.session,
        clock=world.clock,
        sleep=world.clock.sleep,
        draw=lambda: 0.5,
    )
    got = [(await hasty.wall_get(world.service, GROUP, count=1)).model_dump() for _ in range(12)]
    assert got == expected[:1] * 12
    refused = sum(1 for entry in world.fake.log[before:] if entry.answer == "error 6")
    assert refused > 0 and hasty.requests == 12 + refused


async def test_retries_are_bounded_and_then_say_what_failed(world: World) -> None:
    world.fake.fail_method("wall.get", 10, times=100)
    client = VkApiClient(
        VkApiSettings.from_env(
            {}, api_url=world.fake.url, vk_api_attempts=4, vk_api_backoff=1.0, vk_api_max_backoff=3.0
        ),
        world.client.session,
        clock=world.clock,
        sleep=world.clock.sleep,
        draw=lambda: 0.999,
    )
    with pytest.raises(VkRetriesExhausted) as caught:
        await client.wall_get(world.service, GROUP)
    assert caught.value.code == 10 and caught.value.method == "wall.get" and caught.value.group_id == GROUP
    assert "4 tries" in str(caught.value)
    assert world.fake.calls_of("wall.get") == 4
    backoff = [p for p in world.clock.pauses if p > 0.9]
    assert len(backoff) == 3 and backoff[0] < backoff[1] < 2.0 <= backoff[2] < 3.0  # doubling, then the cap


async def test_a_lost_connection_is_retried_then_reported_without_the_token(world: World) -> None:
    dead = VkApiClient(
        VkApiSettings.from_env({}, api_url="http://127.0.0.1:9/method", vk_api_attempts=2),
        world.client.session,
        clock=world.clock,
        sleep=world.clock.sleep,
    )
    with pytest.raises(VkRetriesExhausted) as caught:
        await dead.wall_get(world.service, GROUP)
    assert caught.value.code == 0 and "connection failed" in str(caught.value)
    assert dead.requests == 2
    assert all(secret not in str(caught.value) for secret in world.secrets)


# ---- clear errors -------------------------------------------------------------------------------------


async def test_a_revoked_token_is_an_auth_error_at_once(world: World) -> None:
    world.fake.revoke(world.service.value.get_secret_value())
    with pytest.raises(VkAuthError) as caught:
        await world.client.board_get_topics(world.service, GROUP)
    assert caught.value.code == 5
    assert str(caught.value).startswith(f"VK API board.getTopics for group {GROUP}: error 5")
    assert world.fake.calls_of("board.getTopics") == 1


@pytest.mark.parametrize(
    "code, method, call",
    [
        (15, "groups.getAddresses", lambda w: w.client.groups_get_addresses(w.service, GROUP)),
        (203, "board.getComments", lambda w: w.client.board_get_comments(w.service, GROUP, 1)),
        (212, "wall.getComments", lambda w: w.client.wall_get_comments(w.service, GROUP, 1)),
    ],
)
async def test_access_errors_name_the_method_and_the_group(world: World, code: int, method: str, call: Any) -> None:
    world.fake.deny(GROUP, code, method)
    with pytest.raises(VkAccessError) as caught:
        await call(world)
    assert (caught.value.code, caught.value.method, caught.value.group_id) == (code, method, GROUP)
    assert f"VK API {method} for group {GROUP}: error {code}" in str(caught.value)
    assert world.fake.calls_of(method) == 1  # not retried


async def test_a_community_token_cannot_read_another_community(world: World) -> None:
    with pytest.raises(VkAccessError):
        await world.client.groups_get_managers(world.other_community, GROUP)


async def test_managers_need_more_than_a_service_token(world: World) -> None:
    with pytest.raises(VkAccessError) as caught:
        await world.client.groups_get_managers(world.service, GROUP)
    assert caught.value.code == 15


# ---- tokens never show --------------------------------------------------------------------------------


async def test_no_token_appears_in_logs_errors_or_reprs(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    world.fake.fail_request(1, 6)
    world.fake.fail_request(3, 503)
    world.fake.fail_method("messages.getHistory", 10, times=2)
    texts.append(repr(await everything(world)))
    texts.append(repr(await world.client.batch(history_calls(world), world.community, GROUP)))
    world.fake.deny(GROUP, 212, "wall.getComments")
    world.fake.revoke(world.user.value.get_secret_value())
    failing = [
        world.client.wall_get_comments(world.service, GROUP, 1),
        world.client.wall_get(world.user, GROUP),
        world.client.groups_get_managers(world.other_community, GROUP),
        VkApiClient(
            VkApiSettings.from_env({}, api_url="http://127.0.0.1:9/method", vk_api_attempts=2),
            world.client.session,
            clock=world.clock,
            sleep=world.clock.sleep,
        ).wall_get(world.service, GROUP),
    ]
    for attempt in failing:
        with pytest.raises(VkApiError) as caught:
            await attempt
        texts += [str(caught.value), repr(caught.value), repr(caught.value.args)]
    settings = VkApiSettings.from_env({"OTKLIK_VK_SERVICE_TOKEN": world.secrets[0]})
    texts += [repr(settings), str(settings), repr(world.client), repr(world.service), str(world.community)]
    texts += [record.getMessage() for record in caplog.records]
    texts += [caplog.text]
    assert any("retry" in record.getMessage() for record in caplog.records)  # the run did log its failures
    everything_said = "\n".join(texts)
    for secret in world.secrets:
        assert secret not in everything_said
        assert secret.split("-", 1)[1] not in everything_said  # not even the random part


# ---- the fake is strict -------------------------------------------------------------------------------


async def raw(w: World, method: str, form: dict[str, str], token: str | None = None) -> dict[str, Any]:
    data = {"v": "5.199", **form}
    if token is not None:
        data["access_token"] = token
    assert w.client.session is not None
    async with w.client.session.post(f"{w.fake.url}/{method}", data=data) as resp:
        return await resp.json(content_type=None)


@pytest.mark.parametrize(
    "method, form, problem",
    [
        ("wall.get", {"domain": "club101", "owner_id": "-101"}, "unknown parameter 'owner_id'"),
        ("board.getComments", {"group_id": "101"}, "topic_id is required"),
        ("board.getComments", {"group_id": "101", "topic_id": "1", "count": "101"}, "above the maximum 100"),
        ("wall.getComments", {"owner_id": "-101", "post_id": "1", "thread_items_count": "11"}, "above the maximum"),
        ("wall.getComments", {"owner_id": "-101", "post_id": "1", "sort": "new"}, "not one of"),
        ("groups.getAddresses", {"group_id": "0"}, "below the minimum 1"),
        ("groups.getAddresses", {"group_id": "101", "fields": "title,colour"}, "item 'colour'"),
        ("wall.get", {"domain": "club101", "extended": "yes"}, "not a boolean"),
        ("execute", {"code": "return API.wall.get({});"}, "not a script otklik writes"),
    ],
)
async def test_the_fake_refuses_what_vks_schema_refuses(world: World, method: str, form: dict, problem: str) -> None:
    token = world.user.value.get_secret_value()
    body = await raw(world, method, form, token)
    assert body["error"]["error_code"] in (100, 12)
    assert len(world.fake.violations) == 1 and problem in world.fake.violations[0]
    world.fake.violations.clear()


async def test_the_fake_checks_token_types_and_versions(world: World) -> None:
    body = await raw(world, "wall.get", {"domain": "club101"}, world.community.value.get_secret_value())
    assert body["error"]["error_code"] == 27
    body = await raw(world, "execute", {"code": 'return {"r0":API.groups.getById({"group_id":101})};'}, "nonsense")
    assert body["error"]["error_code"] == 5
    body = await raw(world, "groups.getById", {"group_id": "101", "v": "5.131"}, world.service.value.get_secret_value())
    assert body["error"]["error_code"] == 100
    assert len(world.fake.violations) == 2  # the wrong token type and the wrong version; a bad token is VK's 5
    world.fake.violations.clear()


async def test_the_fake_validates_its_answers_against_responses_json(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.fakes import vk_api as fake_module

    original = fake_module._message

    def without_version(peer: int, m: Any, history: Any) -> dict[str, Any]:
        message = original(peer, m, history)
        del message["version"]  # required by messages_base_message
        return message

    monkeypatch.setattr(fake_module, "_message", without_version)
    peer = next(iter(world.fake.communities[GROUP].dialogs))
    with pytest.raises(VkApiError) as caught:
        await world.client.messages_get_history(world.community, GROUP, peer)
    assert caught.value.code == 400
    assert world.fake.violations and "'version' is a required property" in world.fake.violations[0]
    world.fake.violations.clear()


async def test_the_fake_limits_execute_to_25_calls(world: World) -> None:
    calls = ",".join(f'"r{n}":API.groups.getById({{"group_id":101}})' for n in range(26))
    body = await raw(world, "execute", {"code": "return {" + calls + "};"}, world.community.value.get_secret_value())
    assert body["error"]["error_code"] == 13
    world.fake.violations.clear()
