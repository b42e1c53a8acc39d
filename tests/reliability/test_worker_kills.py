"""Reliability scenario 1 (issue 19): the worker killed with SIGKILL five times mid-stream ends with the
same final record for every item as a calm run of the same stream.

The stream is tests/integration/test_responses_live.py's scenario, copied onto several groups of pages:
answers come well within the deadline and the unanswered items are long overdue, so no outcome
depends on when a timer fires. It is produced in chunks, and the worker is killed after five of them
while it is still working through what it was given. Each worker lives less than faust's commit
interval, so every restart starts from partitions without a committed offset: the case in which faust
skipped input records fetched during recovery (streams/worker/fetch_guard.py).
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import consume, produce, run
from tests.integration.test_responses_live import ADMIN, REGISTRY, envelopes, scenario

pytestmark = pytest.mark.integration

COPIES = 4  # groups of pages, each with the scenario's 120 items
CHUNKS = 12
KILL_AFTER = {2, 4, 6, 8, 10}  # chunk numbers after which the worker is killed


def shifted(body: dict[str, Any], offset: int) -> dict[str, Any]:
    """``body`` moved onto group ``group_id + offset`` (its owner and community author with it)."""
    body = copy.deepcopy(body)
    group = body["group_id"]
    body["group_id"] = group + offset
    body["event_id"] = f"{body['event_id']}+{offset}"
    obj = body["object"]
    for key in ("owner_id", "from_id", "reply_to_user", "deleter_id"):
        if obj.get(key) == -group:
            obj[key] = -(group + offset)
    return body


def stream(now: int) -> list[tuple[int, dict[str, Any]]]:
    events, _ = scenario(now, seed=23)
    out = [(t, shifted(body, 1000 * k)) for k in range(COPIES) for t, body in events]
    out.sort(key=lambda e: e[0])
    return out


def judged_items(now: int, seed: int = 23, copies: int = COPIES, admin_everywhere: bool = False) -> set[str]:
    """The items of the scenario copied onto ``copies`` groups that get a record: one each in a calm run
    (tests/integration/test_responses_live.py), so that a calm run is read to its end without waiting
    out a timeout. REGISTRY names the administrator on the first page only: on its copies the
    administrator's answer is a citizen's reply, and the item stays open within its deadline (no
    record); ``admin_everywhere`` for a registry that names them on every copy."""
    events, expected = scenario(now, seed=seed)
    by_admin = {
        f"vk:{b['group_id']}:wall:{b['object']['post_id']}:{b['object']['reply_to_comment']}"
        for _, b in events
        if b["object"].get("from_id") == ADMIN and "reply_to_comment" in b["object"]
    }
    out = set()
    for item in expected:
        platform, group, rest = item.split(":", 2)
        out |= {
            f"{platform}:{int(group) + 1000 * k}:{rest}"
            for k in range(copies)
            if k == 0 or admin_everywhere or item not in by_admin
        }
    return out


def final_records(messages) -> dict[str, dict[str, Any]]:
    """The last record of each item on otklik.responses: the highest version when records carry one,
    else the last by offset (an item's records are all in its page's partition)."""
    final: dict[str, tuple[tuple[int, int], dict[str, Any]]] = {}
    for m in messages:
        record = orjson.loads(m.value)
        rank = (record.get("version", 0), m.offset)
        if record["item"] not in final or rank > final[record["item"]][0]:
            final[record["item"]] = (rank, record)
    return {item: {k: v for k, v in rec.items() if k != "version"} for item, (_, rec) in final.items()}


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    path = tmp_path / "registry.yaml"
    path.write_text(REGISTRY)
    return path


def test_five_kills_change_no_final_record(worker_factory, kafka, registry):
    started = time.monotonic()
    now = int(time.time())
    events = stream(now)
    env = dict(OTKLIK_LATE_WINDOW="2", OTKLIK_TICK_INTERVAL="1")

    # The calm run works through the stream while the other worker starts and is killed (its restarts
    # mostly wait for the group to drop the killed member).
    calm = worker_factory(registry, **env)
    calm.start()
    run(produce(kafka, calm.topic("otklik.raw"), envelopes(events)))

    crashy = worker_factory(registry, **env)
    crashy.start()
    size = -(-len(events) // CHUNKS)
    for n in range(CHUNKS):
        chunk = events[n * size : (n + 1) * size]
        run(produce(kafka, crashy.topic("otklik.raw"), envelopes(chunk)))
        if n + 1 in KILL_AFTER:
            time.sleep(0.3)  # mid-stream: the worker is busy with what it was just given
            crashy.stop(kill=True)
            assert crashy.proc is not None and crashy.proc.returncode == -9
            crashy.start()
    assert crashy.starts == 1 + len(KILL_AFTER)
    items = judged_items(now)
    calm_out = run(consume(kafka, calm.topic("otklik.responses"), expect=len(items), timeout=40))
    calm_final = final_records(calm_out)
    assert calm_final.keys() == items and len(calm_out) == len(items), (len(calm_final), len(items))
    crashy_out = run(consume(kafka, crashy.topic("otklik.responses"), expect=len(calm_out), timeout=90))
    deadline = time.monotonic() + 30
    crashy_final = final_records(crashy_out)
    while crashy_final.keys() != calm_final.keys() and time.monotonic() < deadline:
        time.sleep(1)
        crashy_out = run(consume(kafka, crashy.topic("otklik.responses"), expect=len(calm_out), timeout=5))
        crashy_final = final_records(crashy_out)

    missing = calm_final.keys() - crashy_final.keys()
    extra = crashy_final.keys() - calm_final.keys()
    differ = [i for i in calm_final.keys() & crashy_final.keys() if calm_final[i] != crashy_final[i]]
    print(
        f"scenario 1: {len(events)} events, {len(KILL_AFTER)} kills, {len(calm_final)} items compared, "
        f"{len(missing)} missing, {len(extra)} extra, {len(differ)} different; "
        f"{len(crashy_out)} records after the kills against {len(calm_out)} calm (repeats are at-least-once); "
        f"{time.monotonic() - started:.0f} s"
    )
    assert not missing and not extra and not differ, (sorted(missing)[:5], sorted(extra)[:5], differ[:5])
