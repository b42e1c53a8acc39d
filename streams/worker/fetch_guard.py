"""No input record skipped: no record of an input partition is handed over while faust cannot keep it,
and after every assignment each input partition starts at its group's committed offset or, with none,
at its log start.

faust's consumer (faust-streaming 0.15 over aiokafka 0.14) pauses partitions in its own bookkeeping
only: aiokafka keeps prefetching every assigned partition, and faust asks its consumer thread for the
records of the partitions it calls active by passing its *live* set of them. A record handed over
moves aiokafka's position past it. faust then loses, without a word, a record whose partition is no
longer active when it gets to it, any record while its flow is stopped for a rebalance, and any record
it has put into an agent's queue before recovery ends (resuming flow clears those queues). Three
faults turned that into input never processed (tests/reliability/test_worker_kills.py,
test_scale_out.py):

* aiokafka's ``fetched_records(partitions)`` reads an empty set as "every partition". Table recovery
  empties faust's set for a moment (its changelog partitions paused, the input partitions not resumed
  yet), and so does a rebalance; a fetch waiting in the consumer thread at that moment returns the
  prefetched records of the paused input partitions, which faust then drops.
* At the end of recovery faust resumes the input partitions, seeks them, and only then resumes flow,
  which clears the agents' queues: records fetched in between reach a queue and are cleared.
* faust's seek to committed offsets leaves a partition without a committed offset (a new group, a
  partition that no worker committed yet: a killed worker's, a new worker's first minutes) or with
  offset 0 where it is, past the lost records. The agents go on with the records after them and the
  next commit covers them.

:func:`install_fetch_guard` closes them on one faust consumer: its thread is asked with a copy of the
active set, never with an empty one, and only for changelog partitions while the app is rebalancing
(until recovery has ended and flow is resumed); its seek to committed offsets also moves each input
partition without one (or at 0) to where ``auto_offset_reset`` would start it. A record handed over
and lost before that seek is therefore read again: repeated (harmless, see docs/data-flow.md,
"Delivery guarantees"), never skipped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["install_fetch_guard", "seek_to_committed_or_reset"]

# How long a fetch with nothing to ask for waits before faust asks again (the input resumes that much
# later at most after a rebalance).
IDLE_S = 0.05


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
        # A copy: faust's set changes under the consumer thread while it waits for records. While
        # rebalancing, only what recovery reads: input records would be dropped or cleared.
        if consumer.app.rebalancing:
            partitions = frozenset(tp for tp in active_partitions if consumer._is_changelog_tp(tp))
        else:
            partitions = frozenset(active_partitions)
        if not partitions:  # aiokafka would read it as every partition, paused ones included
            await asyncio.sleep(min(timeout, IDLE_S))  # faust asks again at once: not in a busy loop
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
