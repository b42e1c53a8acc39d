"""The response engine inside the real worker on the real broker, including a SIGKILL mid-stream."""

from __future__ import annotations

import random
import time
from pathlib import Path

import orjson
import pytest

from otklik.schemas.records import RawEnvelope
from tests.conftest import consume, produce, run

pytestmark = pytest.mark.integration

GROUPS = (200000101, 200000102, 200000103)
ADMIN = 7001

REGISTRY = """
defaults:
  timezone: Europe/Moscow
  calendar: none
  schedule: {mon-sun: "00:00-24:00"}  # around the clock: the tests pass at any hour of any day
  deadline: "30m calendar"
pages:
  - id: vk:200000101
    title: Школа № 1
    administrators: ["vk:user:7001"]
  - id: vk:200000102
    title: Библиотека
    deadline: "30m working"
  - id: vk:200000103
    title: Поликлиника
"""


def body(kind: str, group: int, event: str, obj: dict) -> dict:
    return {"type": kind, "group_id": group, "event_id": event, "v": "5.199", "object": obj}


def scenario(now: int, seed: int = 7) -> tuple[list[tuple[int, dict]], dict[str, str]]:
    """A mixed stream with outcomes that do not depend on when the worker's timer fires:
    answers come well within the deadline, and the unanswered items are already long overdue."""
    rnd = random.Random(seed)
    events: list[tuple[int, dict]] = []
    expected: dict[str, str] = {}
    n = 0
    for group in GROUPS:
        for post in range(1, 6):
            for k in range(8):
                n += 1
                cid = post * 100 + k
                item = f"vk:{group}:wall:{post}:{cid}"
                fate = rnd.choice(["answered", "answered", "admin", "overdue", "withdrawn", "moderated"])
                created = now - (7200 if fate == "overdue" else 600) + k
                events.append(
                    (
                        created,
                        body(
                            "wall_reply_new",
                            group,
                            f"n{n}",
                            {
                                "id": cid,
                                "from_id": 9000 + n,
                                "date": created,
                                "text": "Когда уберут снег во дворе?",
                                "post_id": post,
                                "owner_id": -group,
                            },
                        ),
                    )
                )
                if fate in ("answered", "admin"):
                    author = -group if fate == "answered" else ADMIN
                    if fate == "admin" and group != GROUPS[0]:
                        author = -group
                    events.append(
                        (
                            created + 120,
                            body(
                                "wall_reply_new",
                                group,
                                f"r{n}",
                                {
                                    "id": cid + 50,
                                    "from_id": author,
                                    "date": created + 120,
                                    "text": "Ответили в личные сообщения",
                                    "post_id": post,
                                    "owner_id": -group,
                                    "reply_to_comment": cid,
                                    "reply_to_user": 9000 + n,
                                    "parents_stack": [cid],
                                },
                            ),
                        )
                    )
                    expected[item] = "answered"
                elif fate == "withdrawn":
                    events.append(
                        (
                            created + 60,
                            body(
                                "wall_reply_delete",
                                group,
                                f"d{n}",
                                {
                                    "id": cid,
                                    "owner_id": -group,
                                    "post_id": post,
                                    "deleter_id": 9000 + n,
                                    "user_id": 9000 + n,
                                },
                            ),
                        )
                    )
                    expected[item] = "withdrawn"
                elif fate == "moderated":
                    events.append(
                        (
                            created + 60,
                            body(
                                "wall_reply_delete",
                                group,
                                f"d{n}",
                                {"id": cid, "owner_id": -group, "post_id": post, "deleter_id": ADMIN},
                            ),
                        )
                    )
                    expected[item] = "moderated"
                else:
                    expected[item] = "open"
    events.sort(key=lambda e: e[0])
    # VK redelivers now and then: the same event twice changes nothing.
    events += [events[i] for i in range(0, len(events), 17)]
    events.sort(key=lambda e: e[0])
    return events, expected


def envelopes(events: list[tuple[int, dict]]) -> list[tuple[bytes, bytes]]:
    return [(f"vk:{b['group_id']}".encode(), RawEnvelope("vk", "test", float(t), b).to_json()) for t, b in events]


def canonical(messages) -> set[bytes]:
    return {orjson.dumps(orjson.loads(m.value), option=orjson.OPT_SORT_KEYS) for m in messages}


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    path = tmp_path / "registry.yaml"
    path.write_text(REGISTRY)
    return path


def test_responses_and_a_sigkill_in_the_middle_give_the_same_records(worker_factory, kafka, registry):
    now = int(time.time())
    events, expected = scenario(now)
    env = dict(OTKLIK_LATE_WINDOW="2", OTKLIK_TICK_INTERVAL="1")
    # Closed items give one record each; overdue open ones one record when they pass the deadline.
    want = len(expected)

    calm = worker_factory(registry, **env)
    calm.start()
    run(produce(kafka, calm.topic("otklik.raw"), envelopes(events)))
    calm_out = run(consume(kafka, calm.topic("otklik.responses"), expect=want, timeout=90))
    calm_records = canonical(calm_out)
    by_item = {}
    for raw in calm_records:
        rec = orjson.loads(raw)
        by_item.setdefault(rec["item"], []).append(rec)
    assert set(by_item) == set(expected), set(expected) ^ set(by_item)
    for item, recs in by_item.items():
        assert [r["outcome"] for r in recs] == [expected[item]], (item, recs)
        rec = recs[0]
        if rec["outcome"] == "answered":
            assert rec["latency_s"] == 120 and rec["business_latency_s"] == 120 and not rec["breached"]
            assert rec["responder"] in (f"vk:user:{ADMIN}", rec["page"])
        if rec["outcome"] == "open":
            assert rec["breached"] and rec["closed_at"] is None
        if rec["outcome"] == "withdrawn":
            assert not rec["breached"]
    admin_answers = [r[0] for r in by_item.values() if r[0]["responder"] == f"vk:user:{ADMIN}"]
    assert admin_answers, "the administrator's own account answers on the page that registers it"
    metrics = calm.metrics()
    assert "otklik_items_closed_total" in metrics

    # The same stream, with the worker SIGKILLed in the middle and restarted.
    crashy = worker_factory(registry, **env)
    crashy.start()
    half = len(events) // 2
    run(produce(kafka, crashy.topic("otklik.raw"), envelopes(events[:half])))
    run(consume(kafka, crashy.topic("otklik.interactions"), expect=half // 2, timeout=60))
    crashy.stop(kill=True)
    assert crashy.proc.returncode == -9
    run(produce(kafka, crashy.topic("otklik.raw"), envelopes(events[half:])))
    crashy.start()
    crashy_out = run(consume(kafka, crashy.topic("otklik.responses"), expect=want, timeout=90))
    # At-least-once: a record may repeat after the crash, with the same content.
    assert canonical(crashy_out) == calm_records
    assert len(crashy_out) >= want
