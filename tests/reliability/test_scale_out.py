"""Several workers in one consumer group (issue 19, finding 9; docs/data-flow.md, "Several workers").

* The read API answers for any page from any worker: each of two workers is asked for the pages
  the other owns.
* Reliability scenario 2: three workers share the pages; one is killed (SIGKILL) and then one added
  mid-stream; the final record of every item equals a one-worker run's, and the open items on the
  workers' /metrics add up to the one-worker figure, each page on one worker.

The stream is tests/integration/test_responses_live.py's scenario (answers well within the
deadline, unanswered items long overdue: no outcome depends on when a timer fires), copied onto
:data:`COPIES` groups of its pages so that every worker holds several.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest

from otklik.schemas.records import RawEnvelope
from tests.conftest import WorkerProcess, consume, free_port, produce, run
from tests.integration.test_responses_live import GROUPS, scenario
from tests.reliability.test_worker_kills import judged_items, shifted

pytestmark = pytest.mark.integration

COPIES = 5  # groups of the scenario's three pages: 15 pages, 600 items
# faust's assignor gives each worker at most ceil(partitions / workers) and lets the others keep
# theirs: with 6 partitions a fourth worker beside three would get none; with 12 it gets three.
PARTITIONS = "12"
# Moderation keeps its state the same way (PageStateMirror) but is not what these tests compare.
ENV = dict(
    OTKLIK_LATE_WINDOW="2", OTKLIK_TICK_INTERVAL="1", OTKLIK_PARTITIONS=PARTITIONS, OTKLIK_AGENTS="normalize,responses"
)
PAGES = [f"vk:{g + 1000 * k}" for k in range(COPIES) for g in GROUPS]

REGISTRY = "\n".join(
    [
        "defaults:",
        "  timezone: Europe/Moscow",
        "  calendar: none",
        '  schedule: {mon-sun: "00:00-24:00"}  # around the clock: the test passes at any hour',
        '  deadline: "30m calendar"',
        "pages:",
        *[f"  - id: {page}\n    title: Страница {page}\n    administrators: ['vk:user:7001']" for page in PAGES],
    ]
)


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    path = tmp_path / "registry.yaml"
    path.write_text(REGISTRY)
    return path


def stream(now: int) -> list[tuple[int, dict[str, Any]]]:
    events, _ = scenario(now, seed=29)
    out = [(t, shifted(body, 1000 * k)) for k in range(COPIES) for t, body in events]
    out.sort(key=lambda e: e[0])
    return out


def envelopes(events: list[tuple[int, dict[str, Any]]]) -> list[tuple[bytes, bytes]]:
    return [(f"vk:{b['group_id']}".encode(), RawEnvelope("vk", "test", float(t), b).to_json()) for t, b in events]


def final_records(messages) -> dict[str, dict[str, Any]]:  # type: ignore[no-untyped-def]
    """The last record of each item on otklik.responses: the highest version when records carry one,
    else the last by offset (an item's records are all in its page's partition)."""
    final: dict[str, tuple[tuple[int, int], dict[str, Any]]] = {}
    for m in messages:
        record = orjson.loads(m.value)
        rank = (record.get("version", 0), m.offset)
        if record["item"] not in final or rank > final[record["item"]][0]:
            final[record["item"]] = (rank, record)
    return {item: {k: v for k, v in rec.items() if k != "version"} for item, (_, rec) in final.items()}


def sibling(of: WorkerProcess, tmp_path: Path, name: str) -> WorkerProcess:
    """Another worker of ``of``'s group: the same app id and topics, its own port and data folder."""
    env = dict(of.env, OTKLIK_WEB_PORT=str(free_port()), OTKLIK_DATA_DIR=str(tmp_path / name))
    return WorkerProcess(env=env, log_path=tmp_path / f"{name}.log")


def open_items(worker: WorkerProcess, page: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{worker.web}/api/pages/{page}/open-items?limit=1000", timeout=10) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


def owned_pages(worker: WorkerProcess) -> dict[str, float]:
    """Pages with open items in the worker's /metrics, and how many (the series of the pages it holds)."""
    try:
        text = worker.metrics()
    except OSError:
        return {}
    return {
        page: float(value)
        for page, value in re.findall(r'^otklik_page_open_items\{[^}]*page="([^"]+)"[^}]*\} (\S+)$', text, re.M)
    }


def scrape_text(worker: WorkerProcess) -> str:
    try:
        return worker.metrics()
    except OSError:
        return ""


def wait(what: str, check: Any, timeout: float, workers: list[WorkerProcess]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    tails = "\n".join(w.log_tail(30) for w in workers)
    pytest.fail(f"{what}: not within {timeout}s\n{tails}")


def test_each_worker_answers_for_the_pages_the_other_owns(worker_factory, kafka, registry, tmp_path):
    first = worker_factory(registry, **ENV)
    second = sibling(first, tmp_path, "second")
    workers = [first, second]
    try:
        first.start()
        now = int(time.time())
        per_page = 3
        events = [
            (
                now - 60 + n,
                {
                    "type": "wall_reply_new",
                    "group_id": int(page.split(":")[1]),
                    "event_id": f"{page}-{n}",
                    "v": "5.199",
                    "object": {
                        "id": 100 + n,
                        "from_id": 9100 + n,
                        "date": now - 60 + n,
                        "text": "Когда откроют каток?",
                        "post_id": 1,
                        "owner_id": -int(page.split(":")[1]),
                    },
                },
            )
            for page in PAGES
            for n in range(per_page)
        ]
        run(produce(kafka, first.topic("otklik.raw"), envelopes(events)))
        # The first worker holds every page; the second then takes some over (a worker added).
        wait("every page held by the first worker", lambda: len(owned_pages(first)) == len(PAGES), 60, workers)
        second.start()

        def settled() -> tuple[dict[str, float], dict[str, float]] | None:
            held = owned_pages(first), owned_pages(second)
            every = {**held[0], **held[1]}
            done = sorted(every) == sorted(PAGES) and set(every.values()) == {per_page} and held[1]
            return held if done else None

        held = wait("the second worker holding some pages", settled, 60, workers)
        time.sleep(2)  # both have rebuilt their pages by now (every timer tick checks)
        held = owned_pages(first), owned_pages(second)
        assert not held[0].keys() & held[1].keys(), "a page's series on both workers"
        assert held[0] and held[1], "one worker holds every page: the test would prove nothing"
        for asked, other in ((first, held[1]), (second, held[0])):
            for page in other:
                answer = open_items(asked, page)
                assert answer["page"] == page
                assert answer["open_items"] == per_page, (asked.web, page, answer)
                assert {i["item"] for i in answer["items"]} == {f"{page}:wall:1:{100 + n}" for n in range(per_page)}
    finally:
        second.stop()


def test_three_workers_one_killed_one_added_change_no_final_record(worker_factory, kafka, registry, tmp_path):
    started = time.monotonic()
    now = int(time.time())
    events = stream(now)

    calm = worker_factory(registry, **ENV)
    calm.start()
    run(produce(kafka, calm.topic("otklik.raw"), envelopes(events)))
    items = judged_items(now, seed=29, copies=COPIES, admin_everywhere=True)
    calm_out = run(consume(kafka, calm.topic("otklik.responses"), expect=len(items), timeout=40))
    calm.stop()
    calm_final = final_records(calm_out)
    assert calm_final.keys() == items and len(calm_out) == len(items), (len(calm_final), len(items))

    first = worker_factory(registry, **ENV)
    group = [first, sibling(first, tmp_path, "second"), sibling(first, tmp_path, "third")]
    added = sibling(first, tmp_path, "added")
    try:
        for worker in group:
            worker.start()
        chunks = 9
        size = -(-len(events) // chunks)
        for n in range(chunks):
            run(produce(kafka, first.topic("otklik.raw"), envelopes(events[n * size : (n + 1) * size])))
            if n == 2:
                time.sleep(0.3)  # mid-stream: the worker is busy with what it was just given
                group[1].stop(kill=True)
                assert group[1].proc is not None and group[1].proc.returncode == -9
            if n == 5:
                added.start()
        out = run(consume(kafka, first.topic("otklik.responses"), expect=len(calm_out), timeout=60))
        final = final_records(out)
        deadline = time.monotonic() + 30
        while final.keys() != calm_final.keys() and time.monotonic() < deadline:
            time.sleep(1)
            out = run(consume(kafka, first.topic("otklik.responses"), expect=len(calm_out), timeout=5))
            final = final_records(out)
        # Every worker's deadline notices have come by now; a worker that judged pages it does not hold
        # would add records after the others' (the timers run every second).
        time.sleep(3)
        out = run(consume(kafka, first.topic("otklik.responses"), expect=len(out) + 1, timeout=3))
        final = final_records(out)
        # The workers' page series add up to the one-worker figure: each page on one worker only.
        live = [group[0], group[2], added]
        still_open = sum(1 for r in calm_final.values() if r["outcome"] == "open")
        # A worker keeps a page's series at 0 for a while after its last closure (and so after the page
        # moved away): harmless to sums; the pages with open items must be on one worker each.
        held = [{page: n for page, n in owned_pages(w).items() if n} for w in live]
        shared = [p for n, h in enumerate(held) for p in h if any(p in other for other in held[n + 1 :])]
        open_on_workers = sum(sum(h.values()) for h in held)
        # What each live worker says of itself, for the failure message.
        states = [
            (w.web, sorted(h), re.findall(r"^otklik_stream_time_seconds (\S+)$", scrape_text(w), re.M))
            for w, h in zip(live, [owned_pages(w) for w in live], strict=True)
        ]
    finally:
        for worker in (*group, added):
            worker.stop()

    missing = calm_final.keys() - final.keys()
    extra = final.keys() - calm_final.keys()
    differ = [i for i in calm_final.keys() & final.keys() if calm_final[i] != final[i]]
    print(
        f"scenario 2: {len(events)} events on {len(PAGES)} pages, 3 workers, 1 killed, 1 added; "
        f"{len(calm_final)} items compared, {len(missing)} missing, {len(extra)} extra, {len(differ)} different; "
        f"{len(out)} records against {len(calm_out)} of one worker; open items on the workers' /metrics "
        f"{open_on_workers:.0f} against {still_open}; {time.monotonic() - started:.0f} s"
    )
    assert not missing and not extra and not differ, (
        sorted({i.rsplit(":", 3)[0] for i in missing}),
        sorted(missing)[:5],
        sorted(extra)[:5],
        differ[:5],
        states,
    )
    assert not shared, f"pages on more than one worker: {shared}"
    assert open_on_workers == still_open
