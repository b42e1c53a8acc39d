"""A page holding many open items survives SIGKILLs mid-stream (issue 19, finding 10): its state is
saved as pieces, only what changed (docs/data-flow.md, "How state survives"), and a worker killed while
answers to its backlog stream in, then restarted, ends with the same final records and the same open
items as a run without kills.

The page first gets 10,000 comments (all open, the deadline far away); then page replies answer some of
them and authors withdraw others, in chunks, with a kill after two of the chunks while the worker is
busy with them. An answer read after a restart finds its item only if the page's state was recovered.
A chunk changes little of the page, so the page is saved in pieces (a busy batch may save it as one
value: agents/wiring/page_pieces.py, ``PieceTable.one_value``); the test checks that it was.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from otklik.agents.responses.state import BLOCK
from tests.integration.test_responses_live import envelopes
from tests.reliability.conftest import consume, produce_many, run, wait_for
from tests.reliability.test_worker_kills import final_records

pytestmark = pytest.mark.integration

G = 200000901
PAGE = f"vk:{G}"
OPEN = 10_000
ANSWERED = 240
WITHDRAWN = 60
CHUNKS = 3
KILL_AFTER = {1, 2}

REGISTRY = f"""
defaults:
  timezone: Europe/Moscow
  calendar: none
  schedule: {{mon-sun: "00:00-24:00"}}
  deadline: "240h calendar"
pages:
  - id: {PAGE}
    title: Районная администрация
"""


def _body(kind: str, event: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "group_id": G, "event_id": event, "v": "5.199", "object": {"owner_id": -G, **obj}}


def stream(now: int) -> tuple[list[tuple[int, dict[str, Any]]], list[tuple[int, dict[str, Any]]]]:
    """The backlog's comments, then the answers and withdrawals (shuffled: any item of the backlog)."""
    start = now - 3600
    backlog = []
    for n in range(OPEN):
        post = 1 + n // 10
        obj = {"id": n + 1, "from_id": 10_000 + n, "date": start + n // 10, "text": "Когда?", "post_id": post}
        backlog.append((start + n // 10, _body("wall_reply_new", f"c{n}", obj)))
    rng = random.Random(19)
    chosen = rng.sample(range(OPEN), ANSWERED + WITHDRAWN)
    later = []
    t = start + OPEN // 10 + 60
    for k, n in enumerate(chosen):
        post, cid = 1 + n // 10, n + 1
        t += k % 2
        if k < ANSWERED:
            obj = {
                "id": 100_000 + k,
                "from_id": -G,
                "date": t,
                "text": "Ответили в личные сообщения",
                "post_id": post,
                "reply_to_comment": cid,
                "reply_to_user": 10_000 + n,
                "parents_stack": [cid],
            }
            later.append((t, _body("wall_reply_new", f"r{k}", obj)))
        else:
            obj = {"id": cid, "post_id": post, "deleter_id": 10_000 + n, "user_id": 10_000 + n}
            later.append((t, _body("wall_reply_delete", f"d{k}", obj)))
    return backlog, later


def open_items(worker) -> tuple[int, list[str]] | None:  # type: ignore[no-untyped-def]
    """The page's open item count and its 1,000 oldest open items, from the worker's read API."""
    try:
        with urllib.request.urlopen(f"{worker.web}/api/pages/{PAGE}/open-items?limit=1000", timeout=10) as resp:
            answer = json.loads(resp.read())
    except OSError:
        return None
    return answer["open_items"], [i["item"] for i in answer["items"]]


async def read_all(bootstrap: str, topic: str) -> list:
    """Every record of ``topic`` up to its end offsets now."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        consumer._client.add_topic(topic)  # asked for by name: the next update has its partitions
        for _ in range(20):
            await consumer._client.force_metadata_update()
            if consumer.partitions_for_topic(topic):
                break
            await asyncio.sleep(0.5)
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        assert tps, f"{topic} has no partitions"
        ends = await consumer.end_offsets(tps)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        out: list = []
        deadline = time.monotonic() + 60
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]] and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                out.extend(r for r in records if r.offset < ends[TopicPartition(r.topic, r.partition)])
        return out
    finally:
        await consumer.stop()


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    path = tmp_path / "registry.yaml"
    path.write_text(REGISTRY)
    return path


def test_a_page_with_many_open_items_survives_kills(worker_factory, kafka, registry):
    backlog, later = stream(int(time.time()))
    env = dict(OTKLIK_LATE_WINDOW="2", OTKLIK_TICK_INTERVAL="1")
    remaining = OPEN - ANSWERED - WITHDRAWN

    def settled(worker):  # type: ignore[no-untyped-def]
        """Every answer and withdrawal judged: the remaining open items, and their records out."""
        seen = open_items(worker)
        return seen if seen is not None and seen[0] == remaining else None

    # The calm run works through the stream while the other worker starts and is killed (its restarts
    # mostly wait for the group to drop the killed member).
    calm = worker_factory(registry, **env)
    calm.start()
    run(produce_many(kafka, calm.topic("otklik.raw"), envelopes(backlog + later)))

    crashy = worker_factory(registry, **env)
    crashy.start()
    run(produce_many(kafka, crashy.topic("otklik.raw"), envelopes(backlog)))
    wait_for("the backlog held", lambda: (open_items(crashy) or (0,))[0] == OPEN, 60, crashy)
    size = -(-len(later) // CHUNKS)
    for n in range(CHUNKS):
        run(produce_many(kafka, crashy.topic("otklik.raw"), envelopes(later[n * size : (n + 1) * size])))
        if n + 1 in KILL_AFTER:
            time.sleep(0.3)  # mid-stream: the worker is busy with what it was just given
            crashy.stop(kill=True)
            assert crashy.proc is not None and crashy.proc.returncode == -9
            crashy.start()
        else:
            time.sleep(1.5)  # a batch of its own (the agent gathers up to a second of records)
    calm_open = wait_for("the calm run's answers", lambda: settled(calm), 60, calm)
    calm_final = final_records(
        run(consume(kafka, calm.topic("otklik.responses"), expect=ANSWERED + WITHDRAWN, timeout=30))
    )
    assert len(calm_final) == ANSWERED + WITHDRAWN
    assert sum(r["outcome"] == "answered" for r in calm_final.values()) == ANSWERED
    crashy_open = wait_for("the answers after the kills", lambda: settled(crashy), 60, crashy)
    crashy_out = run(consume(kafka, crashy.topic("otklik.responses"), expect=ANSWERED + WITHDRAWN, timeout=30))
    crashy_final = final_records(crashy_out)
    # The page's state reaches its changelog with the worker's next commit: read it until it has.
    deadline = time.monotonic() + 30
    while True:
        changelog = run(read_all(kafka, f"{crashy.env['OTKLIK_APP_ID']}-pages-changelog"))
        pieces = sum(1 for m in changelog if m.key.startswith(PAGE.encode() + b"\x00"))
        if pieces > OPEN // BLOCK or time.monotonic() > deadline:
            break
        time.sleep(0.5)

    differ = [i for i in calm_final.keys() & crashy_final.keys() if calm_final[i] != crashy_final[i]]
    print(
        f"big page: {OPEN} open items, {len(later)} answers and withdrawals, {len(KILL_AFTER)} kills; "
        f"{len(calm_final)} final records against {len(crashy_final)}, {len(differ)} different; "
        f"{len(crashy_out)} records after the kills (repeats are at-least-once); {pieces} piece records"
    )
    assert pieces > OPEN // BLOCK  # the page went in pieces, each block of open items under its own key
    assert crashy_final.keys() == calm_final.keys() and not differ, differ[:5]
    assert crashy_open == calm_open  # the same items still open, oldest first
