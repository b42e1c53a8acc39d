"""The real worker on the real broker: raw records in, interactions out, bad records dead-lettered."""

from __future__ import annotations

import re
import time
import urllib.request

import orjson
import pytest

from otklik.schemas.records import RawEnvelope
from tests.conftest import consume, produce, run

pytestmark = pytest.mark.integration

GROUP = 200000777


def comment_body(i: int, date: int) -> dict:
    return {
        "type": "wall_reply_new",
        "group_id": GROUP,
        "event_id": f"e{i:08x}",
        "v": "5.199",
        "object": {
            "id": 1000 + i,
            "from_id": 5000 + i,
            "date": date,
            "text": f"Когда починят фонарь у дома {i}?",
            "post_id": 88,
            "owner_id": -GROUP,
        },
    }


def raw(body: dict, received_at: float) -> tuple[bytes, bytes]:
    return f"vk:{GROUP}".encode(), RawEnvelope("vk", "test", received_at, body).to_json()


def test_raw_records_reach_interactions_and_bad_ones_go_to_dead_letters(worker_factory, kafka):
    worker = worker_factory()
    worker.start()
    now = int(time.time())
    n = 40
    records = [raw(comment_body(i, now - 100 + i), now) for i in range(n // 2)]
    records.append((b"vk:200000777", b"\xff\xfe not json at all"))  # undecodable
    records.append(
        (b"vk:200000777", orjson.dumps({"platform": "vk", "received_at": now, "body": {"type": "wall_reply_new"}}))
    )
    records += [raw(comment_body(i, now - 100 + i), now) for i in range(n // 2, n)]
    run(produce(kafka, worker.topic("otklik.raw"), records))

    out = run(consume(kafka, worker.topic("otklik.interactions"), expect=n))
    items = sorted(orjson.loads(m.value)["item"] for m in out)
    assert items == sorted(f"vk:{GROUP}:wall:88:{1000 + i}" for i in range(n))
    assert {m.key for m in out} == {f"vk:{GROUP}".encode()}

    dead = run(consume(kafka, worker.topic("otklik.dead-letters"), expect=2))
    reasons = sorted(orjson.loads(m.value)["reason"] for m in dead)
    assert len(reasons) == 2
    assert any(r.startswith("not JSON") for r in reasons)
    assert any("group_id: missing" in r for r in reasons), reasons  # the normalizer names the missing field
    stages = sorted(orjson.loads(m.value)["stage"] for m in dead)
    assert stages == ["decode", "normalize"]
    letter = orjson.loads(dead[0].value)
    assert letter["topic"] == worker.topic("otklik.raw") and letter["offset"] is not None

    # The worker survived both and counts what it did.
    text = worker.metrics()
    counted = re.search(r'^otklik_interactions_total\{action="new",platform="vk"\} (\S+)$', text, re.M)
    assert counted and float(counted.group(1)) == n
    assert worker.proc.poll() is None
    # /health counts what each agent processed and says how the core runs: as this test process does.
    import otklik.agents

    with urllib.request.urlopen(worker.web + "/health", timeout=5) as resp:
        health = orjson.loads(resp.read())
    assert health["processed"]["normalize"] >= n
    assert health["core"] == otklik.agents.NATIVE_STATUS
    # The consumer's fast hand-over is installed on the pinned faust and counted every raw record (and the
    # interactions after them) on one path or the other; the cores' own counters are exported.
    fast = health["fast_delivery"]
    assert fast["installed"] and fast["reason"] == ""
    assert fast["fast"] + fast["fallback"] >= n + 2
    assert re.search(r'^otklik_fast_delivery_records_total\{path="fast"\} \S+$', text, re.M)
    assert re.search(r"^otklik_fast_delivery_installed 1\.0$", text, re.M)
    assert re.search(r"^otklik_unknown_page_events_total 0\.0$", text, re.M)  # every page has the defaults
