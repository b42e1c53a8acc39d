"""The worker during a Kafka outage: whether it reaches the broker now (what ``/health`` and
``otklik_worker_kafka_ready`` report), and a pause between failed metadata requests.

faust's own state says nothing about the broker: during an outage the worker's producer holds its
records and retries them (they are delivered once the broker is back, see docs/data-flow.md,
"Delivery guarantees"), the consumer keeps its assignment, and ``/health`` said ``ok`` throughout.
:class:`KafkaWatch` therefore asks the broker itself, every ``interval_s``, for the cluster's metadata
through the producer's client (the same client the records go through), and counts the producer as
unable to deliver once its sender task has ended.

aiokafka (0.14) asks for metadata again as soon as an attempt fails: its producer's sender with
records for a partition without a known leader, and its consumer's fetcher, each wait for the next
metadata update, which fails at once while the broker is down, and ask again. The worker spent most
of a core on it for as long as an outage lasted. :func:`install_metadata_backoff` makes a failed
update report its failure only after a pause, which paces every one of those loops.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("otklik.kafka")

__all__ = ["METADATA_BACKOFF_S", "KafkaWatch", "install_metadata_backoff"]

# After a failed metadata update: the broker is back in the worker's view at most this much later.
METADATA_BACKOFF_S = 0.5


def install_metadata_backoff(client: Any, backoff_s: float = METADATA_BACKOFF_S) -> None:
    """Make the aiokafka client ``client`` pause ``backoff_s`` after a metadata update that failed,
    before its waiters hear of it (see the module)."""
    update = client._metadata_update  # run by the client's metadata task for every waiter at once

    async def _metadata_update(cluster_metadata: Any, topics: Any) -> bool:
        updated = await update(cluster_metadata, topics)
        if not updated:
            await asyncio.sleep(backoff_s)
        return bool(updated)

    client._metadata_update = _metadata_update


def _sender_ended(producer: Any) -> bool:
    # aiokafka keeps its sender task private; once it has ended, the producer delivers nothing more.
    task = getattr(getattr(producer, "_sender", None), "sender_task", None)
    return task is not None and task.done()


class KafkaWatch:
    """Probes the aiokafka producer returned by ``producer()`` (None while faust's is not started)."""

    def __init__(
        self, producer: Callable[[], Any], *, interval_s: float = 1.0, timeout_s: float = 5.0, what: str = "Kafka"
    ) -> None:
        self._producer = producer
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.what = what  # for log lines: the bootstrap address
        self.ready = False
        self.probes = 0

    async def probe(self) -> bool:
        """Probe once; set and return :attr:`ready`."""
        try:
            producer = self._producer()
        except Exception:  # not started yet, or stopped
            producer = None
        ready = False
        if producer is not None and not _sender_ended(producer):
            try:
                ready = bool(await asyncio.wait_for(producer.client.force_metadata_update(), self.timeout_s))
            except Exception:  # unreachable is the answer
                ready = False
        if ready != self.ready and self.probes:
            if ready:
                log.info("Kafka at %s answers again", self.what)
            else:
                log.warning("Kafka at %s does not answer: /health says 503 until it does", self.what)
        self.ready = ready
        self.probes += 1
        return ready

    async def run(self) -> None:
        """Probe every ``interval_s`` until cancelled."""
        while True:
            await self.probe()
            await asyncio.sleep(self.interval_s)
