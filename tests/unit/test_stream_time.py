"""Deadlines pass by the stream's own clock, and one bad time moves no clock (issue 19, findings 3 and 4;
docs/responses.md, "Stream time").

The engine and the stream clock are the pure cores the worker wires together: these tests drive them as
``agents/wiring/pipeline.py`` does (records processed in batches, the ``deadlines`` timer ticking the
engine at ``StreamClock.now`` between batches) and count the objective's counters with the worker's own
metrics code.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from prometheus_client import CollectorRegistry

from otklik.agents.ingest.vk import normalize_vk
from otklik.agents.registry import Registry
from otklik.agents.responses.engine import ResponseEngine
from otklik.agents.wiring.stream_clock import FRESH_S, IDLE_S, MAX_AHEAD_S, InputPartition, StreamClock
from otklik.schemas.records import Interaction, ResponseRecord
from otklik.streams.worker.metrics import PipelineMetrics
from tests.unit.responses_helpers import item_state

GROUPS = (31001, 31002)
PAGES = tuple(f"vk:{g}" for g in GROUPS)
INTERACTIONS = "otklik.interactions"
RAW = "otklik.raw"
W = 600
H = 3600


def at(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=ZoneInfo("Europe/Moscow")).timestamp())


T0 = at("2025-11-26T10:00")


def registry() -> Registry:
    return Registry.from_mapping(
        {
            "defaults": {
                "timezone": "Europe/Moscow",
                "calendar": "none",
                "schedule": {"mon-sun": "00:00-24:00"},
                "deadline": "30m calendar",
                "region": "Тестовая область",
                "municipality": "Тестовый район",
            },
            "pages": [{"id": p} for p in PAGES],
        }
    )


def comment(group: int, cid: int, author: int, date: int, n: int, to: int | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": cid,
        "from_id": author,
        "date": date,
        "text": "Когда починят фонарь?",
        "post_id": 1,
        "owner_id": -group,
    }
    if to is not None:
        obj.update(reply_to_comment=to, reply_to_user=5000 + to, parents_stack=[to])
    return {"type": "wall_reply_new", "group_id": group, "event_id": f"e{group}-{n}", "v": "5.199", "object": obj}


def backlog(items_per_page: int) -> tuple[list[tuple[int, Interaction]], set[str], set[str]]:
    """(partition, interaction) in the order they reached Kafka while the worker was stopped: on each
    page an item every 20 s from T0, answered 5 minutes later (its deadline is 30 minutes), except every
    tenth, never answered. Returns the records, the answered items and the unanswered ones."""
    events: list[tuple[int, int, dict[str, Any]]] = []
    answered: set[str] = set()
    unanswered: set[str] = set()
    for partition, group in enumerate(GROUPS):
        for k in range(items_per_page):
            cid = 1 + 2 * k
            created = T0 + 20 * k
            events.append((created, partition, comment(group, cid, 5000 + cid, created, 2 * k)))
            item = f"vk:{group}:wall:1:{cid}"
            if k % 10 == 9:
                unanswered.add(item)
                continue
            answered.add(item)
            events.append((created + 300, partition, comment(group, cid + 1, -group, created + 300, 2 * k + 1, to=cid)))
    events.sort(key=lambda e: e[0])  # the gateway received each at its own time
    records = [(p, ia) for received, p, body in events for ia in normalize_vk(body, received)]
    return records, answered, unanswered


class Worker:
    """The engine and the stream clock wired as the worker wires them, with its metrics."""

    def __init__(self, reg: Registry) -> None:
        self.reg = reg
        self.engine = ResponseEngine(reg.page, late_window_s=W)
        self.clock = StreamClock(INTERACTIONS)
        self.registry = CollectorRegistry()
        self.metrics = PipelineMetrics(self.registry)
        self.records: list[ResponseRecord] = []
        self.highwater = dict.fromkeys(range(len(GROUPS)), 0)
        self.offsets = dict.fromkeys(range(len(GROUPS)), 0)

    def produce(self, records: list[tuple[int, Interaction]]) -> list[tuple[int, int, Interaction]]:
        out = []
        for partition, ia in records:
            out.append((partition, self.highwater[partition], ia))
            self.highwater[partition] += 1
        return out

    def process(self, batch: list[tuple[int, int, Interaction]], wall: float, mono: float) -> None:
        for partition, offset, ia in batch:
            self.clock.processed(INTERACTIONS, partition, offset, mono)
            self.clock.observe(partition, ia.received_at, wall)
            self.emit(self.engine.process(ia, self.clock.limit(wall)))

    def inputs(self, wall: float) -> list[InputPartition]:
        return [InputPartition(INTERACTIONS, p, hw, wall) for p, hw in self.highwater.items()]

    def tick(self, wall: float, mono: float) -> int | None:
        now = self.clock.now(wall, mono, self.inputs(wall))
        if now is not None:
            self.emit(self.engine.tick(now))
        return now

    def emit(self, records: list[ResponseRecord]) -> None:
        for record in records:
            self.metrics.observe_response(record, self.reg.page(record.page))
        self.records.extend(records)

    def counter(self, name: str) -> float:
        return sum(
            s.value for m in self.registry.collect() for s in m.samples if s.name == name and s.name.endswith("_total")
        )


def test_a_backlog_read_after_its_deadlines_reports_no_answered_item_overdue_and_counts_exactly() -> None:
    records, answered, unanswered = backlog(items_per_page=300)
    worker = Worker(registry())
    queued = worker.produce(records)  # written while the worker was stopped
    wall = T0 + 3 * H  # the worker starts three hours later: every deadline of the backlog has passed
    mono = 1000.0
    assert worker.tick(wall, mono) is None  # nothing read yet: no stream time, nothing judged
    for start in range(0, len(queued), 40):
        worker.process(queued[start : start + 40], wall, mono)
        stream_now = worker.tick(wall, mono)
        assert stream_now is not None and stream_now <= max(ia.received_at for _, _, ia in queued[: start + 40])
        wall += 0.05
        mono += 0.05
    # Caught up and idle: the wall clock takes over, and the late window lets the closures go.
    mono += IDLE_S
    assert worker.tick(wall, mono) == int(wall)
    worker.tick(wall + W + 1, mono + W + 1)

    opened = [r for r in worker.records if r.outcome == "open"]
    assert {r.item for r in opened} == unanswered  # each truly overdue item reported, once
    assert len(opened) == len(unanswered)
    final = {r.item: r for r in worker.records if r.outcome != "open"}
    assert {i for i, r in final.items() if r.outcome == "answered" and not r.breached} == answered
    assert worker.counter("otklik_items_due_total") == len(answered) + len(unanswered)
    assert worker.counter("otklik_items_breached_total") == len(unanswered)


def test_breaches_wait_for_the_slowest_partition_and_follow_its_records() -> None:
    records, _, unanswered = backlog(items_per_page=60)
    worker = Worker(registry())
    queued = worker.produce(records)
    wall, mono = T0 + 3 * H, 1000.0
    first = [q for q in queued if q[0] == 0]  # partition 0 read through; partition 1 not at all
    worker.process(first, wall, mono)
    assert worker.tick(wall, mono + IDLE_S) is None  # partition 1's clock is not known yet
    assert [r for r in worker.records if r.outcome == "open"] == []
    second = [q for q in queued if q[0] == 1]
    worker.process(second[:10], wall, mono)
    stream_now = worker.tick(wall, mono + IDLE_S)
    assert stream_now == max(ia.received_at for _, _, ia in second[:10])  # partition 1's clock, the earliest
    assert all(r.outcome != "open" or r.page == PAGES[0] for r in worker.records)
    worker.process(second[10:], wall, mono)
    worker.tick(wall, mono + 2 * IDLE_S)
    assert {r.item for r in worker.records if r.outcome == "open"} == unanswered


def test_a_future_or_millisecond_received_at_moves_no_clock_and_expires_nothing_of_another_page() -> None:
    reg = registry()
    engine = ResponseEngine(reg.page, late_window_s=W)
    clock = StreamClock(INTERACTIONS)
    wall = T0 + 60
    limit = clock.limit(wall)
    waiting = [f"vk:{GROUPS[0]}:wall:1:{1 + 2 * k}" for k in range(10)]
    for k in range(10):
        for ia in normalize_vk(comment(GROUPS[0], 1 + 2 * k, 5001 + 2 * k, T0 + k, k), T0 + k):
            assert engine.process(ia, limit) == []
            clock.observe(0, ia.received_at, wall)
    before = engine.watermark
    bad = [T0 + 400 * 86400, T0 * 1000]  # 400 days ahead; milliseconds
    for n, received in enumerate(bad):
        for ia in normalize_vk(comment(GROUPS[1], 101 + n, 6000 + n, T0 + 30, 100 + n), received):
            assert engine.process(ia, limit) == []
            assert clock.observe(1, ia.received_at, wall) is False
    assert engine.watermark == before and engine.out_of_range_times == 2
    # The next ordinary event of either page expires nothing and closes nothing.
    for ia in normalize_vk(comment(GROUPS[1], 201, 6100, T0 + 40, 200), T0 + 40):
        assert engine.process(ia, limit) == []
    assert engine.watermark == T0 + 40
    assert [item_state(engine, PAGES[0], i) for i in waiting] == ["open"] * 10
    inputs = [InputPartition(INTERACTIONS, p, 10, wall) for p in (0, 1)]
    assert clock.partition_clocks(wall, 0.0, inputs) == {0: T0 + 9, 1: None}  # no record of partition 1 counted
    # A correction dated in the future moves no clock either.
    assert engine.override(PAGES[0], waiting[0], True, "оператор", T0 + 400 * 86400, "проверка", limit)
    assert engine.watermark == T0 + 40 and engine.out_of_range_times == 3
    assert engine.tick(T0 + 50) == []
    assert [item_state(engine, PAGES[0], i) for i in waiting] == ["open"] * 10


def test_out_of_range_times_still_count_for_a_replay_which_passes_no_limit() -> None:
    """A replay runs on event time alone (no receiving clock): its output must not change."""
    engine = ResponseEngine(registry().page, late_window_s=W)
    for ia in normalize_vk(comment(GROUPS[0], 1, 5001, T0, 1), T0 + 400 * 86400):
        engine.process(ia)
    assert engine.watermark == T0 + 400 * 86400 and engine.out_of_range_times == 0


# ---- the stream clock on its own ------------------------------------------------------------------------


def test_a_caught_up_idle_partition_reads_the_wall_clock_and_a_busy_or_behind_one_its_records() -> None:
    clock = StreamClock(INTERACTIONS)
    wall, mono = float(T0 + 1000), 50.0
    clock.processed(INTERACTIONS, 0, 9, mono)
    clock.observe(0, T0 + 900, wall)
    inputs = [InputPartition(INTERACTIONS, 0, 10, wall)]
    assert clock.partition_clocks(wall, mono, inputs) == {0: T0 + 900}  # caught up, but just busy
    assert clock.partition_clocks(wall, mono + IDLE_S, inputs) == {0: T0 + 1000}  # and idle: the wall clock
    behind = [InputPartition(INTERACTIONS, 0, 11, wall)]
    assert clock.partition_clocks(wall, mono + IDLE_S, behind) == {0: T0 + 900}
    stale = [InputPartition(INTERACTIONS, 0, 10, wall - FRESH_S - 1)]  # the broker has not answered lately
    assert clock.partition_clocks(wall, mono + IDLE_S, stale) == {0: T0 + 900}
    unknown = [InputPartition(INTERACTIONS, 0, None, None)]
    assert clock.partition_clocks(wall, mono + IDLE_S, unknown) == {0: T0 + 900}


def test_a_raw_partition_behind_holds_back_the_interactions_partition_of_its_number() -> None:
    clock = StreamClock(INTERACTIONS, RAW)
    wall, mono = float(T0 + 1000), 50.0
    clock.processed(INTERACTIONS, 0, 4, mono)
    clock.observe(0, T0 + 100, wall)
    inputs = [
        InputPartition(INTERACTIONS, 0, 5, wall),
        InputPartition(INTERACTIONS, 1, 0, wall),
        InputPartition(RAW, 0, 500, wall, committed=20),  # the normalize agent is far behind
        InputPartition(RAW, 1, 7, wall, committed=7),
        InputPartition("otklik.overrides", 0, 3, wall),  # not an input of the stream's time
    ]
    assert clock.partition_clocks(wall, mono + IDLE_S, inputs) == {0: T0 + 100, 1: T0 + 1000}
    assert clock.now(wall, mono + IDLE_S, inputs) == T0 + 100


def test_the_stream_time_never_goes_back_and_starts_afresh_after_a_reassignment() -> None:
    clock = StreamClock(INTERACTIONS)
    wall, mono = float(T0 + 1000), 50.0
    idle = [InputPartition(INTERACTIONS, 0, 0, wall)]
    assert clock.now(wall, mono, idle) == T0 + 1000
    clock.processed(INTERACTIONS, 0, 0, mono + 1)
    clock.observe(0, T0 + 10, wall)  # a late record: the partition is busy and its clock is behind
    assert clock.now(wall, mono + 1, [InputPartition(INTERACTIONS, 0, 1, wall)]) == T0 + 1000
    clock.forget([1])
    assert clock.last is None
    assert clock.now(wall, mono + 1, [InputPartition(INTERACTIONS, 1, 3, wall)]) is None


def test_times_ahead_of_the_wall_clock_by_more_than_the_skew_are_ignored() -> None:
    clock = StreamClock(INTERACTIONS)
    wall = float(T0)
    assert clock.observe(0, T0 + MAX_AHEAD_S, wall)
    assert not clock.observe(0, T0 + MAX_AHEAD_S + 1, wall)
    assert clock.ignored == 1
    assert clock.partition_clocks(wall, 0.0, [InputPartition(INTERACTIONS, 0, 5, wall)]) == {0: T0 + MAX_AHEAD_S}
    assert Counter(clock.partition_clocks(wall, 0.0, []).values()) == Counter()


def test_the_backlog_gauges_measure_ages_at_the_stream_time_not_the_wall_clock() -> None:
    """An alert on the deadline ratio must not fire for an item whose answer is still unread."""
    reg = registry()
    engine = ResponseEngine(reg.page, late_window_s=W)
    for ia in normalize_vk(comment(GROUPS[0], 1, 5001, T0, 1), T0):
        engine.process(ia)
    stream: list[int | None] = [T0 + 900]  # read up to a quarter hour after the item; the wall clock is far ahead
    prom = CollectorRegistry()
    PipelineMetrics(prom, clock=lambda: T0 + 3 * H).watch_engine(lambda: engine, lambda: stream[0])

    def samples(name: str) -> list[float]:
        return [s.value for m in prom.collect() for s in m.samples if s.name == name]

    assert samples("otklik_page_oldest_deadline_ratio") == [0.5]  # 900 s of a 30-minute deadline
    assert samples("otklik_stream_time_seconds") == [T0 + 900]
    stream[0] = None  # not known yet: counts, no ages
    assert samples("otklik_page_oldest_deadline_ratio") == []
    assert samples("otklik_stream_time_seconds") == []
    assert samples("otklik_page_open_items") == [1]
