"""Photo, video and market comments in a catch-up window (streams/edge/vk_collect_media.py) against the
fake VK API, which checks every request and answer against VK's schema: with a user token they come
back as the bodies the normalizer reads, the same items as VK's callbacks; without one they are skipped
with the reason logged and nothing asked; a part the token may not read is reported, the rest read."""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest

from otklik.agents.ingest.vk import normalize_vk
from otklik.agents.ingest.vk_api_media import media_comment_body
from otklik.streams.edge import vk_collect_media
from otklik.streams.edge.vk_api import VkToken
from otklik.streams.edge.vk_collect import Collected
from otklik.streams.edge.vk_collect_media import MediaWindowReader
from tests.fakes.vk_api import (
    FakeComment,
    FakeCommunity,
    FakeMedia,
    FakeVkApi,
    fake_session,
    scripted_community,
)

GROUP = 4343
START = 1_796_371_200  # 2026-12-04 09:00 MSK
MEDIA_METHODS = ("photos.getAllComments", "video.get", "video.getComments", "market.get", "market.getComments")


def community() -> FakeCommunity:
    """The scripted community with photos, videos (one thread longer than the 10 replies VK embeds, one
    video added long before the window) and market items, their comments over six hours."""
    c = scripted_community(GROUP, seed=3, posts=1, comments=3, topics=1, topic_comments=2, dialogs=1, messages=2)
    rng = random.Random(5)
    ids = iter(range(10_000, 10**9))
    clock = START

    def comments(n: int, replies: int = 0) -> list[FakeComment]:
        nonlocal clock
        out = []
        for _ in range(n):
            clock += rng.randint(30, 300)
            top = FakeComment(next(ids), rng.randint(1, 10**6), clock, "Вопрос")
            for r in range(replies):
                clock += rng.randint(5, 60)
                top.replies.append(FakeComment(next(ids), -GROUP if r == 0 else rng.randint(1, 10**6), clock, "Ответ"))
            out.append(top)
        return out

    c.photos = [FakeMedia(next(ids), START - 86400, comments(40)), FakeMedia(next(ids), START, comments(90))]
    c.videos = [
        FakeMedia(next(ids), START - 3600, comments(12, replies=2)),
        FakeMedia(next(ids), START - 600, comments(3, replies=14)),
        FakeMedia(next(ids), START - 30 * 86400, comments(2)),  # added before the lookback: not read
    ]
    c.market = [FakeMedia(next(ids), START - 86400, comments(5)), FakeMedia(next(ids), START, [])]
    return c


def expected(c: FakeCommunity, since: int, until: int) -> set[tuple[str, str, int, str]]:
    def author(vk_id: int) -> str:
        return f"vk:user:{vk_id}" if vk_id > 0 else f"vk:{-vk_id}"

    page = f"vk:{GROUP}"
    found = set()
    for kind, objects in (("photo", c.photos), ("video", c.videos[:2]), ("market", c.market)):
        for m in objects:
            for top in m.comments:
                root = f"{page}:{kind}:{m.id}:{top.id}"
                for x in [top, *top.replies]:
                    if since <= x.date < until:
                        found.add((f"{page}:{kind}:{m.id}:{x.id}", author(x.from_id), x.date, root))
    return found


def media(collected: Collected) -> set[tuple[str, str, int, str]]:
    out = set()
    for body in collected.bodies:
        for record in normalize_vk(body, received_at=2_000_000_000):
            if record.object_kind in ("photo", "video", "market"):
                assert record.action == "new" and record.author and record.created_at and record.thread_root
                out.add((record.item, record.author, record.created_at, record.thread_root))
    return out


@dataclass
class Setup:
    fake: FakeVkApi
    reader: MediaWindowReader


@asynccontextmanager
async def setup(with_user: bool = True) -> AsyncIterator[Setup]:
    async with fake_session(GROUP, community()) as f:
        reader = MediaWindowReader(
            f.client,
            VkToken.of("service", f.secrets["service"]),
            VkToken.of("group", f.secrets["group"], "community"),
            clock=lambda: START + 7 * 3600,
            user=VkToken.of("user", f.secrets["user"], "user") if with_user else None,
        )
        yield Setup(f.fake, reader)


@pytest.mark.parametrize("window", [(START, START + 7 * 3600), (START + 2 * 3600, START + 3 * 3600)])
async def test_a_user_token_reads_the_windows_photo_video_and_market_comments(window: tuple[int, int]) -> None:
    since, until = window
    want = expected(community(), since, until)
    assert want
    async with setup() as s:
        got = await s.reader.collect(GROUP, since, until)
    assert got.errors == []
    assert media(got) == want
    kinds = {b["type"] for b in got.bodies}
    assert {"wall_reply_new", "board_post_new", "message_new", "message_reply"} & kinds  # WindowReader's too
    assert len({b["event_id"] for b in got.bodies}) == len(got.bodies)  # no body twice
    assert [b["object"].get("date") or b["object"]["message"]["date"] for b in got.bodies] == sorted(
        b["object"].get("date") or b["object"]["message"]["date"] for b in got.bodies
    )


async def test_without_a_user_token_they_are_skipped_with_the_reason_and_nothing_asked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    vk_collect_media._told_no_user = False
    caplog.set_level(logging.INFO, logger="otklik.catchup")
    async with setup(with_user=False) as s:
        got = await s.reader.collect(GROUP, START, START + 7 * 3600)
        await s.reader.collect(GROUP, START, START + 7 * 3600)
        asked = {m: s.fake.calls_of(m) for m in MEDIA_METHODS}
    assert media(got) == set() and got.bodies
    assert asked == dict.fromkeys(MEDIA_METHODS, 0)
    told = [r.getMessage() for r in caplog.records if "user token" in r.getMessage()]
    assert told == [
        "photo, video and market comments are not read: VK gives them to a user token only "
        "(OTKLIK_VK_USER_TOKEN is not set)"
    ]


async def test_a_part_the_token_may_not_read_is_reported_and_the_rest_read() -> None:
    since, until = START, START + 7 * 3600
    async with setup() as s:
        s.fake.deny(GROUP, 15, "market.getComments")
        got = await s.reader.collect(GROUP, since, until)
    assert [e.code for e in got.errors] == [15, 15]  # the two items' comments
    assert media(got) == {x for x in expected(community(), since, until) if ":market:" not in x[0]}


def test_a_body_names_the_object_as_vks_callback_does() -> None:
    comment = {"id": 7, "from_id": 5, "date": 100, "text": "Когда?", "pid": 31, "thread": {"count": 0}}
    body = media_comment_body("photo", 12, 31, comment)
    assert body["type"] == "photo_comment_new" and body["event_id"] == "api:12:photo:31:7"
    assert body["object"] == {
        "id": 7,
        "from_id": 5,
        "date": 100,
        "text": "Когда?",
        "photo_id": 31,
        "photo_owner_id": -12,
    }
    [record] = normalize_vk(media_comment_body("market", 12, 9, {"id": 3, "from_id": 5, "date": 100, "text": "?"}), 200)
    assert (record.item, record.object_kind, record.object_id) == ("vk:12:market:9:3", "market", "vk:12:market:9")
