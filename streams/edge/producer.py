"""A Kafka producer that heals, for the long-lived producers of the edge (gateway, Long Poll).

Why: aiokafka's idempotent producer numbers each partition's batches. A batch that fails after it was
numbered — it expired while the partition had no leader during a broker restart, or the broker refused
it — leaves a gap, and the broker then answers every later batch of that partition with
``OutOfOrderSequenceNumber``; a fatal error can also end the producer's sender task. Either way that
producer object never delivers again. :class:`HealingProducer` therefore retires a producer as soon as
one of its deliveries fails (or its sender task ends) and starts a fresh one (a new producer id, fresh
sequence numbers) once the broker answers. Meanwhile :attr:`HealingProducer.connected` is false, so
callers answer "unavailable" at once instead of queueing into a dead producer.

A retired producer is not abandoned: it is stopped in the background, which lets its batches still
in flight finish (an idempotent retry that succeeds is still a success and is reported as one). Only
after ``abandon_after_s`` are the deliveries it never settled failed with :class:`ProducerAbandoned`.

:attr:`HealingProducer.ready` is what ``/health`` and the ready gauges report: a live producer whose
last metadata probe (every ``probe_interval_s``) or delivery reached the broker.

During an outage aiokafka logs a line per failed connection attempt and per retried request: the
commands bound them with :func:`otklik.streams.logs.limit_kafka_logs`; and it asks for metadata again
as soon as an attempt fails, so each producer's client is paced
(:func:`otklik.streams.kafka_pacing.install_metadata_backoff`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from otklik.streams.kafka_pacing import install_metadata_backoff

log = logging.getLogger("otklik.kafka")


class ProducerUnavailable(RuntimeError):
    """No live producer: Kafka is unreachable or the producer is being replaced."""


class ProducerAbandoned(RuntimeError):
    """A retired producer did not settle this delivery within ``abandon_after_s``; it was not acknowledged."""


@dataclass(eq=False)
class _Generation:
    """One producer object and the deliveries handed out through it."""

    producer: Any
    number: int
    born: float = field(default_factory=time.monotonic)
    pending: set[asyncio.Future] = field(default_factory=set)
    broken: str | None = None  # why it is being retired


def _sender_dead(producer: Any) -> bool:
    # aiokafka keeps its sender task private; when it has ended, nothing this producer holds is delivered.
    task = getattr(getattr(producer, "_sender", None), "sender_task", None)
    return task is not None and task.done()


class HealingProducer:
    """Wraps the producers made by ``factory`` (each an ``AIOKafkaProducer`` or alike); see the module."""

    def __init__(
        self,
        factory: Callable[[], Any],
        *,
        what: str = "Kafka",
        probe_interval_s: float = 1.0,
        start_timeout_s: float = 30.0,
        abandon_after_s: float = 60.0,
        min_backoff_s: float = 0.2,
        max_backoff_s: float = 2.0,  # a connection attempt is cheap; recovery waits at most this long
        stable_after_s: float = 10.0,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self._factory = factory
        self.what = what  # for log lines: the bootstrap address
        self.probe_interval_s = probe_interval_s
        self.start_timeout_s = start_timeout_s
        self.abandon_after_s = abandon_after_s
        self.min_backoff_s = min_backoff_s
        self.max_backoff_s = max_backoff_s
        self.stable_after_s = stable_after_s  # a producer that failed sooner is replaced after a pause
        self._sleep = sleep
        self._current: _Generation | None = None
        self._generations = 0
        self._reachable = False
        self._starting = False
        self._wake: asyncio.Event | None = None
        self._changed: asyncio.Event | None = None
        self._supervisor: asyncio.Task | None = None
        self._retiring: set[asyncio.Task] = set()
        self.replacements = 0  # producers retired and replaced
        self.failures = 0  # deliveries that failed (each one answered "unavailable" by the caller)

    # -- state -----------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """A live producer takes new records."""
        gen = self._current
        return gen is not None and gen.broken is None

    @property
    def ready(self) -> bool:
        """A live producer, and the broker answered its last probe or delivery."""
        return self.connected and self._reachable

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start connecting in the background (returns at once; see :meth:`wait_connected`)."""
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._supervisor = asyncio.create_task(self._supervise(), name="otklik-kafka-producer")

    async def wait_connected(self, timeout: float, *, while_starting_only: bool = False) -> bool:
        """True once a live producer exists, within ``timeout``. ``while_starting_only``: give up at
        once unless a producer is being started right now (a replacement while the broker is up takes
        milliseconds; a retry pause during an outage takes seconds)."""
        deadline = time.monotonic() + timeout
        while not self.connected:
            left = deadline - time.monotonic()
            if left <= 0 or self._changed is None or (while_starting_only and not self._starting):
                return False
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                pass
        return True

    async def stop(self, timeout: float = 15.0) -> None:
        """Stop the supervisor and every producer; deliveries still unsettled after ``timeout`` fail."""
        if self._supervisor is not None:
            self._supervisor.cancel()
            try:
                await self._supervisor
            except BaseException:  # its end is what we want
                pass
            self._supervisor = None
        gen, self._current = self._current, None
        if gen is not None:
            self._retiring.add(asyncio.create_task(self._retire(gen, timeout)))
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)

    # -- sending ---------------------------------------------------------------------------------

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> asyncio.Future:
        """Queue one record; return a future settled by the broker's answer (never cancelled by us).

        Raises :class:`ProducerUnavailable` without a live producer, aiokafka's ``KafkaTimeoutError``
        when the record could not be queued in time (no metadata) and ``MessageSizeTooLargeError`` for a
        record that can never be produced."""
        from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError

        gen = self._current
        if gen is None or gen.broken is not None:
            raise ProducerUnavailable(f"no Kafka producer connected to {self.what}")
        try:
            acked = await gen.producer.send(topic, value=value, key=key)
        except (KafkaTimeoutError, MessageSizeTooLargeError):
            raise  # about this record or this moment, not the producer
        except Exception as exc:  # the producer refused: it holds a fatal error
            self._break(gen, exc)
            raise ProducerUnavailable(f"the Kafka producer failed ({type(exc).__name__})") from exc
        delivery = asyncio.get_running_loop().create_future()
        gen.pending.add(delivery)
        acked.add_done_callback(lambda fut: self._settle(gen, fut, delivery))
        return delivery

    def _settle(self, gen: _Generation, acked: asyncio.Future, delivery: asyncio.Future) -> None:
        gen.pending.discard(delivery)
        if delivery.done():  # already failed by an abandonment
            return
        if acked.cancelled():
            exc: BaseException | None = ProducerAbandoned("the produce was cancelled")
        else:
            exc = acked.exception()
        if exc is None:
            self._reachable = True
            delivery.set_result(acked.result())
            return
        delivery.set_exception(exc)
        self.failures += 1
        # Any failure of a numbered batch leaves a gap in the partition's sequence: retire the producer.
        self._break(gen, exc)

    def _break(self, gen: _Generation, exc: BaseException) -> None:
        if gen.broken is not None:
            return
        gen.broken = type(exc).__name__
        log.warning(
            "the Kafka producer #%d failed (%s): replacing it; bodies not acknowledged are refused and come again",
            gen.number,
            gen.broken,
        )
        self._signal()

    def _signal(self) -> None:
        if self._wake is not None:
            self._wake.set()
        if self._changed is not None:
            self._changed.set()

    # -- the supervisor --------------------------------------------------------------------------

    async def _supervise(self) -> None:
        backoff = self.min_backoff_s
        assert self._wake is not None
        while True:
            self._wake.clear()  # before looking: a failure from now on wakes the wait below
            gen = self._current
            if gen is not None and gen.broken is None and _sender_dead(gen.producer):
                self._break(gen, RuntimeError("sender task ended"))
            if gen is None or gen.broken is not None:
                if gen is not None:
                    self._current = None
                    self._reachable = False
                    self._retiring.add(task := asyncio.create_task(self._retire(gen, self.abandon_after_s)))
                    task.add_done_callback(self._retiring.discard)
                    if time.monotonic() - gen.born < self.stable_after_s:
                        # It failed soon after it started (a record the broker refuses, say): no churn.
                        self._starting = True
                        self._signal()
                        await self._sleep(backoff)
                        backoff = min(backoff * 2, self.max_backoff_s)
                    else:
                        backoff = self.min_backoff_s
                    self._signal()
                if not await self._connect():
                    await self._sleep(backoff)
                    backoff = min(backoff * 2, self.max_backoff_s)
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), self.probe_interval_s)
                continue  # something broke: handle it at once
            except TimeoutError:
                pass
            self._reachable = await self._probe(gen.producer)

    async def _connect(self) -> bool:
        producer = self._factory()
        client = getattr(producer, "client", None)
        if hasattr(client, "_metadata_update"):  # an aiokafka producer: paced while the broker is away
            install_metadata_backoff(client)
        self._starting = True
        self._signal()
        try:
            await asyncio.wait_for(producer.start(), self.start_timeout_s)
        except Exception as exc:
            log.warning("Kafka at %s is not reachable (%s); retrying", self.what, type(exc).__name__)
            try:
                await asyncio.wait_for(producer.stop(), 5)
            except Exception:  # it never started
                pass
            return False
        finally:
            self._starting = False
        self._generations += 1
        if self._generations > 1:
            self.replacements += 1
        self._current = _Generation(producer, self._generations)
        self._reachable = True
        log.info("Kafka producer #%d connected to %s", self._generations, self.what)
        self._signal()
        return True

    @staticmethod
    async def _probe(producer: Any) -> bool:
        try:
            return bool(await asyncio.wait_for(producer.client.force_metadata_update(), 10))
        except Exception:  # unreachable is the answer
            return False

    async def _retire(self, gen: _Generation, timeout: float) -> None:
        """Stop a producer, letting its batches in flight finish for up to ``timeout`` seconds."""
        producer = gen.producer
        try:
            await asyncio.wait_for(producer.stop(), timeout)
        except Exception as exc:  # stuck or broken: close it by force below
            log.warning("the Kafka producer #%d did not stop in time (%s)", gen.number, type(exc).__name__)
            try:
                sender = getattr(producer, "_sender", None)
                if sender is not None:
                    await asyncio.wait_for(sender.close(), 10)
                await asyncio.wait_for(producer.client.close(), 10)
            except Exception:
                pass
        left = [d for d in gen.pending if not d.done()]
        for delivery in left:
            delivery.set_exception(ProducerAbandoned(f"the Kafka producer #{gen.number} was retired"))
        gen.pending.clear()
        if left:
            log.warning("the Kafka producer #%d was retired with %d deliveries unsettled", gen.number, len(left))
