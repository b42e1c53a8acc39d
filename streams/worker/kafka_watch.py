"""The worker during a Kafka outage: whether it reaches the broker now (what ``/health`` and
``otklik_worker_kafka_ready`` report).

faust's own state says nothing about the broker: during an outage the worker's producer holds its
records and retries them (they are delivered once the broker is back, see docs/data-flow.md,
"Delivery guarantees"), the consumer keeps its assignment, and ``/health`` said ``ok`` throughout.
:class:`KafkaWatch` therefore asks the broker itself, every ``interval_s``, for the cluster's metadata
through the producer's client (the same client the records go through), and counts the producer as
unable to deliver once its sender task has ended.

Failed metadata requests are paced (:func:`otklik.streams.kafka_pacing.install_metadata_backoff`,
installed on the worker's clients by streams/worker/app.py), so an outage does not keep a core busy.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

__all__ = ["KafkaWatch"]

log = logging.getLogger("otklik.kafka")


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
