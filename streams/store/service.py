"""`otklik store`: a consumer group that keeps what the worker judged in SQL (docs/history.md, "The store service").

The loop: read a batch from the topics, write it in one database transaction, produce the dead letters
of records that do not decode, and only then commit the offsets. A crash anywhere repeats the batch,
which the writer's upserts make harmless. A database or broker that is down pauses the loop (the batch
is retried, never skipped).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from otklik.schemas.records import DeadLetter
from otklik.streams.edge.producer import HealingProducer
from otklik.streams.settings import StoreSettings
from otklik.streams.store.writer import ROLES, Applied, Incoming, StoreWriter, record_registry

log = logging.getLogger("otklik.store")

__all__ = ["StoreService"]

# How often texts past their retention are erased while the store runs.
ERASE_EVERY_S = 3600
REGISTRY_CHECK_EVERY_S = 10
# How often the monthly ratings' delivery checks what is due (it sends each once: its journal).
DELIVER_EVERY_S = 3600


class StoreService:
    def __init__(self, settings: StoreSettings, writer: StoreWriter, registry: Any = None, deliver: Any = None) -> None:
        self.settings = settings
        self.writer = writer
        self.registry = registry  # a RegistryWatcher: reloaded when its file changes, each version kept
        self.deliver = deliver  # the monthly ratings by e-mail (an async callable), or None
        self.topics = {settings.topic(role): role for role in ROLES}
        self.dead_letters_topic = settings.topic("dead_letters")
        self.consumer: AIOKafkaConsumer | None = None
        self.producer = HealingProducer(
            lambda: AIOKafkaProducer(bootstrap_servers=settings.bootstrap, acks="all", enable_idempotence=True),
            what=settings.bootstrap,
        )
        self.stopping = asyncio.Event()
        self.batches = 0
        self.written = Applied()
        self._next_erase = 0.0
        self._next_registry_check = 0.0
        self._next_delivery = 0.0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        self.consumer = AIOKafkaConsumer(
            *self.topics,
            bootstrap_servers=self.settings.bootstrap,
            group_id=self.settings.store_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.settings.store_batch,
        )
        await self.consumer.start()
        await self.producer.start()
        log.info("store: reading %s into %s", ", ".join(self.topics), self.writer.engine.url.render_as_string())
        try:
            while not self.stopping.is_set():
                await self._erase_when_due()
                self._check_registry()
                await self._deliver_when_due()
                batches = await self.consumer.getmany(timeout_ms=500, max_records=self.settings.store_batch)
                if not batches:
                    continue
                await self._apply(batches)
        finally:
            await self.consumer.stop()
            await self.producer.stop()

    async def _apply(self, batches: dict[TopicPartition, list[Any]]) -> None:
        batch = [
            Incoming(self.topics[tp.topic], message.value or b"", tp.topic, tp.partition, message.offset, message.key)
            for tp, messages in batches.items()
            for message in messages
        ]
        delay = 0.5
        while True:
            try:
                applied = await asyncio.to_thread(self.writer.apply, batch)
                await self._dead_letters(applied)
                break
            except Exception as exc:  # the database or the broker: wait and write the same batch again
                if self.stopping.is_set():
                    raise
                log.warning("store: batch of %d records not written (%s); retrying", len(batch), _short(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
        assert self.consumer is not None
        await self.consumer.commit({tp: messages[-1].offset + 1 for tp, messages in batches.items()})
        self.batches += 1
        self.written.items += applied.items
        self.written.events += applied.events

    async def _dead_letters(self, applied: Applied) -> None:
        for incoming, reason in applied.rejected:
            letter = DeadLetter(
                stage="store",
                reason=reason,
                input=incoming.value.decode("utf-8", "replace"),
                topic=incoming.topic,
                partition=incoming.partition,
                offset=incoming.offset,
                key=incoming.key.decode("utf-8", "replace") if incoming.key else None,
                failed_at=time.time(),
            )
            delivery = await self.producer.send(self.dead_letters_topic, letter.to_json(), key=incoming.key)
            await delivery
            log.warning(
                "store: %s at %s[%s]@%s: %s", incoming.role, incoming.topic, incoming.partition, incoming.offset, reason
            )

    def _check_registry(self) -> None:
        now = time.monotonic()
        if self.registry is None or now < self._next_registry_check:
            return
        self._next_registry_check = now + REGISTRY_CHECK_EVERY_S
        if self.registry.check():
            record_registry(self.writer, self.registry)

    async def _deliver_when_due(self) -> None:
        now = time.monotonic()
        if self.deliver is None or now < self._next_delivery:
            return
        self._next_delivery = now + DELIVER_EVERY_S
        try:
            for result in await self.deliver():
                log.info("store: monthly rating %s: %s", result.result, result.delivery.key)
        except Exception as exc:  # the next round tries again
            log.warning("store: monthly ratings not delivered (%s)", _short(exc))

    async def _erase_when_due(self) -> None:
        now = time.monotonic()
        if now < self._next_erase:
            return
        self._next_erase = now + ERASE_EVERY_S
        try:
            erased = await asyncio.to_thread(self.writer.erase_texts)
        except Exception as exc:  # the next round tries again
            log.warning("store: texts not erased (%s)", _short(exc))
            return
        if erased:
            log.info("store: erased %d texts past their retention", erased)


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"
