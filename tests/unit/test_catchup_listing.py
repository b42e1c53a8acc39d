"""A comment the API no longer returns (docs/responses.md, "A comment the API no longer returns"): the
catch-up's listing of an object's comments, its body and record (agents/ingest/vk_listing.py), the
rules of which open items it closes and when (agents/responses/listing.py), the engine applying them,
and the reader writing a listing only for an object it read whole (streams/edge/vk_collect.py)."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import orjson
import pytest

from otklik.agents.ingest.envelope import RejectedRecord, listing_problem, to_interactions
from otklik.agents.ingest.vk import NormalizeError
from otklik.agents.ingest.vk_listing import LISTING_TYPE, listing_body, listing_of
from otklik.agents.responses.listing import deleted_at, unlisted
from otklik.schemas.records import LISTING_MARK, Interaction, Listing, RawEnvelope
from otklik.streams.edge.catchup import CatchUp
from otklik.streams.edge.vk_api import VkApiClient, VkToken
from otklik.streams.edge.vk_collect import Collected, WindowReader
from otklik.streams.settings import VkApiSettings
from tests.fakes.vk_api import FakeClock, FakeComment, FakeCommunity, FakePost, FakeTopic, FakeVkApi, KnownToken
from tests.unit.test_responses import VK, G, Run, at, item, registry

H = 3600
T = at("2026-12-04T10:00")
OBJECT = f"vk:{G}:wall:88"


def listing(
    *,
    ids: tuple[int, ...] = (),
    since: int = 0,
    until: int = T + 2 * H,
    unseen_from: int = T + 600,
    received_at: int = T + 2 * H + 60,
    post: int = 88,
    group: int = G,
    kind: str = "wall",
) -> Listing:
    return listing_of(listing_body(group, kind, post, since, until, unseen_from, ids), received_at, "vk-api")


def run(pages: list[dict[str, Any]] | None = None) -> Run:
    return Run(registry(pages, schedule={"mon-sun": "00:00-24:00"}, calendar="none", deadline="30m calendar"))


def apply(r: Run, ls: Listing) -> Run:
    r.last = max(r.last, ls.received_at)
    r.records.extend(r.engine.listing(ls))
    return r


# ---- the pure rules ---------------------------------------------------------------------------------


def test_unlisted_closes_only_a_missing_item_of_the_object_created_in_the_window_and_not_restored_at_its_end():
    since, until = 1000, 2000
    ls = listing(since=since, until=until, unseen_from=900, received_at=2100, ids=(5, 6))
    objects = (OBJECT, f"vk:{G}:wall:89", f"vk:{G + 1}:wall:88", f"vk:{G}:board:88")
    created = (since - 1, since, 1500, until, until + 1)
    seqs = (5, 7)
    lives = (0, since - 5, until - 1, until, until + 1)
    checked = 0
    for object_id, made, seq, life in itertools.product(objects, created, seqs, lives):
        want = object_id == OBJECT and since <= made <= until and seq == 7 and life < until
        assert unlisted(ls, set(ls.ids), object_id, seq, made, life) is want, (object_id, made, seq, life)
        checked += want
    assert checked == 3 * 3  # three times in the window, three lives before its end


@pytest.mark.parametrize(
    ("created", "unseen_from", "lives", "want"),
    [
        (100, 500, (), 500),  # written before the gap: deleted no earlier than the gap's start
        (700, 500, (), 700),  # written in the gap (seen by callback): not before its creation
        (100, 500, (800,), 801),  # a restoration we did receive: after it
        (100, 500, (300, 200), 500),  # older deletion and restoration: the gap's start decides
        (100, 5000, (), 3000),  # never after the listing's receipt
    ],
)
def test_an_unseen_deletion_takes_effect_at_the_earliest_moment_it_can_have_gone_unseen(
    created: int, unseen_from: int, lives: tuple[int, ...], want: int
) -> None:
    ls = Listing(
        platform="vk",
        page=f"vk:{G}",
        object_kind="wall",
        object_id=OBJECT,
        received_at=3000,
        since=0,
        until=2900,
        unseen_from=unseen_from,
        ids=[],
    )
    assert deleted_at(ls, created, lives) == want


# ---- the body and its record ------------------------------------------------------------------------


def test_a_listing_body_becomes_its_record_only_from_the_catch_up() -> None:
    body = listing_body(G, "board", 5, 0, T, T - H, [3, 1, 3])
    envelope = RawEnvelope("vk", "vk-api", T + 60.5, body)
    [record] = to_interactions(envelope, {})
    assert record == Listing(
        platform="vk",
        page=f"vk:{G}",
        object_kind="board",
        object_id=f"vk:{G}:board:5",
        received_at=T + 60,
        event_id=body["event_id"],
        since=0,
        until=T,
        unseen_from=T - H,
        ids=[1, 3],
    )
    assert listing_problem(record) is None
    value = record.to_json()
    assert LISTING_MARK in value and Listing.from_json(value) == record
    for source in ("vk-callback", "vk-longpoll", "simulator"):
        with pytest.raises(RejectedRecord, match="only the catch-up"):
            to_interactions(RawEnvelope("vk", source, T + 60, body), {})


def test_an_interaction_never_reads_as_a_listing() -> None:
    ia = Interaction(
        "vk", f"vk:{G}", "new", "wall", OBJECT, f"{OBJECT}:1", 1, T, None, T, "vk:user:5", text='"action":"listing"'
    )
    assert LISTING_MARK not in ia.to_json()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"kind": "dm"}, "object.kind"),
        ({"object_id": 0}, "positive object_id"),
        ({"since": 10, "until": 5}, "since <= until"),
        ({"until": T + 10 * H}, "later than the listing's receipt"),
        ({"unseen_from": T + 10 * H}, "later than the listing's receipt"),
        ({"ids": [1, "2"]}, "object.ids"),
        ({"ids": [0]}, "object.ids"),
        ({"ids": "1,2"}, "object.ids"),
        ({"since": None}, "object.since: missing"),
    ],
)
def test_a_listing_body_that_is_not_exact_is_rejected(change: dict[str, Any], reason: str) -> None:
    body = listing_body(G, "wall", 88, 0, T, T - H, [1])
    body["object"].update(change)
    with pytest.raises(NormalizeError, match=reason):
        listing_of(body, T + H, "vk-api")
    with pytest.raises(NormalizeError, match="group_id"):
        listing_of({**listing_body(G, "wall", 88, 0, T, T - H, [1]), "group_id": -G}, T + H, "vk-api")
    assert listing_body(G, "wall", 88, 0, T, T - H, [1])["type"] == LISTING_TYPE


# ---- the engine -------------------------------------------------------------------------------------


def test_a_comment_deleted_in_a_gap_closes_moderated_at_the_gaps_start_and_is_not_breached() -> None:
    vk = VK()
    r = run().send(vk.comment(1, 5001, T))
    # Callbacks stop at T + 10 min; the stream time passes the deadline: reported overdue.
    assert [(x.outcome, x.breached) for x in r.tick(T + H)] == [("open", True)]
    apply(r, listing(ids=(), unseen_from=T + 600))
    final = r.final()[item(1)]
    assert (final.outcome, final.closed_at, final.latency_s, final.breached) == ("moderated", T + 600, 600, False)
    assert final.extra == {"deleted_by": None, "review": True} and final.version == 2


def test_a_deletion_that_can_have_gone_unseen_only_after_the_deadline_is_a_breach() -> None:
    vk = VK()
    r = run().send(vk.comment(1, 5001, T))
    apply(r, listing(ids=(), unseen_from=T + H))
    final = r.final()[item(1)]
    assert (final.outcome, final.closed_at, final.breached) == ("moderated", T + H, True)


def test_a_listed_item_stays_open_and_only_the_missing_one_closes() -> None:
    vk = VK()
    r = run().send(vk.comment(1, 5001, T)).send(vk.comment(2, 5002, T + 60))
    apply(r, listing(ids=(2, 99)))
    final = r.final()
    assert final[item(1)].outcome == "moderated"
    assert final[item(2)].outcome == "open"


def test_a_listing_closes_nothing_on_another_post_or_another_page() -> None:
    other = G + 1
    r = run([{"id": f"vk:{G}"}, {"id": f"vk:{other}"}])
    r.send(VK().comment(1, 5001, T)).send(VK(other).comment(1, 5001, T))
    apply(r, listing(post=89))  # the same page, another post
    apply(r, listing(group=other, post=89))  # another page
    apply(r, listing(kind="board"))  # a board topic with the post's number
    final = r.final()
    assert final[item(1)].outcome == "open"
    assert final[item(1, group=other)].outcome == "open"
    apply(r, listing(group=other))  # that page's post 88: its item only
    final = r.final()
    assert (final[item(1)].outcome, final[item(1, group=other)].outcome) == ("open", "moderated")


def test_a_listing_closes_nothing_created_outside_its_window() -> None:
    vk = VK()
    r = run().send(vk.comment(1, 5001, T)).send(vk.comment(2, 5002, T + 2 * H + 30, post=88))
    apply(r, listing(since=T + 1, until=T + 2 * H, received_at=T + 2 * H + 60))
    final = r.final()
    assert final[item(1)].outcome == "open" and final[item(2)].outcome == "open"


def test_an_answered_item_stays_answered_whatever_the_listing_says() -> None:
    vk = VK()
    r = run().send(vk.comment(1, 5001, T)).send(vk.comment(2, 5002, T + 10))
    # The catch-up's bodies come first: the page's answer to the first comment, given in the gap.
    r.send(vk.comment(3, -G, T + 1200, parents=(1,), to_comment=1, to_user=5001), received_at=T + 2 * H)
    apply(r, listing(ids=(3,), unseen_from=T + 600))  # both comments gone now
    final = r.final()
    assert (final[item(1)].outcome, final[item(1)].closed_at) == ("answered", T + 1200)
    assert (final[item(2)].outcome, final[item(2)].closed_at) == ("moderated", T + 600)


def test_an_item_closed_by_its_own_deletion_keeps_its_record() -> None:
    vk = VK()
    r = run().send(vk.comment(1, 5001, T)).send(vk.delete(1, 5001), received_at=T + 300)
    apply(r, listing(ids=()))
    final = r.final()[item(1)]
    assert (final.outcome, final.closed_at, final.version) == ("withdrawn", T + 300, 1)
    assert [x.item for x in r.records] == [item(1)]


def test_a_restoration_at_the_listings_end_is_not_undone_and_one_before_is() -> None:
    vk = VK()
    r = run().send(vk.comment(1, 5001, T)).send(vk.comment(2, 5002, T))
    for cid in (1, 2):
        r.send(vk.delete(cid, -G), received_at=T + 60)
    r.send(vk.restore(1, 5001, T), received_at=T + 2 * H)  # at the listing's end: perhaps after the read
    r.send(vk.restore(2, 5002, T), received_at=T + H)
    apply(r, listing(until=T + 2 * H, unseen_from=T + 600, received_at=T + 2 * H + 60))
    final = r.final()
    assert final[item(1)].outcome == "open"
    assert (final[item(2)].outcome, final[item(2)].closed_at) == ("moderated", T + H + 1)


def test_the_same_listing_twice_is_one() -> None:
    vk = VK()
    r = run().send(vk.comment(1, 5001, T))
    apply(r, listing())
    r.send(vk.restore(1, 5001, T), received_at=T + 2 * H + 90)  # restored after the listing
    apply(r, listing())  # redelivered: ignored, the item stays restored
    assert r.final()[item(1)].outcome == "open"


# ---- the reader: a listing only for what it read whole -------------------------------------------------

GROUP = 4343
NOW = 1_796_400_000


def script() -> FakeCommunity:
    """Post 1: a few comments with threads (one of 12 replies: read by its own call); post 2: 101
    comments (a second page); post 3: none; a topic with a few comments, and one of 101."""
    c = FakeCommunity(GROUP, "Листинги")
    ids = itertools.count(1)
    t = NOW - 3 * H
    small = FakePost(next(ids), t, "малый")
    for k in range(4):
        top = FakeComment(next(ids), 5000 + k, NOW - H + 60 * k, "вопрос")
        replies = range(12 if k == 0 else 2)
        top.replies = [FakeComment(next(ids), -GROUP, NOW - H + 60 * k + r + 1, "ответ") for r in replies]
        small.comments.append(top)
    big = FakePost(next(ids), t, "большой")
    big.comments = [FakeComment(next(ids), 6000 + k, t + k, "вопрос") for k in range(101)]
    empty = FakePost(next(ids), t, "пустой")
    c.posts = [small, big, empty]
    few = FakeTopic(next(ids), "Вопросы", t, 1)
    few.comments = [FakeComment(next(ids), 7000 + k, NOW - H + 60 * k, "вопрос") for k in range(3)]
    many = FakeTopic(next(ids), "Длинная", t, 1)
    many.comments = [FakeComment(next(ids), 8000 + k, NOW - H + k, "вопрос") for k in range(101)]
    c.topics = [few, many]
    return c


@asynccontextmanager
async def reader(c: FakeCommunity) -> AsyncIterator[tuple[FakeVkApi, WindowReader]]:
    clock = FakeClock()
    secret = f"vk1.a.service-{uuid.uuid4().hex}"
    fake = FakeVkApi({GROUP: c}, {secret: KnownToken("service")}, clock=clock)
    async with fake.running(), aiohttp.ClientSession() as session:
        client = VkApiClient(
            VkApiSettings.from_env({}, api_url=fake.url), session, clock=clock, sleep=clock.sleep, draw=lambda: 0.5
        )
        yield fake, WindowReader(client, VkToken.of("service", secret), None, clock=lambda: float(NOW))
    assert fake.violations == []


def listed(collected: Collected) -> dict[str, Listing]:
    out = {}
    for body in collected.listings:
        ls = listing_of(body, NOW, "vk-api")
        out[ls.object_id] = ls
    return out


async def test_the_reader_lists_exactly_the_objects_it_read_whole() -> None:
    c = script()
    small, _, empty = c.posts
    few, _ = c.topics
    async with reader(c) as (_, r):
        got = await r.collect(GROUP, NOW - 2 * H, NOW)
    page = f"vk:{GROUP}"
    lists = listed(got)
    assert set(lists) == {f"{page}:wall:{small.id}", f"{page}:wall:{empty.id}", f"{page}:board:{few.id}"}
    want_small = sorted(x.id for top in small.comments for x in [top, *top.replies])
    assert lists[f"{page}:wall:{small.id}"].ids == want_small
    assert lists[f"{page}:wall:{empty.id}"].ids == []
    assert lists[f"{page}:board:{few.id}"].ids == [x.id for x in few.comments]
    for ls in lists.values():
        assert (ls.since, ls.until, ls.unseen_from) == (0, NOW - 60, NOW - 2 * H)


async def test_a_deleted_comment_is_missing_from_the_listing_and_a_long_thread_gives_none() -> None:
    c = script()
    small = c.posts[0]
    gone = small.comments[1].replies.pop()
    small.comments[0].replies += [FakeComment(10_000 + k, 5000, NOW - H, "ещё") for k in range(100)]
    async with reader(c) as (_, r):
        got = await r.collect(GROUP, NOW - 2 * H, NOW)
    assert f"vk:{GROUP}:wall:{small.id}" not in listed(got)  # a thread of 112 replies: two answers
    small.comments[0].replies = small.comments[0].replies[:12]
    async with reader(c) as (_, r):
        ids = listed(await r.collect(GROUP, NOW - 2 * H, NOW))[f"vk:{GROUP}:wall:{small.id}"].ids
    assert gone.id not in ids and small.comments[1].id in ids


async def test_an_object_the_token_may_not_read_gives_no_listing() -> None:
    c = script()
    async with reader(c) as (fake, r):
        fake.deny(GROUP, 212, "wall.getComments")
        got = await r.collect(GROUP, NOW - 2 * H, NOW)
    assert got.errors
    assert {ls.object_kind for ls in listed(got).values()} == {"wall", "board"}
    assert {ls.object_id for ls in listed(got).values() if ls.object_kind == "wall"} == {
        f"vk:{GROUP}:wall:{c.posts[2].id}"  # only the post VK says has no comments
    }


async def test_a_failed_read_produces_nothing_and_a_catch_up_puts_listings_after_the_bodies() -> None:
    c = script()
    produced: list[list[bytes]] = []

    async def produce(key: str, values: Any) -> None:
        produced.append(list(values))

    async with reader(c) as (fake, r):
        fake.fail_method("wall.getComments", 100)  # not an access error: the window fails whole
        catchup = CatchUp(lambda g: r, produce, clock=lambda: float(NOW))
        with pytest.raises(Exception, match="100"):
            await catchup.window(GROUP, NOW - 2 * H, NOW)
        assert produced == []
        await catchup.window(GROUP, NOW - 2 * H, NOW)
    [values] = produced
    types = [orjson.loads(v)["body"]["type"] for v in values]
    first_listing = types.index(LISTING_TYPE)
    assert first_listing > 0 and set(types[first_listing:]) == {LISTING_TYPE}


def test_the_store_passes_over_a_listing_and_takes_its_closure_from_the_responses(tmp_path: Any) -> None:
    from otklik.streams.store.db import migrate, open_engine
    from otklik.streams.store.writer import Incoming, StoreWriter

    engine = open_engine(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    migrate(engine)
    try:
        writer = StoreWriter(engine, registry().page, 90 * 86400, clock=lambda: float(T + 3 * H))
        applied = writer.apply([Incoming("interactions", listing().to_json())])
        assert applied.rejected == [] and applied.items == 0
    finally:
        engine.dispose()


# ---- the moderation watch ---------------------------------------------------------------------------


def test_an_offensive_text_missing_from_a_listing_was_removed_unseen_and_nothing_else_was() -> None:
    from otklik.agents.moderation_watch import ModerationWatch
    from otklik.agents.text.moderation import default_detector
    from tests.unit.test_moderation_watch import PAGE as MOD_PAGE
    from tests.unit.test_moderation_watch import REGISTRY as MOD_REGISTRY
    from tests.unit.test_moderation_watch import T0, comment

    watch = ModerationWatch(MOD_REGISTRY.page, default_detector())
    rude = "Вы там совсем охуели, третий день без воды"
    for cid in (1, 2):
        assert [r.kind for r in watch.process(comment(cid, rude, at=T0 + cid))] == ["labelled"]
    group = int(MOD_PAGE.split(":")[1])
    body = listing_body(group, "wall", 1, 0, T0 + 2 * H, T0 + 600, [2])
    assert (
        watch.listing(listing_of(listing_body(group, "wall", 2, 0, T0 + 2 * H, T0 + 600, []), T0 + 3 * H, "vk-api"))
        == []
    )
    [removed] = watch.listing(listing_of(body, T0 + 3 * H, "vk-api"))
    assert (removed.item, removed.kind, removed.deleted_by) == (f"{MOD_PAGE}:wall:1:1", "removed", "other")
    assert (removed.at, removed.visible_s, removed.extra) == (T0 + 600, 599, {"how": "unseen"})
    assert f"{MOD_PAGE}:wall:1:2" in watch.pages[MOD_PAGE]  # listed: still visible
    assert watch.process(comment(1, rude, at=T0 + 1)) == []  # a redelivery of a text removed


def test_a_replay_of_the_raw_topic_applies_the_catch_ups_listing_as_the_worker_does() -> None:
    from otklik.agents.replay import iso, run_replay
    from otklik.agents.replay_jobs import replay_lines

    vk = VK()
    reg = registry(schedule={"mon-sun": "00:00-24:00"}, calendar="none", deadline="30m calendar")

    def line(source: str, received_at: int, body: dict[str, Any]) -> bytes:
        return RawEnvelope("vk", source, float(received_at), body).to_json()

    lines = [
        line("vk-callback", T, vk.comment(1, 5001, T)),
        line("vk-callback", T + 60, vk.comment(2, 5002, T + 60)),
        line("vk-api", T + 2 * H, listing_body(G, "wall", 88, 0, T + H, T + 600, [2])),
    ]
    rows = {row["item"]: row for row in run_replay(lines, reg, now=T + 3 * H, triage=None)}
    parallel = [orjson.loads(x) for x in replay_lines(lines, reg, now=T + 3 * H, jobs=2, triage=None)]
    assert {row["item"]: row for row in parallel} == rows
    assert (rows[item(1)]["outcome"], rows[item(1)]["closed_at"]) == ("moderated", iso(T + 600))
    assert rows[item(2)]["outcome"] == "open"
    errors: list[tuple[int, str]] = []
    run_replay(
        [lines[0], line("vk-callback", T + 2 * H, listing_body(G, "wall", 88, 0, T + H, T, []))],
        reg,
        on_error=lambda n, r: errors.append((n, r)),
    )
    assert len(errors) == 1 and "only the catch-up" in errors[0][1]
