"""Reliability scenario 7 (issue 19; issue 15, "Acceptance"): `otklik store` killed with SIGKILL three
times while it reads ends with the same rows as a calm store reading the same topics.

A real worker turns ten simulated days of 40 pages into otklik.interactions, otklik.responses and
otklik.moderation; a few corrections on otklik.overrides make it re-judge their items. Then the worker
stops, so the topics hold a fixed stream (made once for both backends). A calm store reads it all into
one database with its own consumer group. A second store, with another group, another database and
small batches, is killed each time its items table passes another quarter of the calm store's items,
and started again. At the end both must hold the same rows (docs/history.md, "Exactly-once rows"):
items (every column but updated_at, which is when the store wrote the row), item_events and
corrections (without their generated ids). On SQLite and on PostgreSQL, side by side.
"""

from __future__ import annotations

import asyncio
import collections
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from otklik.schemas.overrides import Override
from tests.conftest import OTKLIK, REPO, WorkerProcess, consume, produce, run, worker_process
from tests.integration.test_store_live import Simulation, StoreProcess
from tests.reliability.conftest import create_topics

pytestmark = pytest.mark.integration

PAGES = 40
DAYS = 10
RATE = 0.009  # events per simulated second over all pages: some 8,000 in ten days
KILLS = 3
KILLED_BATCH = "100"  # the killed store's records per transaction: many commits to be killed between
TOPICS = ("otklik.responses", "otklik.interactions", "otklik.moderation", "otklik.overrides")


def simulate_recent(folder: Path) -> Simulation:
    """Ten simulated days ending five days ago: every deadline passed, every item within the horizon
    (so that a correction still re-judges it)."""
    start = int(time.time()) - (DAYS + 5) * 86400
    folder.mkdir(parents=True, exist_ok=True)
    events, registry = folder / "events.jsonl", folder / "registry.yaml"
    subprocess.run(
        [
            OTKLIK,
            "simulate",
            f"--pages={PAGES}",
            f"--rate={RATE}",
            f"--duration={DAYS * 86400}",
            f"--start={start}",
            "--seed=19",
            f"--out={events}",
            f"--registry-out={registry}",
        ],
        check=True,
        capture_output=True,
        cwd=REPO,
    )
    return Simulation(events, registry, "", ())  # type: ignore[arg-type]  # no months: not rated here


async def _offsets(bootstrap: str, topics: list[str], group: str | None) -> dict[tuple[str, int], int]:
    """The topics' end offsets (``group`` None), or what ``group`` committed on them (0 where nothing)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        partitions = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        if not partitions:
            return {}
        if group is None:
            ends = await consumer.end_offsets(partitions)
            return {(tp.topic, tp.partition): offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    found = {(tp.topic, tp.partition): meta.offset for tp, meta in committed.items() if meta.offset >= 0}
    return {(tp.topic, tp.partition): found.get((tp.topic, tp.partition), 0) for tp in partitions}


def offsets(bootstrap: str, topics: list[str], group: str | None = None) -> dict[tuple[str, int], int]:
    async def go() -> dict[tuple[str, int], int]:
        for attempt in range(5):  # metadata of topics just written may lag a moment
            result = await _offsets(bootstrap, topics, group)
            if result or attempt == 4:
                return result
            await asyncio.sleep(1)
        return {}

    return run(go())


def wait_until_quiet(bootstrap: str, topics: list[str], quiet_s: float, timeout: float, what: str) -> dict:
    """Wait until the topics' end offsets stay the same for ``quiet_s``; returns them."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        now = offsets(bootstrap, topics)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s and sum(now.values()) > 0:
            return now
        time.sleep(1.0)
    pytest.fail(f"{what}: the topics did not settle within {timeout}s")


def wait_caught_up(bootstrap: str, store: StoreProcess, ends: dict, timeout: float) -> None:
    topics = sorted({topic for topic, _ in ends})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not store.alive():
            pytest.fail(f"the store exited with {store.proc and store.proc.returncode}:\n{store.log_tail()}")
        if offsets(bootstrap, topics, store.env["OTKLIK_STORE_GROUP"]) == ends:
            return
        time.sleep(0.5)
    pytest.fail(f"the store did not read to the end within {timeout}s:\n{store.log_tail()}")


def count_items(url: str) -> int:
    from sqlalchemy import func

    from otklik.streams.store.db import open_engine
    from otklik.streams.store.schema import items

    engine = open_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(items)).scalar() or 0)
    except Exception:  # no schema yet: the store is starting
        return 0
    finally:
        engine.dispose()


def table_rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """The compared rows of each table, sorted: items without updated_at, events and corrections
    without their generated ids."""
    from otklik.streams.store.db import open_engine
    from otklik.streams.store.schema import corrections, item_events, items

    engine = open_engine(url)
    out: dict[str, list[tuple[Any, ...]]] = {}
    try:
        with engine.connect() as connection:
            for table, skipped in ((items, "updated_at"), (item_events, "id"), (corrections, "id")):
                columns = [c for c in table.columns if c.name != skipped]
                out[table.name] = sorted(
                    (tuple(row) for row in connection.execute(select(*columns))), key=lambda r: repr(r)
                )
    finally:
        engine.dispose()
    return out


def corrections_for(messages: list[Any], per_kind: int) -> list[Override]:
    """Corrections of a few items the worker judged: excluded ones to be answered, answered ones not."""
    final: dict[str, dict[str, Any]] = {}
    for message in messages:
        record = orjson.loads(message.value)
        final[record["item"]] = record
    chosen: list[Override] = []
    for outcome, needs_answer in (("no_answer_needed", True), ("answered", False)):
        items = sorted(item for item, record in final.items() if record["outcome"] == outcome)[:per_kind]
        assert len(items) == per_kind, f"fewer than {per_kind} items {outcome}"
        chosen += [
            Override(item=item, needs_answer=needs_answer, by="ops:test", note=f"correction {n}")
            for n, item in enumerate(items)
        ]
    return chosen


def database(backend: str, name: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A fresh empty database: an SQLite file, or a database of the tests' PostgreSQL cluster."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / (name + '.sqlite3')}"
    cluster = request.getfixturevalue("postgres_cluster")
    created = cluster.create_database()
    request.addfinalizer(lambda: cluster.drop_database(created))
    return cluster.url(created)


def normalized(worker: WorkerProcess) -> int:
    """Records the worker's normalize agent has processed (its /health), 0 while it does not answer."""
    try:
        status, body = worker.health()
        return int(body["processed"].get("normalize", 0)) if status == 200 else 0
    except (KeyError, ValueError):
        return 0


@dataclass
class Judged:
    """The worker's output of the simulated stream: fixed topics for the stores to read."""

    worker: WorkerProcess  # stopped; the stores take its broker and topic names
    sim: Simulation
    topics: list[str]
    ends: dict[tuple[str, int], int]
    corrections: int


@pytest.fixture(scope="module")
def judged(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Judged]:
    """Made once for both backends: the stores read the same topics, neither changes them."""
    folder = tmp_path_factory.mktemp("store-kills")
    sim = simulate_recent(folder / "sim")
    raw = sim.envelopes()
    worker = worker_process(kafka, folder, sim.registry, OTKLIK_TICK_INTERVAL="1")
    create_topics(worker)
    topics = [worker.topic(name) for name in TOPICS]
    worker.start()
    try:
        run(produce(kafka, worker.topic("otklik.raw"), raw))
        deadline = time.monotonic() + 120
        while normalized(worker) < len(raw):  # read it all; the deadlines' notices follow within a tick
            if time.monotonic() > deadline:
                pytest.fail(f"the worker did not read its input within 120s:\n{worker.log_tail()}")
            time.sleep(0.5)
        judged = wait_until_quiet(kafka, topics, quiet_s=3, timeout=120, what="the worker's output")
        responses = sum(n for (topic, _), n in judged.items() if topic == worker.topic("otklik.responses"))
        overrides = corrections_for(run(consume(kafka, worker.topic("otklik.responses"), expect=responses)), 3)
        run(produce(kafka, worker.topic("otklik.overrides"), [(o.page.encode(), o.to_json()) for o in overrides]))
        wait_until_quiet(kafka, topics, quiet_s=3, timeout=60, what="the corrections' re-judgements")
    finally:
        worker.stop()
    ends = offsets(kafka, topics)
    assert sum(n for (topic, _), n in ends.items() if topic == worker.topic("otklik.overrides")) == len(overrides)
    yield Judged(worker, sim, topics, ends, len(overrides))


@dataclass
class Run:
    """One backend's calm and killed stores, and what they ended with."""

    backend: str
    calm: StoreProcess
    killed: StoreProcess
    calm_url: str
    killed_url: str
    expected: dict[str, list[tuple[Any, ...]]] | None = None
    got: dict[str, list[tuple[Any, ...]]] | None = None
    unread_at_kills: list[int] = field(default_factory=list)


def calm_then_killed(run_: Run, kafka: str, judged: Judged) -> None:
    """The calm store reads everything; then the other is killed :data:`KILLS` times mid-stream and
    reads to the end."""
    ends, topics = judged.ends, judged.topics
    calm, killed = run_.calm, run_.killed
    calm.start()
    try:
        wait_caught_up(kafka, calm, ends, timeout=120)
    finally:
        calm.stop()
    expected = run_.expected = table_rows(run_.calm_url)
    total_items = len(expected["items"])
    assert total_items > 1000 and len(expected["corrections"]) == judged.corrections

    for kill in range(1, KILLS + 1):
        killed.start()
        threshold = total_items * kill // (KILLS + 1)
        deadline = time.monotonic() + 120
        while count_items(run_.killed_url) < threshold:
            if not killed.alive():
                pytest.fail(f"the store exited with {killed.proc and killed.proc.returncode}:\n{killed.log_tail()}")
            if time.monotonic() > deadline:
                pytest.fail(f"the store did not reach {threshold} items:\n{killed.log_tail()}")
            time.sleep(0.05)
        killed.stop(kill=True)
        committed = offsets(kafka, topics, killed.env["OTKLIK_STORE_GROUP"])
        run_.unread_at_kills.append(sum(ends.values()) - sum(committed.values()))
    killed.start()
    try:
        wait_caught_up(kafka, killed, ends, timeout=120)
    finally:
        killed.stop()
    run_.got = table_rows(run_.killed_url)


def test_three_kills_of_the_store_change_no_row(judged: Judged, kafka, tmp_path, request):
    """On SQLite and on PostgreSQL side by side: a killed store's restarts mostly wait for its group
    to drop the killed member, time the other backend's store uses."""
    runs = []
    for backend in ("sqlite", "postgresql"):
        calm_url = database(backend, "calm", tmp_path, request)
        killed_url = database(backend, "killed", tmp_path, request)
        calm = StoreProcess.beside(judged.worker, calm_url, judged.sim.registry, tmp_path / f"calm-{backend}.log")
        killed = StoreProcess.beside(
            judged.worker,
            killed_url,
            judged.sim.registry,
            tmp_path / f"killed-{backend}.log",
            OTKLIK_STORE_BATCH=KILLED_BATCH,
        )
        runs.append(Run(backend, calm, killed, calm_url, killed_url))
    try:
        with ThreadPoolExecutor(len(runs)) as pool:
            for done in [pool.submit(calm_then_killed, r, kafka, judged) for r in runs]:
                done.result()  # a failure in either, with its message
    finally:
        for r in runs:  # a failure must not leave them running
            r.calm.stop()
            r.killed.stop()

    records = sum(judged.ends.values())
    for r in runs:
        assert r.expected is not None and r.got is not None
        figures = []
        for name, rows in r.expected.items():
            want, have = collections.Counter(rows), collections.Counter(r.got[name])
            lost, extra = sum((want - have).values()), sum((have - want).values())
            figures.append(f"{name}: {len(rows)} compared, {lost} lost, {extra} duplicated or different")
        print(
            f"\nstore kills ({r.backend}): {records} records, {KILLS} kills (records unread at each: "
            f"{r.unread_at_kills}); " + "; ".join(figures)
        )
    for r in runs:
        assert r.expected is not None and r.got is not None
        # Each kill came while the store still had records to read: mid-stream, not after it.
        assert all(unread > 0 for unread in r.unread_at_kills), (r.backend, r.unread_at_kills)
        assert r.got["items"] == r.expected["items"], r.backend
        assert r.got["item_events"] == r.expected["item_events"], r.backend
        assert r.got["corrections"] == r.expected["corrections"], r.backend
