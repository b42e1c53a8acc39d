"""No input record skipped: records of a paused partition are never handed over, and after every
assignment each input partition starts at its group's committed offset or, with none, at its log start.

faust's consumer (faust-streaming 0.15 over aiokafka 0.14) pauses partitions in its own bookkeeping
only: aiokafka keeps prefetching every assigned partition, and faust asks its consumer thread for the
records of the partitions it calls active by passing its *live* set of them. A record handed over
moves aiokafka's position past it, and faust drops, without a word, a record whose partition is no
longer active when it gets to it (or any record while its flow is stopped for a rebalance). Two faults
then lose input for good (tests/reliability/test_worker_kills.py, test_scale_out.py):

* aiokafka's ``fetched_records(partitions)`` reads an empty set as "every partition". Table recovery
  empties faust's set for a moment (its changelog partitions paused, the input partitions not resumed
  yet), and so does a rebalance; a fetch waiting in the consumer thread at that moment returns the
  prefetched records of the paused input partitions, which faust then drops.
* After recovery faust seeks the input partitions to their committed offsets, but aiokafka's
  ``seek_to_committed`` leaves a partition without a committed offset (a new group, a partition that
  no worker committed yet: a killed worker's, a new worker's first minutes) or with offset 0 where it
  is, past the dropped records. The agents go on with the records after them and the next commit
  covers them: they are never processed.

:func:`install_fetch_guard` closes both on one faust consumer: its thread is asked only with a copy of
the active set and never with an empty one, and its seek to committed offsets also moves each input
partition without one (or at 0) to where ``auto_offset_reset`` would start it. A record handed over
and dropped before that seek is therefore read again: repeated (harmless, see docs/data-flow.md,
"Delivery guarantees"), never skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["install_fetch_guard", "seek_to_committed_or_reset"]

log = logging.getLogger("otklik.fetch_guard")


async def seek_to_committed_or_reset(
    consumer: Any, inputs: Iterable[Any], reset: str = "earliest"
) -> Mapping[Any, Any]:
    """aiokafka ``consumer.seek_to_committed()``, then each of ``inputs`` (assigned input partitions) whose
    committed offset is missing or 0, which aiokafka does not seek, to 0 or to where ``reset`` starts a
    partition without one. Returns the committed offsets as aiokafka gave them (faust keeps them)."""
    from aiokafka import TopicPartition

    committed = await consumer.seek_to_committed()
    unset = []
    for tp in (TopicPartition(tp.topic, tp.partition) for tp in inputs):  # aiokafka's type, not faust's TP
        offset = committed.get(tp)
        if offset == 0:
            consumer.seek(tp, 0)
        elif offset is None:
            unset.append(tp)
    if unset:
        if reset == "latest":
            await consumer.seek_to_end(*unset)
        else:
            await consumer.seek_to_beginning(*unset)
    return committed


def install_fetch_guard(consumer: Any) -> None:
    """Guard one faust consumer (``faust.transport.drivers.aiokafka.Consumer``) as the module says."""
    thread = consumer._thread  # faust's AIOKafkaConsumerThread: aiokafka in its own thread and loop
    original_getmany = thread.getmany

    async def getmany(active_partitions: Iterable[Any], timeout: float) -> Mapping[Any, Any]:
        # A copy: faust's set changes under the consumer thread while it waits for records.
        partitions = frozenset(active_partitions)
        if not partitions:  # aiokafka would read it as every partition, paused ones included
            return {}
        return await original_getmany(partitions, timeout)  # type: ignore[no-any-return]

    async def seek_to_committed() -> Mapping[Any, Any]:
        # The partitions faust resumes after recovery: every assigned one but its tables' changelogs.
        inputs = [tp for tp in consumer.assignment() if not consumer._is_changelog_tp(tp)]
        reset = str(consumer.app.conf.consumer_auto_offset_reset)
        return await thread.call_thread(  # type: ignore[no-any-return]
            seek_to_committed_or_reset, thread._ensure_consumer(), inputs, reset
        )

    thread.getmany = getmany
    thread.seek_to_committed = seek_to_committed
