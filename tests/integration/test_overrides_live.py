"""Triage and corrections in the real worker: decisions and corrections agree with replay, and a
correction holds across restarts of the worker."""

from __future__ import annotations

import json
import secrets
import subprocess
import time
import urllib.request

import orjson
import pytest
import yaml

from otklik.agents.registry import Registry
from otklik.agents.replay import run_replay
from otklik.schemas.records import RawEnvelope
from tests.conftest import OTKLIK, consume, produce, run

pytestmark = pytest.mark.integration

G = 200000611
REGISTRY = """
defaults:
  calendar: none
  schedule: {mon-sun: "00:00-24:00"}  # around the clock: the tests pass at any hour of any day
  deadline: "30m calendar"
pages:
  - id: vk:200000611
    title: Библиотека № 3
"""


def body(cid: int, text: str, date: int) -> dict:
    return {
        "type": "wall_reply_new",
        "group_id": G,
        "event_id": f"e{cid}",
        "v": "5.199",
        "object": {"id": cid, "from_id": 9000 + cid, "date": date, "text": text, "post_id": 4, "owner_id": -G},
    }


def item(cid: int) -> str:
    return f"vk:{G}:wall:4:{cid}"


def latest(messages) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    """The last record per item: what a consumer of otklik.responses ends up believing."""
    out: dict[str, dict] = {}
    for m in messages:
        rec = orjson.loads(m.value)
        out[rec["item"]] = rec
    return out


def test_corrections_hold_across_restarts_and_agree_with_replay(worker_factory, kafka, tmp_path):
    registry = tmp_path / "registry.yaml"
    registry.write_text(REGISTRY)
    token = secrets.token_urlsafe(32)
    tokens = tmp_path / "tokens.txt"
    tokens.write_text(f"{token} Петрова (ЦУР)\n")
    worker = worker_factory(registry, OTKLIK_LATE_WINDOW="2", OTKLIK_TICK_INTERVAL="1", OTKLIK_API_TOKENS=str(tokens))
    worker.start()
    created = int(time.time()) - 3600
    events = [
        (created, body(1, "Спасибо большое!", created)),
        (created + 1, body(2, "Когда починят крыльцо библиотеки?", created + 1)),
        (created + 2, body(3, "Ок", created + 2)),
    ]
    key = f"vk:{G}".encode()
    run(
        produce(
            kafka,
            worker.topic("otklik.raw"),
            [(key, RawEnvelope("vk", "test", float(t), b).to_json()) for t, b in events],
        )
    )
    first = latest(run(consume(kafka, worker.topic("otklik.responses"), expect=3, timeout=60)))
    assert (first[item(1)]["outcome"], first[item(1)]["reason"]) == ("no_answer_needed", "gratitude")
    assert (first[item(3)]["outcome"], first[item(3)]["reason"]) == ("no_answer_needed", "acknowledgement")
    assert (first[item(2)]["outcome"], first[item(2)]["breached"]) == ("open", True)

    # The worker restarts; then a person corrects both decisions, one through the API, one with the CLI.
    worker.stop()
    worker.start()
    request = urllib.request.Request(
        worker.web + f"/api/items/{item(1)}/override",
        method="POST",
        data=json.dumps({"needs_answer": True, "note": "это жалоба с сарказмом"}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status == 202
    bad = urllib.request.Request(
        worker.web + f"/api/items/{item(1)}/override",
        method="POST",
        data=b'{"needs_answer": "maybe"}',
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(bad, timeout=10)
    assert refused.value.code == 400 and b"needs_answer" in refused.value.read()
    done = subprocess.run(
        [OTKLIK, "override", item(2), "--needs-answer", "no", "--by", "Сидоров", "--note", "спам-бот"],
        env=worker.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    records = run(consume(kafka, worker.topic("otklik.responses"), expect=5, timeout=60))
    after = latest(records)
    assert (after[item(1)]["outcome"], after[item(1)]["breached"]) == ("open", True)
    assert after[item(1)]["extra"]["override"]["previous"] == "no_answer_needed:gratitude"
    assert after[item(1)]["extra"]["override"]["by"] == "Петрова (ЦУР)"  # the token's name
    assert (after[item(2)]["outcome"], after[item(2)]["reason"]) == ("no_answer_needed", "override")
    assert after[item(2)]["extra"]["override"]["by"] == "Сидоров"

    # Another restart, and a redelivery of the first comment: the correction still holds.
    worker.stop()
    worker.start()
    run(
        produce(
            kafka, worker.topic("otklik.raw"), [(key, RawEnvelope("vk", "test", time.time(), events[0][1]).to_json())]
        )
    )
    time.sleep(3)
    with urllib.request.urlopen(worker.web + f"/api/pages/vk:{G}/open-items", timeout=10) as resp:
        open_items = [i["item"] for i in json.loads(resp.read())["items"]]
    assert open_items == [item(1)]

    # Replay of the same events and corrections judges the same.
    corrections = [orjson.loads(m.value) for m in run(consume(kafka, worker.topic("otklik.overrides"), expect=2))]
    lines = [orjson.dumps({"received_at": t, "body": b}) for t, b in events]
    lines += [orjson.dumps({"received_at": int(c["requested_at"]), "override": c}) for c in corrections]
    replayed = {
        r["item"]: r
        for r in run_replay(
            lines, Registry.from_mapping(yaml.safe_load(REGISTRY)), now=int(time.time()), late_window_s=2
        )
    }
    for i in (1, 2, 3):
        assert replayed[item(i)]["outcome"] == after.get(item(i), first[item(i)])["outcome"], i
        assert replayed[item(i)]["reason"] == after.get(item(i), first[item(i)])["reason"], i
    assert worker.proc.poll() is None
