"""Catch-up after a gap, end to end: the real worker on the real broker, the catch-up service reading
``otklik.gaps`` and a fake VK API (docs/data-flow.md, "Gaps and catch-up";
docs/responses.md, "Late history: catch-up after a gap").

A day of wall comments with threads, board posts and direct messages on several pages goes to one
worker whole (the calm day) and to another with every callback of an hour in the middle lost. In the
hour, comments are deleted (some written before it, some in it) and a new manager on some pages
answers. The gap first shows as false breaches (answers given in the hour are missing, deleted comments
stay open); then a gap record per page goes to ``otklik.gaps``, the catch-up reads the hour from the
fake VK API, rate-limit errors and a 5xx on the way, and each item's final record equals the calm
day's (its version aside: an item reported overdue while the gap hid its answer has one record more),
but for what the API cannot tell: a comment deleted in the hour closes as deleted by someone unnamed at
the gap's start (docs/responses.md, "A comment the API no longer returns"), and one written and
deleted in it was never seen. The manager's answers count as the page's
(docs/responses.md, "Managers after a gap"). The store's items, fed each run's final records, differ
in the same way and no other."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from otklik.agents.ingest.vk_api_bodies import API_VERSION, board_post_body, message_body, wall_reply_body
from otklik.schemas.managers import ManagerChange, encode_manager_record
from otklik.schemas.records import Gap, RawEnvelope
from otklik.streams.edge.catchup import GROUP_ID, CatchUp, produce_gap, serve
from otklik.streams.edge.vk_api import VkApiClient, VkToken
from otklik.streams.edge.vk_collect import WindowReader
from otklik.streams.settings import VkApiSettings
from tests.conftest import produce, run
from tests.fakes.vk_api import FakeComment, FakeCommunity, FakeMessage, FakePost, FakeTopic, FakeVkApi, KnownToken
from tests.integration.test_managers_live import wait_for_log

pytestmark = pytest.mark.integration

PAGES = 50
FIRST_GROUP = 200001700
SERVICE = "vk1.a.service-catchup-test"
MARGIN = 60  # the catch-up reads from this long before a gap (CatchUp.margin_s)
MANAGER = 777_000  # + the page's number: the new manager of every tenth page

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


@dataclass
class Hidden:
    """What the hour holds beyond the communities' comments: callbacks of comments since deleted (the
    fake VK API no longer has them), their deletions and the new managers' roles."""

    events: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    deleted_before: set[str] = field(default_factory=set)  # items written before the gap, deleted in it
    deleted_inside: set[str] = field(default_factory=set)  # items written and deleted in the gap
    managed: set[str] = field(default_factory=set)  # pages with a new manager from the gap on


def hide(communities: list[FakeCommunity], gap_since: int) -> Hidden:
    """Into the hour from ``gap_since``: on each page a comment deleted in it, written 20 or 10
    minutes before it (deleted by its author or by the page, in time) or in it (by its author); on every
    tenth page a new manager from 15 minutes in, answering a question in the thread."""
    out = Hidden()
    ids = iter(range(10**9, 2 * 10**9))  # above the day's own
    minute = 60
    for n, c in enumerate(communities):
        g, post = c.group_id, c.posts[0]
        author = 100_000 + n
        created, deleted, deleter, kept = {
            0: (gap_since - 20 * minute, gap_since + 5 * minute, author, out.deleted_before),
            1: (gap_since - 10 * minute, gap_since + 10 * minute, -g, out.deleted_before),
            2: (gap_since + 10 * minute, gap_since + 25 * minute, author, out.deleted_inside),
        }[n % 3]
        cid = next(ids)
        body = wall_reply_body(g, post.id, {"id": cid, "from_id": author, "date": created, "text": "Уберите"})
        gone = {"owner_id": -g, "id": cid, "post_id": post.id, "deleter_id": deleter}
        out.events += [
            (created, {**body, "event_id": f"cbwall-{post.id}-{cid}"}),
            (
                deleted,
                {
                    "type": "wall_reply_delete",
                    "group_id": g,
                    "event_id": f"cbdel-{cid}",
                    "v": API_VERSION,
                    "object": gone,
                },
            ),
        ]
        kept.add(f"vk:{g}:wall:{post.id}:{cid}")
        if n % 10 == 0:
            manager = MANAGER + n
            c.managers[manager] = "editor"
            role = {"admin_id": 1, "user_id": manager, "level_old": 0, "level_new": 2}
            out.events.append(
                (
                    gap_since + 15 * minute,
                    {
                        "type": "group_officers_edit",
                        "group_id": g,
                        "event_id": f"cbrole-{g}",
                        "v": API_VERSION,
                        "object": role,
                    },
                )
            )
            question = FakeComment(next(ids), 200_000 + n, gap_since + 20 * minute, "Где расписание?")
            question.replies.append(FakeComment(next(ids), manager, gap_since + 30 * minute, "На сайте"))
            post.comments.append(question)
            out.managed.add(f"vk:{g}")
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


async def latest(bootstrap: str, topic: str, done: Any, timeout: float, quiet: float = 0) -> dict[str, dict[str, Any]]:
    """Each item's record of the highest version on ``topic``, read until ``done(records)`` holds with no
    new record for ``quiet`` seconds (a record settling after the late window comes within them), or
    the time is up."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    records: dict[str, dict[str, Any]] = {}
    try:
        deadline = time.monotonic() + timeout
        last_new = time.monotonic()
        while time.monotonic() < deadline and not (done(records) and time.monotonic() - last_new >= quiet):
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                for message in batch:
                    last_new = time.monotonic()
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


async def processed(bootstrap: str, worker: Any, timeout: float) -> None:
    """Until the worker has processed and committed everything on otklik.raw and otklik.interactions:
    then only the records that settle after the late window are still to come (on a busy machine a
    worker may pause longer than any quiet time between two of its records)."""
    group = worker.env["OTKLIK_APP_ID"]  # faust's consumer group is the app's id
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [await uncommitted(bootstrap, worker.topic(t), group) for t in ("otklik.raw", "otklik.interactions")]
        if left == [0, 0]:
            return
        await asyncio.sleep(0.5)
    pytest.fail(f"the worker has not processed its input: {left} records left")


def final(records: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item: {k: v for k, v in rec.items() if k != "version"} for item, rec in records.items()}


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    path = tmp_path / "registry.yaml"
    path.write_text(REGISTRY + "".join(f"  - id: vk:{FIRST_GROUP + n}\n" for n in range(PAGES)))
    return path


def store_items(path: Path, registry: Path, records: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The store's ``items`` rows (by item) after its writer took ``records``, each item's latest record
    of otklik.responses, as ``otklik store`` takes them from the topic."""
    from sqlalchemy import select

    from otklik.agents.registry import load_registry
    from otklik.streams.store.db import migrate, open_engine
    from otklik.streams.store.schema import items
    from otklik.streams.store.writer import Incoming, StoreWriter

    engine = open_engine(f"sqlite:///{path}")
    try:
        migrate(engine)
        writer = StoreWriter(engine, load_registry(registry).page, 90 * 86400)
        applied = writer.apply([Incoming("responses", orjson.dumps(rec)) for rec in records.values()])
        assert applied.rejected == []
        columns = [c for c in items.c if c.name not in ("updated_at", "version")]
        with engine.connect() as connection:
            return {row.item: dict(row._mapping) for row in connection.execute(select(*columns))}
    finally:
        engine.dispose()


def deleted_unseen(calm: dict[str, Any], gap_since: int) -> dict[str, Any]:
    """A comment written before the gap and deleted in it, as the catch-up's listing closes it: deleted
    by someone unnamed at the earliest moment the deletion can have gone unseen, the window's start
    (docs/responses.md, "A comment the API no longer returns"). The pages work around the clock."""
    closed = gap_since - MARGIN
    assert calm["created_at"] < closed
    latency = closed - calm["created_at"]
    return calm | {
        "outcome": "moderated",
        "closed_at": closed,
        "latency_s": latency,
        "business_latency_s": latency,
        "breached": latency > 30 * 60,
        "responder": None,
        "extra": {"deleted_by": None, "review": True},
    }


def test_a_lost_hour_caught_up_gives_the_calm_days_records(worker_factory, kafka, registry, tmp_path):
    now = int(time.time())
    communities = day(now)
    gap_since, gap_until = now - 2 * 3600, now - 3600
    hidden = hide(communities, gap_since)
    events = sorted([*(e for c in communities for e in callbacks(c)), *hidden.events], key=lambda e: e[0])
    lost = [e for e in events if gap_since <= e[0] < gap_until]
    delivered = [e for e in events if not gap_since <= e[0] < gap_until]
    assert lost and delivered
    env = dict(OTKLIK_LATE_WINDOW="2", OTKLIK_TICK_INTERVAL="1")
    # Every citizen's comment and message has its record (the rest are the page's replies, its
    # managers' among them).
    citizens = (
        {
            f"vk:{c.group_id}:{kind}"
            for c in communities
            for kind in (
                [
                    f"wall:{p.id}:{x.id}"
                    for p in c.posts
                    for top in p.comments
                    for x in [top, *top.replies]
                    if x.from_id > 0 and x.from_id not in c.managers
                ]
                + [f"board:{t.id}:{x.id}" for t in c.topics for x in t.comments if x.from_id > 0]
                + [f"dm:{peer}:{i}" for peer, h in c.dialogs.items() for i, m in enumerate(h, 1) if not m.out]
            )
        }
        | hidden.deleted_before
        | hidden.deleted_inside
    )

    calm = worker_factory(registry, **env)
    calm.start()
    # The roles first, as they came: the worker applies them on their own topic (docs/responses.md,
    # "Page replies"), so the managers' replies wait until it has.
    role_at = min(t for t, b in events if b["type"] == "group_officers_edit")
    run(produce(kafka, calm.topic("otklik.raw"), envelopes([e for e in events if e[0] <= role_at])))
    for page in sorted(hidden.managed):
        wait_for_log(calm, f"managers of {page}: 1 role(s) changed")
    run(produce(kafka, calm.topic("otklik.raw"), envelopes([e for e in events if e[0] > role_at])))
    run(processed(kafka, calm, 90))
    calm_records = run(latest(kafka, calm.topic("otklik.responses"), lambda r: set(r) >= citizens, 90, quiet=5))
    assert set(calm_records) == citizens
    answered = {i for i, r in calm_records.items() if r["outcome"] == "answered"}
    assert answered and not any(calm_records[i]["breached"] for i in answered)
    hidden_answers = {i for i in answered if gap_since <= calm_records[i]["closed_at"] < gap_until}
    assert hidden_answers, "some answers fall in the lost hour"
    new_managers = {f"vk:user:{m}" for c in communities for m in c.managers}
    by_managers = {i for i in answered if calm_records[i]["responder"] in new_managers}
    assert len(by_managers) == len(hidden.managed)
    deletions = {i: calm_records[i] for i in hidden.deleted_before | hidden.deleted_inside}
    assert {r["outcome"] for r in deletions.values()} == {"withdrawn", "moderated"}
    assert not any(r["breached"] for r in deletions.values())  # each deleted within its deadline

    gapped = worker_factory(registry, **env)
    gapped.start()
    run(produce(kafka, gapped.topic("otklik.raw"), envelopes(delivered)))
    # Without catch-up the gap blames the page: answers given in it are missing, and comments deleted
    # in it are still open.
    seen_before = {i for i, r in calm_records.items() if not gap_since <= r["created_at"] < gap_until}
    false_breaches = {i for i in hidden_answers | hidden.deleted_before if i in seen_before}
    assert false_breaches >= hidden.deleted_before
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

        async def to_managers(record: Any) -> None:
            value = encode_manager_record(record)
            await producer.send_and_wait(gapped.topic("otklik.managers"), value, key=record.page.encode())
            if isinstance(record, ManagerChange) and record.page in hidden.managed:
                # As for the calm day: the role applied before the replies come.
                await asyncio.to_thread(wait_for_log, gapped, f"managers of {record.page}: 1 role(s) changed")

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

                catchup = Counting(
                    lambda g: WindowReader(client, service, community_tokens[g]),
                    to_raw,
                    margin_s=MARGIN,
                    produce_managers=to_managers,
                )
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

    # The calm day's records, but for what the API cannot tell: when and by whom a comment was deleted
    # in the gap (closed at the gap's start, by someone unnamed), and a comment written and deleted in
    # it (never seen).
    want = final(calm_records)
    for i in hidden.deleted_inside:
        del want[i]
    for i in hidden.deleted_before:
        want[i] = deleted_unseen(want[i], gap_since)
    after = run(latest(kafka, gapped.topic("otklik.responses"), lambda r: final(r) == want, 90))
    print(  # the figures of the run, for the record (pytest -s)
        f"{len(communities)} pages, {len(events)} callbacks, {len(lost)} lost, {len(citizens)} items, "
        f"{len(hidden_answers)} answers hidden, {len(hidden.deleted_before) + len(hidden.deleted_inside)} "
        f"comments deleted in the gap ({len(hidden.deleted_before)} written before it), "
        f"{len(hidden.managed)} new managers; false breaches: {len(false_breaches)} before catch-up, "
        f"{sum(1 for i, r in after.items() if r['breached'] and not calm_records[i]['breached'])} after; "
        f"VK API: {len(fake.log)} requests, {sum(n for a, n in fake.answers().items() if a != 'ok')} faults"
    )
    got = final(after)
    wrong = {i: (got.get(i), want.get(i)) for i in got.keys() | want.keys() if got.get(i) != want.get(i)}
    assert not wrong, f"{len(wrong)} items differ (got, want), e.g. {sorted(wrong.items())[:3]}"
    # The items reported overdue while the gap hid their answers or deletions: closed, one version later.
    assert all(after[i]["outcome"] != "open" and after[i]["version"] == 2 for i in false_breaches)

    # The store, fed each run's records, holds the same items with the same differences.
    calm_store = store_items(tmp_path / "calm.sqlite3", registry, calm_records)
    after_store = store_items(tmp_path / "after.sqlite3", registry, after)
    assert set(after_store) == set(calm_store) - hidden.deleted_inside
    for i, row in after_store.items():
        if i in hidden.deleted_before:
            assert (row["outcome"], row["closed_at"], row["breached"], row["review"]) == (
                "moderated",
                gap_since - MARGIN,
                False,
                True,
            )
        else:
            assert row == calm_store[i], i
