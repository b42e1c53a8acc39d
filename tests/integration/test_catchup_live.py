"""Catch-up after a gap, end to end: the real worker on the real broker, the catch-up service reading
``otklik.gaps`` and a fake VK API (docs/data-flow.md, "Gaps and catch-up";
docs/responses.md, "Late history: catch-up after a gap").

A day of wall comments with threads, board posts and direct messages on several pages goes to one
worker whole (the calm day) and to another with every callback of an hour in the middle lost. The gap
first shows as false breaches (answers given in the hour are missing); then a gap record per page goes
to ``otklik.gaps``, the catch-up reads the hour from the fake VK API, rate-limit errors and a 5xx on the
way, and each item's final record equals the calm day's (its version aside: an item reported overdue
while the gap hid its answer has one record more)."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from otklik.agents.ingest.vk_api_bodies import board_post_body, message_body, wall_reply_body
from otklik.schemas.records import Gap, RawEnvelope
from otklik.streams.edge.catchup import GROUP_ID, CatchUp, produce_gap, serve
from otklik.streams.edge.vk_api import VkApiClient, VkToken
from otklik.streams.edge.vk_collect import WindowReader
from otklik.streams.settings import VkApiSettings
from tests.conftest import produce, run
from tests.fakes.vk_api import FakeComment, FakeCommunity, FakeMessage, FakePost, FakeTopic, FakeVkApi, KnownToken

pytestmark = pytest.mark.integration

PAGES = 50
FIRST_GROUP = 200001700
SERVICE = "vk1.a.service-catchup-test"

REGISTRY = """
defaults:
  timezone: Europe/Moscow
  calendar: none
  schedule: {mon-sun: "00:00-24:00"}
  deadline: "30m calendar"
  bot_replies_count: true
pages:
"""


def day(now: int, seed: int = 17) -> list[FakeCommunity]:
    """Each page: a post whose comments are answered in their thread, or not, or only by another
    citizen; a board topic the page answers; two dialogs the page answers. All over the last three
    hours, and all past their deadline by now."""
    rnd = random.Random(seed)
    ids = iter(range(1, 10**9))
    out = []
    for n in range(PAGES):
        group = FIRST_GROUP + n
        c = FakeCommunity(group, f"Страница {n}")
        post = FakePost(next(ids), now - 4 * 3600, "Пост")
        for _ in range(8):
            t = rnd.randint(now - 3 * 3600, now - 50 * 60)
            top = FakeComment(next(ids), rnd.randint(10_000, 99_999), t, "Когда починят фонарь?")
            fate = rnd.random()
            if fate < 0.6:
                top.replies.append(FakeComment(next(ids), -group, t + rnd.randint(60, 1500), "Починим в среду"))
            elif fate < 0.8:
                top.replies.append(FakeComment(next(ids), rnd.randint(10_000, 99_999), t + 300, "Тоже жду"))
            post.comments.append(top)
        c.posts.append(post)
        topic = FakeTopic(next(ids), "Вопросы", now - 5 * 3600, 1)
        t = rnd.randint(now - 3 * 3600, now - 50 * 60)
        for k in range(3):
            topic.comments.append(FakeComment(next(ids), rnd.randint(10_000, 99_999), t + 60 * k, "Вопрос"))
        topic.comments.append(FakeComment(next(ids), -group, t + 60 * 3 + rnd.randint(60, 1200), "Ответ"))
        c.topics.append(topic)
        for _ in range(2):
            peer = rnd.randint(10_000, 99_999)
            t = rnd.randint(now - 3 * 3600, now - 50 * 60)
            c.dialogs[peer] = [
                FakeMessage(next(ids), peer, t, "Здравствуйте", False),
                FakeMessage(next(ids), peer, t + 30, "Вопрос", False),
                FakeMessage(next(ids), -group, t + 30 + rnd.randint(60, 1500), "Ответ", True),
            ]
        out.append(c)
    return out


def callbacks(c: FakeCommunity) -> list[tuple[int, dict[str, Any]]]:
    """(date, body) of every event the community's callbacks delivered, with the callbacks' own event ids."""
    g = c.group_id
    bodies = []
    for post in c.posts:
        for top in post.comments:
            bodies.append(wall_reply_body(g, post.id, _plain(top)))
            for reply in top.replies:
                bodies.append(wall_reply_body(g, post.id, {**_plain(reply), "reply_to_comment": top.id} | _stack(top)))
    for topic in c.topics:
        bodies += [board_post_body(g, topic.id, _plain(x)) for x in topic.comments]
    for peer, history in c.dialogs.items():
        for number, m in enumerate(history, start=1):
            obj = {"id": m.id, "date": m.date, "peer_id": peer, "from_id": m.from_id, "text": m.text}
            bodies.append(message_body(g, obj | {"out": int(m.out), "conversation_message_id": number}))
    out = []
    for body in bodies:
        body["event_id"] = "cb" + body["event_id"].split(":", 2)[2].replace(":", "-")
        obj = body["object"]
        out.append((obj["message"]["date"] if "message" in obj else obj["date"], body))
    return out


def _plain(c: FakeComment) -> dict[str, Any]:
    return {"id": c.id, "from_id": c.from_id, "date": c.date, "text": c.text}


def _stack(top: FakeComment) -> dict[str, Any]:
    return {"parents_stack": [top.id]}


def envelopes(events: list[tuple[int, dict[str, Any]]]) -> list[tuple[bytes, bytes]]:
    return [
        (f"vk:{b['group_id']}".encode(), RawEnvelope("vk", "vk-callback", float(t), b).to_json()) for t, b in events
    ]


async def latest(bootstrap: str, topic: str, done: Any, timeout: float) -> dict[str, dict[str, Any]]:
    """Each item's record of the highest version on ``topic``, read until ``done(records)`` or the time is up."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    records: dict[str, dict[str, Any]] = {}
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not done(records):
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                for message in batch:
                    rec = orjson.loads(message.value)
                    if rec["item"] not in records or records[rec["item"]]["version"] < rec["version"]:
                        records[rec["item"]] = rec
    finally:
        await consumer.stop()
    return records


async def uncommitted(bootstrap: str, topic: str, group: str) -> int:
    """Records of ``topic`` past the offsets ``group`` committed."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()  # as read_topic does (tests/integration/test_gateway.py)
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        assert tps
        ends = await consumer.end_offsets(tps)
        left = 0
        for tp in tps:
            left += ends[tp] - (await consumer.committed(tp) or 0)
        return left
    finally:
        await consumer.stop()


def final(records: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item: {k: v for k, v in rec.items() if k != "version"} for item, rec in records.items()}


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    path = tmp_path / "registry.yaml"
    path.write_text(REGISTRY + "".join(f"  - id: vk:{FIRST_GROUP + n}\n" for n in range(PAGES)))
    return path


def test_a_lost_hour_caught_up_gives_the_calm_days_records(worker_factory, kafka, registry):
    now = int(time.time())
    communities = day(now)
    events = sorted((e for c in communities for e in callbacks(c)), key=lambda e: e[0])
    gap_since, gap_until = now - 2 * 3600, now - 3600
    lost = [e for e in events if gap_since <= e[0] < gap_until]
    delivered = [e for e in events if not gap_since <= e[0] < gap_until]
    assert lost and delivered
    env = dict(OTKLIK_LATE_WINDOW="2", OTKLIK_TICK_INTERVAL="1")

    calm = worker_factory(registry, **env)
    calm.start()
    run(produce(kafka, calm.topic("otklik.raw"), envelopes(events)))
    items = {b["event_id"] for _, b in events}  # a bound only: page replies are no items
    calm_records = run(latest(kafka, calm.topic("otklik.responses"), lambda r: len(r) >= len(items), 60))
    # Every citizen's comment and message has its record (the rest are the page's replies).
    citizens = {
        f"vk:{c.group_id}:{kind}"
        for c in communities
        for kind in (
            [f"wall:{p.id}:{x.id}" for p in c.posts for top in p.comments for x in [top, *top.replies] if x.from_id > 0]
            + [f"board:{t.id}:{x.id}" for t in c.topics for x in t.comments if x.from_id > 0]
            + [f"dm:{peer}:{i}" for peer, h in c.dialogs.items() for i, m in enumerate(h, 1) if not m.out]
        )
    }
    assert set(calm_records) == citizens
    answered = {i for i, r in calm_records.items() if r["outcome"] == "answered"}
    assert answered and not any(calm_records[i]["breached"] for i in answered)
    hidden = {i for i in answered if gap_since <= calm_records[i]["closed_at"] < gap_until}
    assert hidden, "some answers fall in the lost hour"

    gapped = worker_factory(registry, **env)
    gapped.start()
    run(produce(kafka, gapped.topic("otklik.raw"), envelopes(delivered)))
    # Without catch-up the gap blames the page: answers given in it are missing.
    seen_before = {i for i, r in calm_records.items() if not gap_since <= r["created_at"] < gap_until}
    false_breaches = {i for i in hidden if i in seen_before}
    assert false_breaches
    before = run(
        latest(
            kafka,
            gapped.topic("otklik.responses"),
            lambda r: all(i in r and r[i]["outcome"] == "open" for i in false_breaches),
            60,
        )
    )
    assert all(before[i]["outcome"] == "open" and before[i]["breached"] for i in false_breaches)

    tokens = {SERVICE: KnownToken("service")}
    community_tokens = {}
    for c in communities:
        secret = f"vk1.a.community-{c.group_id}"
        tokens[secret] = KnownToken("group", c.group_id)
        community_tokens[c.group_id] = VkToken.of("group", secret, f"community {c.group_id}")
    rates = {"user": 20.0, "service": 20.0, "group": 20.0}
    fake = FakeVkApi({c.group_id: c for c in communities}, tokens, rates=rates)
    # Faults in the middle of the catch-up: rate limits (6, 29), VK's internal error and a 502.
    fake.fail_request(5, 6)
    fake.fail_request(9, 502)
    fake.fail_request(14, 10)
    fake.fail_method("board.getComments", 29, times=2)

    async def catch_up() -> int:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all", enable_idempotence=True)
        await producer.start()
        raw = gapped.topic("otklik.raw")

        async def to_raw(key: str, values: Any) -> None:
            await asyncio.gather(*[await producer.send(raw, v, key=key.encode()) for v in values])

        stop = asyncio.Event()
        try:
            async with fake.running(), aiohttp.ClientSession() as session:
                settings = VkApiSettings.from_env(
                    {}, api_url=fake.url, vk_api_service_rate=20, vk_api_group_rate=20, vk_api_backoff=0.05
                )
                client = VkApiClient(settings, session)
                service = VkToken.of("service", SERVICE, "service")

                class Counting(CatchUp):
                    done = 0

                    async def gap(self, gap: Gap) -> int:
                        n = await super().gap(gap)
                        Counting.done += 1
                        if Counting.done == len(communities):
                            stop.set()
                        return n

                catchup = Counting(lambda g: WindowReader(client, service, community_tokens[g]), to_raw)
                for c in communities:
                    await produce_gap(
                        kafka,
                        gapped.topic("otklik.gaps"),
                        Gap(f"vk:{c.group_id}", gap_since, gap_until, "test", "test"),
                    )
                group = gapped.topic("") + GROUP_ID
                done = await asyncio.wait_for(serve(catchup, kafka, gapped.topic("otklik.gaps"), group, stop), 120)
                assert await uncommitted(kafka, gapped.topic("otklik.gaps"), group) == 0
                return done
        finally:
            await producer.stop()

    assert run(catch_up()) == len(communities)
    assert fake.violations == []
    faults = {answer for answer in fake.answers() if answer != "ok"}
    assert {"error 6", "http 502", "error 10"} <= faults, fake.answers()

    print(  # the figures of the run, for the record (pytest -s)
        f"{len(communities)} pages, {len(events)} callbacks, {len(lost)} lost, {len(citizens)} items, "
        f"{len(hidden)} answers hidden, {len(false_breaches)} false breaches; VK API: {len(fake.log)} requests, "
        f"{sum(n for a, n in fake.answers().items() if a != 'ok')} faults"
    )
    want = final(calm_records)
    after = run(latest(kafka, gapped.topic("otklik.responses"), lambda r: final(r) == want, 90))
    assert final(after) == want
    # The items reported overdue while the gap hid their answers: answered, one version later.
    assert all(after[i]["outcome"] == "answered" and after[i]["version"] == 2 for i in false_breaches)
