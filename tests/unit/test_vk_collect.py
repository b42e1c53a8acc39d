"""Reading a window of a community with the VK API (streams/edge/vk_collect.py) against the fake VK API:
the bodies it gives, through the normalizer, are exactly the script's comments and messages in the
window, with their authors, times and threads; faults on the way change nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest

from otklik.agents.ingest.vk import normalize_vk
from otklik.streams.edge.vk_api import VkApiClient, VkAuthError, VkToken
from otklik.streams.edge.vk_collect import Collected, WindowReader
from tests.fakes.vk_api import FakeCommunity, FakeVkApi, fake_session, scripted_community

GROUP = 4242


def community() -> FakeCommunity:
    # More than a page of comments on posts and topics, and threads longer than the 10 replies VK embeds.
    return scripted_community(GROUP, seed=7, posts=3, comments=120, replies=14, topics=3, topic_comments=105, dialogs=8)


def expected(c: FakeCommunity, since: int, until: int) -> set[tuple[str, str, int, str | None]]:
    """(item, author, time, thread root) of every comment and message of the script in the window."""

    def author(vk_id: int) -> str:
        return f"vk:user:{vk_id}" if vk_id > 0 else f"vk:{-vk_id}"

    page = f"vk:{GROUP}"
    found = set()
    for post in c.posts:
        for top in post.comments:
            root = f"{page}:wall:{post.id}:{top.id}"
            for comment in [top, *top.replies]:
                if since <= comment.date < until:
                    found.add((f"{page}:wall:{post.id}:{comment.id}", author(comment.from_id), comment.date, root))
    for topic in c.topics:
        for comment in topic.comments:
            if since <= comment.date < until:
                found.add((f"{page}:board:{topic.id}:{comment.id}", author(comment.from_id), comment.date, None))
    for peer, history in c.dialogs.items():
        for number, message in enumerate(history, start=1):
            if since <= message.date < until:
                who = page if message.out else author(message.from_id)
                found.add((f"{page}:dm:{peer}:{number}", who, message.date, None))
    return found


def interactions(collected: Collected) -> set[tuple[str, str, int, str | None]]:
    out = set()
    for body in collected.bodies:
        for record in normalize_vk(body, received_at=2_000_000_000):
            assert record.action == "new"
            out.add((record.item, record.author, record.created_at, record.thread_root))
    return out


def all_dates(c: FakeCommunity) -> list[int]:
    dates = [x.date for p in c.posts for top in p.comments for x in [top, *top.replies]]
    dates += [x.date for t in c.topics for x in t.comments]
    dates += [m.date for h in c.dialogs.values() for m in h]
    return sorted(dates)


def windows(c: FakeCommunity) -> Iterator[tuple[int, int]]:
    dates = all_dates(c)
    for start, end in ((0.1, 0.4), (0.35, 0.75), (0.7, 0.98), (0.0, 1.0)):
        yield dates[int(start * (len(dates) - 1))], dates[int(end * (len(dates) - 1))] + (end == 1.0)


@dataclass
class Setup:
    fake: FakeVkApi
    reader: WindowReader
    client: VkApiClient


@asynccontextmanager
async def setup(wall_token: str = "service") -> AsyncIterator[Setup]:
    async with fake_session(GROUP, community()) as f:
        reader = WindowReader(
            f.client,
            VkToken.of(wall_token, f.secrets[wall_token]),
            VkToken.of("group", f.secrets["group"], "community"),
        )
        yield Setup(f.fake, reader, f.client)


async def test_a_window_gives_exactly_the_scripts_comments_and_messages_in_it() -> None:
    script = community()
    assert max(len(top.replies) for p in script.posts for top in p.comments) > 10
    async with setup() as s:
        for since, until in windows(script):
            got = await s.reader.collect(GROUP, since, until)
            assert got.errors == []
            want = expected(script, since, until)
            assert want and interactions(got) == want
            assert len(got.bodies) == len(want)  # no body twice


async def test_faults_on_the_way_change_nothing() -> None:
    script = community()
    since, until = list(windows(script))[3]
    async with setup() as clean:
        want = (await clean.reader.collect(GROUP, since, until)).bodies
    async with setup() as s:
        for number in (1, 4, 9, 10, 17):
            s.fake.fail_request(number, (6, 10, 503, 29, 9)[number % 5])
        s.fake.fail_method("messages.getHistory", 6, times=3)
        s.fake.fail_method("wall.getComments", 10, times=2)
        got = await s.reader.collect(GROUP, since, until)
        faults = sum(n for answer, n in s.fake.answers().items() if answer != "ok")
    assert got.bodies == want
    assert faults == 5 + 2  # the five failed requests, and the execute-free wall calls that failed
    assert got.errors == []


async def test_a_user_token_reads_the_same_in_fewer_requests() -> None:
    script = community()
    since, until = list(windows(script))[3]
    async with setup("service") as s:
        by_service = await s.reader.collect(GROUP, since, until)
        service_requests = s.client.requests
        assert s.fake.requests_of("execute") == 1  # the dialogs' histories, with the community token
    async with setup("user") as s:
        by_user = await s.reader.collect(GROUP, since, until)
        assert s.fake.requests_of("execute") > 1
        assert s.client.requests < service_requests
    assert by_user.bodies == by_service.bodies


async def test_comments_closed_on_the_wall_leave_the_board_and_dialogs_read() -> None:
    script = community()
    since, until = list(windows(script))[3]
    async with setup() as s:
        s.fake.deny(GROUP, 212, "wall.getComments")
        got = await s.reader.collect(GROUP, since, until)
    assert got.errors and {e.code for e in got.errors} == {212}
    kinds = {item.split(":")[2] for item, *_ in interactions(got)}
    assert kinds == {"board", "dm"}


async def test_a_revoked_token_stops_the_collection() -> None:
    async with setup() as s:
        s.fake.revoke(s.reader.service.value.get_secret_value())
        with pytest.raises(VkAuthError):
            await s.reader.collect(GROUP, 0, 2_000_000_000)


async def test_without_a_community_token_no_dialogs_are_read() -> None:
    script = community()
    since, until = list(windows(script))[3]
    async with setup() as s:
        s.reader.community = None
        got = await s.reader.collect(GROUP, since, until)
        assert s.fake.calls_of("messages.getHistory") == 0
    assert {item.split(":")[2] for item, *_ in interactions(got)} == {"wall", "board"}


def test_a_deleted_comment_kept_for_its_thread_is_read_and_skipped() -> None:
    """VK answers a deleted comment that has replies as a placeholder without author, time or text
    (its schema requires none): the answer parses, the placeholder gives no body, its replies do."""
    from otklik.streams.edge.vk_api import WallComments

    answer = WallComments.model_validate(
        {
            "count": 1,
            "items": [
                {
                    "id": 10,
                    "deleted": True,
                    "thread": {"count": 1, "items": [{"id": 11, "from_id": 5, "date": 1_700_000_100, "text": "да"}]},
                }
            ],
        }
    )
    out = Collected()
    placeholder = answer.items[0]
    WindowReader._wall_comment(GROUP, 1, placeholder, 1_700_000_000, 1_700_001_000, out)
    assert out.bodies == []
    assert placeholder.thread is not None
    WindowReader._wall_comment(GROUP, 1, placeholder.thread.items[0], 1_700_000_000, 1_700_001_000, out)
    assert [body["object"]["id"] for body in out.bodies] == [11]
