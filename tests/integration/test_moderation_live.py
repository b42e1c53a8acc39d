"""The moderation agent inside the real worker on the real broker."""

from __future__ import annotations

import time

import orjson
import pytest

from otklik.schemas.records import RawEnvelope
from tests.conftest import consume, produce, run

pytestmark = pytest.mark.integration

GROUP = 200000301
ADMIN = 7301
REGISTRY = """
defaults:
  calendar: none
  schedule: {mon-sun: "00:00-24:00"}  # around the clock: the tests pass at any hour of any day
  moderation_deadline: "1m working"
pages:
  - id: vk:200000301
    title: Дом культуры
    administrators: ["vk:user:7301"]
"""


def raw(kind: str, event: str, obj: dict, received: int) -> tuple[bytes, bytes]:
    body = {"type": kind, "group_id": GROUP, "event_id": event, "v": "5.199", "object": obj}
    return f"vk:{GROUP}".encode(), RawEnvelope("vk", "test", float(received), body).to_json()


def comment(cid: int, author: int, text: str, date: int) -> dict:
    return {"id": cid, "from_id": author, "date": date, "text": text, "post_id": 5, "owner_id": -GROUP}


def test_offensive_items_are_labelled_timed_and_overdue_ones_reported(worker_factory, kafka, tmp_path):
    registry = tmp_path / "registry.yaml"
    registry.write_text(REGISTRY)
    worker = worker_factory(registry, OTKLIK_TICK_INTERVAL="1")
    worker.start()
    now = int(time.time())
    records = [
        raw(
            "wall_reply_new",
            "a1",
            comment(1, 9001, "Вы там совсем охуели, трубу третий день не чинят", now - 30),
            now - 30,
        ),
        raw("wall_reply_new", "a2", comment(2, 9002, "Когда починят трубу на Садовой?", now - 20), now - 20),
        raw("wall_reply_new", "a3", comment(3, -GROUP, "Напишите, пожалуйста, в личные сообщения", now - 10), now - 10),
        raw("wall_reply_new", "a4", comment(4, 9004, "Идиоты, а не коммунальщики", now - 200), now - 200),
        raw("wall_reply_delete", "d1", {"id": 1, "owner_id": -GROUP, "post_id": 5, "deleter_id": ADMIN}, now),
        raw(
            "wall_reply_new",
            "a1",
            comment(1, 9001, "Вы там совсем охуели, трубу третий день не чинят", now - 30),
            now + 1,
        ),
    ]
    run(produce(kafka, worker.topic("otklik.raw"), records))
    out = run(consume(kafka, worker.topic("otklik.moderation"), expect=5, timeout=60))
    got = sorted((r["kind"], r["item"].rsplit(":", 1)[1]) for r in (orjson.loads(m.value) for m in out))
    assert got == [("deflection", "3"), ("labelled", "1"), ("labelled", "4"), ("overdue", "4"), ("removed", "1")]
    removed = next(orjson.loads(m.value) for m in out if orjson.loads(m.value)["kind"] == "removed")
    assert removed["deleted_by"] == "page" and removed["visible_s"] == 30 and removed["within_deadline"] is True
    assert "obscene" in removed["labels"]
    metrics = worker.metrics()
    assert 'otklik_page_offensive_visible{page="vk:200000301"} 1.0' in metrics
    assert 'otklik_moderation_records_total{kind="overdue",role="citizen"} 1.0' in metrics
