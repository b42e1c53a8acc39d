"""A page's VK managers in the real worker (docs/responses.md, "Page replies"): a manager added in the
middle of the day answers for the page only after it, the role survives a restart of the worker, and
a replay of the same events judges the same."""

from __future__ import annotations

import subprocess
import time
import uuid

import orjson
import pytest
import yaml

from otklik.agents.registry import Registry
from otklik.agents.replay import run_replay
from otklik.schemas.records import RawEnvelope
from tests.conftest import OTKLIK, consume, produce, run
from tests.fakes.vk_api import FakeVkApi, KnownToken, scripted_community, served_in_thread

pytestmark = pytest.mark.integration

G = 200000612
SMM, CITIZEN = 6001, 5001
REGISTRY = """
defaults:
  calendar: none
  schedule: {mon-sun: "00:00-24:00"}  # around the clock: the tests pass at any hour of any day
  deadline: "30m calendar"
pages:
  - id: vk:200000612
"""


def comment(cid: int, from_id: int, date: int, text: str, parent: int | None = None) -> dict:
    obj = {"id": cid, "from_id": from_id, "date": date, "text": text, "post_id": 4, "owner_id": -G}
    if parent is not None:
        obj.update(parents_stack=[parent], reply_to_comment=parent, reply_to_user=CITIZEN)
    return {"type": "wall_reply_new", "group_id": G, "event_id": f"e{cid}", "v": "5.199", "object": obj}


def item(cid: int) -> str:
    return f"vk:{G}:wall:4:{cid}"


def wait_for_log(worker, text: str, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in worker.log_path.read_text(errors="replace"):
            return
        time.sleep(0.3)
    pytest.fail(f"the worker did not log {text!r}:\n{worker.log_tail()}")


def test_a_manager_added_mid_day_answers_only_after_and_agrees_with_replay(worker_factory, kafka, tmp_path):
    registry = tmp_path / "registry.yaml"
    registry.write_text(REGISTRY)
    worker = worker_factory(registry, OTKLIK_LATE_WINDOW="2", OTKLIK_TICK_INTERVAL="1")
    worker.start()
    t = int(time.time()) - 3 * 3600
    role = {
        "type": "group_officers_edit",
        "group_id": G,
        "event_id": "role1",
        "v": "5.199",
        "object": {"admin_id": 1, "user_id": SMM, "level_old": 0, "level_new": 2},
    }
    before = [
        (t, comment(1, CITIZEN, t, "Когда починят крыльцо библиотеки?")),
        (t + 600, comment(2, SMM, t + 600, "Когда будет ответ по крыльцу?", parent=1)),  # not a manager yet
        (t + 3600, role),
    ]
    after = [(t + 5400, comment(3, SMM, t + 5400, "Крыльцо починят в пятницу.", parent=1))]
    key = f"vk:{G}".encode()

    def send(events: list) -> None:  # type: ignore[type-arg]
        envelopes = [(key, RawEnvelope("vk", "test", float(at), b).to_json()) for at, b in events]
        run(produce(kafka, worker.topic("otklik.raw"), envelopes))

    send(before)
    wait_for_log(worker, f"managers of vk:{G}: 1 role(s) changed")
    # The role is in the page's saved state: it holds across a restart.
    worker.stop()
    worker.start()
    send(after)
    records = run(consume(kafka, worker.topic("otklik.responses"), expect=3, timeout=60))
    latest = {}
    for m in records:
        rec = orjson.loads(m.value)
        latest[rec["item"]] = rec
    first = latest[item(1)]
    assert (first["outcome"], first["responder"]) == ("answered", f"vk:user:{SMM}")
    assert latest[item(2)]["author"] == f"vk:user:{SMM}"  # written before the role: a citizen's item
    assert item(3) not in latest

    kept = [orjson.loads(m.value) for m in run(consume(kafka, worker.topic("otklik.managers"), expect=1))]
    assert [(r["kind"], r["user"], r["manager"], r["at"]) for r in kept] == [
        ("change", f"vk:user:{SMM}", True, t + 3600)
    ]

    lines = [orjson.dumps({"received_at": at, "body": b}) for at, b in before + after]
    replayed = {
        r["item"]: r
        for r in run_replay(
            lines, Registry.from_mapping(yaml.safe_load(REGISTRY)), now=int(time.time()), late_window_s=2
        )
    }
    for i in (1, 2):
        assert replayed[item(i)]["outcome"] == latest[item(i)]["outcome"], i
        assert replayed[item(i)]["responder"] == latest[item(i)]["responder"], i
    assert item(3) not in replayed
    assert worker.proc.poll() is None


def test_managers_sync_reads_the_list_into_the_worker(worker_factory, kafka, tmp_path):
    """`otklik managers sync --group ID` against the fake VK API: the community's managers answer for the
    page from the time of the list on."""
    registry = tmp_path / "registry.yaml"
    registry.write_text(REGISTRY)
    worker = worker_factory(registry, OTKLIK_LATE_WINDOW="2", OTKLIK_TICK_INTERVAL="1")
    worker.start()
    token = f"vk1.a.group-{uuid.uuid4().hex}"
    community = scripted_community(G)
    manager = min(community.managers)
    fake = FakeVkApi({G: community}, {token: KnownToken("group", G)})
    with served_in_thread(fake):
        env = dict(worker.env, OTKLIK_VK_API_URL=fake.url, **{f"OTKLIK_VK_{G}_TOKEN": token})
        done = subprocess.run(
            [OTKLIK, "managers", "sync", "--group", str(G)], env=env, capture_output=True, text=True, timeout=120
        )
    assert done.returncode == 0, done.stderr
    assert f"vk:{G}: {len(community.managers)} managers" in done.stderr
    assert token not in done.stderr and token not in done.stdout
    assert fake.violations == []
    wait_for_log(worker, f"managers of vk:{G}: {len(community.managers)} role(s) changed")

    now = int(time.time())
    events = [
        (now, comment(1, CITIZEN, now, "Когда починят крыльцо библиотеки?")),
        (now + 1, comment(2, manager, now + 1, "Крыльцо починят в пятницу.", parent=1)),
    ]
    key = f"vk:{G}".encode()
    envelopes = [(key, RawEnvelope("vk", "test", float(at), b).to_json()) for at, b in events]
    run(produce(kafka, worker.topic("otklik.raw"), envelopes))
    records = run(consume(kafka, worker.topic("otklik.responses"), expect=1, timeout=60))
    first = orjson.loads(records[-1].value)
    assert (first["item"], first["outcome"], first["responder"]) == (item(1), "answered", f"vk:user:{manager}")
