"""The consumer's fetch guard (streams/worker/fetch_guard.py): no record of a paused partition is handed
over, and every input partition is sought after recovery, also one without a committed offset.

aiokafka's own ``Fetcher.fetched_records`` runs here over stand-in fetch state, so that the tests keep
checking the behaviour of aiokafka that the guard exists for; faust's consumer and its thread are
stand-ins. tests/reliability/test_worker_kills.py and test_scale_out.py drive the real thing on Kafka.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from aiokafka import TopicPartition
from aiokafka.consumer.fetcher import Fetcher, FetchResult
from faust.types import TP

from otklik.streams.worker.fetch_guard import install_fetch_guard

RAW = TP("app.otklik.raw", 0)
CHANGELOG = TP("app-pages-changelog", 0)


class Batch:
    """What aiokafka's FetchResult reads of one fetched batch: its records (offsets here) and the offset
    after the last one handed over."""

    def __init__(self, first: int, last: int) -> None:
        self.offsets = list(range(first, last + 1))
        self.next_fetch_offset = first

    def __iter__(self):  # type: ignore[no-untyped-def]
        while self.offsets:
            offset = self.offsets.pop(0)
            self.next_fetch_offset = offset + 1
            yield offset


class PartitionState:
    def __init__(self) -> None:
        self.paused = False  # aiokafka's own pause, which faust never uses
        self.position = 0

    def consumed_to(self, offset: int) -> None:
        self.position = offset


class FetchState:
    """The part of aiokafka's Fetcher that ``fetched_records`` uses: records prefetched for RAW (faust
    has paused it in its own bookkeeping only)."""

    def __init__(self) -> None:
        self.states = {TopicPartition(*RAW): PartitionState(), TopicPartition(*CHANGELOG): PartitionState()}
        assignment = SimpleNamespace(active=True, state_value=self.states.__getitem__)
        self._subscriptions = SimpleNamespace(reassignment_in_progress=False, is_assigned=lambda tp: True)
        raw = TopicPartition(*RAW)
        self._records = {raw: FetchResult(raw, assignment=assignment, partition_records=Batch(0, 9), backoff=0)}
        self._wait_consume_future = None

    def _notify(self, future: Any) -> None:
        pass

    def fetched_records(self, partitions: Any) -> dict[Any, list[int]]:
        return asyncio.run(Fetcher.fetched_records(self, partitions, timeout=0))  # type: ignore[arg-type]


def test_aiokafka_hands_over_every_partition_when_asked_for_none() -> None:
    """Why the guard exists: an empty set means "no filter" to aiokafka, and what it hands over moves
    the partition's position past it (faust then drops records of a partition it has paused)."""
    fetch = FetchState()
    assert fetch.fetched_records({CHANGELOG}) == {}
    assert fetch.fetched_records(set()) == {TopicPartition(*RAW): list(range(10))}
    assert fetch.states[TopicPartition(*RAW)].position == 10


class FakeThread:
    """faust's consumer thread: ``getmany`` asks aiokafka for the records of ``active_partitions`` once
    records arrive (``arrived``), as a fetch that waits in the thread does."""

    def __init__(self, fetch: FetchState) -> None:
        self.fetch = fetch
        self.arrived = asyncio.Event()
        self.aiokafka = FakeAiokafka()

    async def getmany(self, active_partitions: Any, timeout: float) -> dict[Any, list[int]]:
        await self.arrived.wait()
        return await Fetcher.fetched_records(self.fetch, active_partitions, timeout=0)  # type: ignore[arg-type]

    async def seek_to_committed(self) -> dict[Any, Any]:
        raise AssertionError("replaced by the guard")

    async def call_thread(self, fn: Any, *args: Any) -> Any:
        return await fn(*args)

    def _ensure_consumer(self) -> FakeAiokafka:
        return self.aiokafka


class FakeAiokafka:
    """aiokafka's consumer as the guard's seek uses it; the group has committed ``committed``."""

    def __init__(self) -> None:
        self.committed: dict[TopicPartition, int | None] = {}
        self.calls: list[tuple[Any, ...]] = []

    async def seek_to_committed(self) -> dict[TopicPartition, int | None]:
        # aiokafka seeks only the partitions with a committed offset above 0
        self.calls.extend(("seek", tp, offset) for tp, offset in self.committed.items() if offset)
        return dict(self.committed)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        assert isinstance(tp, TopicPartition)
        self.calls.append(("seek", tp, offset))

    async def seek_to_beginning(self, *tps: TopicPartition) -> None:
        assert all(isinstance(tp, TopicPartition) for tp in tps)
        self.calls.append(("beginning", *tps))

    async def seek_to_end(self, *tps: TopicPartition) -> None:
        self.calls.append(("end", *tps))


class FakeConsumer:
    """faust's consumer: its thread, assignment, changelog test and settings."""

    def __init__(self, assigned: set[TP], reset: str = "earliest") -> None:
        self._thread = FakeThread(FetchState())
        self.assigned = assigned
        self.app = SimpleNamespace(conf=SimpleNamespace(consumer_auto_offset_reset=reset), rebalancing=False)
        install_fetch_guard(self)

    def assignment(self) -> set[TP]:
        return self.assigned

    def _is_changelog_tp(self, tp: TP) -> bool:
        return tp.topic.endswith("-changelog")


def test_a_partition_paused_while_the_fetch_waits_gets_nothing_handed_over() -> None:
    async def main() -> None:
        consumer = FakeConsumer({RAW, CHANGELOG})
        thread = consumer._thread
        unguarded = FakeThread(thread.fetch)  # faust's own thread, on the same fetch state
        # faust's live set of active partitions: recovery reads the changelog, the input is paused
        active = {CHANGELOG}
        guarded_fetch = asyncio.ensure_future(thread.getmany(active, 1.0))
        unguarded_fetch = asyncio.ensure_future(unguarded.getmany(active, 1.0))
        await asyncio.sleep(0)
        active.clear()  # recovery done: the changelog paused before the input is resumed
        thread.arrived.set()
        assert await guarded_fetch == {}
        assert thread.fetch.states[TopicPartition(*RAW)].position == 0  # the records wait for RAW's turn

        unguarded.arrived.set()
        assert await unguarded_fetch == {TopicPartition(*RAW): list(range(10))}  # what faust would drop

    asyncio.run(main())


def test_faust_never_asks_aiokafka_with_an_empty_set() -> None:
    async def main() -> None:
        consumer = FakeConsumer({RAW})
        consumer._thread.arrived.set()
        assert await consumer._thread.getmany(set(), 1.0) == {}
        assert consumer._thread.fetch.states[TopicPartition(*RAW)].position == 0
        assert await consumer._thread.getmany({RAW}, 1.0) == {TopicPartition(*RAW): list(range(10))}

    asyncio.run(main())


def test_while_rebalancing_only_changelog_records_are_handed_over() -> None:
    """Input records fetched before recovery has ended would be dropped, or cleared from the agents'
    queues when faust resumes flow; the changelog's are what recovery reads."""

    async def main() -> None:
        consumer = FakeConsumer({RAW, CHANGELOG})
        thread = consumer._thread
        changelog = TopicPartition(*CHANGELOG)
        assignment = SimpleNamespace(active=True, state_value=thread.fetch.states.__getitem__)
        thread.fetch._records[changelog] = FetchResult(
            changelog, assignment=assignment, partition_records=Batch(0, 2), backoff=0
        )
        thread.arrived.set()
        consumer.app.rebalancing = True
        assert await thread.getmany({RAW, CHANGELOG}, 1.0) == {changelog: [0, 1, 2]}
        assert await thread.getmany({RAW}, 1.0) == {}
        assert thread.fetch.states[TopicPartition(*RAW)].position == 0
        consumer.app.rebalancing = False
        assert await thread.getmany({RAW}, 1.0) == {TopicPartition(*RAW): list(range(10))}

    asyncio.run(main())


def test_every_input_partition_is_sought_also_without_a_committed_offset() -> None:
    never, at_zero, committed = TP("app.otklik.raw", 1), TP("app.otklik.raw", 2), TP("app.otklik.raw", 3)
    consumer = FakeConsumer({never, at_zero, committed, CHANGELOG})
    aiokafka = consumer._thread.aiokafka
    aiokafka.committed = {TopicPartition(*tp): offset for tp, offset in ((never, None), (at_zero, 0), (committed, 17))}
    aiokafka.committed[TopicPartition(*CHANGELOG)] = None

    offsets = asyncio.run(consumer._thread.seek_to_committed())

    # faust keeps the committed offsets as aiokafka reported them
    assert offsets == aiokafka.committed
    assert sorted(aiokafka.calls, key=repr) == sorted(
        [
            ("seek", TopicPartition(*committed), 17),
            ("seek", TopicPartition(*at_zero), 0),
            ("beginning", TopicPartition(*never)),  # recovery positions the changelog itself
        ],
        key=repr,
    )


def test_a_partition_without_a_committed_offset_starts_where_the_reset_policy_says() -> None:
    consumer = FakeConsumer({RAW}, reset="latest")
    aiokafka = consumer._thread.aiokafka
    aiokafka.committed = {TopicPartition(*RAW): None}
    asyncio.run(consumer._thread.seek_to_committed())
    assert aiokafka.calls == [("end", TopicPartition(*RAW))]


def test_faust_still_fetches_and_seeks_through_the_methods_the_guard_replaces() -> None:
    """The guard replaces two methods of faust's consumer thread: a faust that no longer goes through
    them would leave the consumer unguarded without a word."""
    import inspect

    from faust.transport.consumer import ThreadDelegateConsumer
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    assert "self._thread.getmany(" in inspect.getsource(ThreadDelegateConsumer._getmany)
    assert "self._thread.seek_to_committed(" in inspect.getsource(ThreadDelegateConsumer.seek_to_committed)
    assert list(inspect.signature(AIOKafkaConsumerThread.getmany).parameters) == [
        "self",
        "active_partitions",
        "timeout",
    ]
