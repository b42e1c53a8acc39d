"""The thin faust wiring of the pure cores: read a topic, call the core, write topics and metrics.

Agents run with concurrency=1 (higher values can commit offsets past records still in flight) and
take records in batches, so the per-record cost is the core's, not faust's.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from typing import Any, Protocol

from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.partitioner import DefaultPartitioner
from faust.exceptions import ProducerSendError

from otklik.agents.ingest.bounds import received_at_problem
from otklik.agents.ingest.envelope import (
    NormalizeTally,
    RejectedRecord,
    decode_raw,
    interaction_problem,
    listing_problem,
    manager_change,
    to_interactions,
)
from otklik.agents.registry import RegistryWatcher
from otklik.agents.responses.engine import ResponseEngine
from otklik.agents.text.triage import decide
from otklik.agents.wiring.page_pieces import PIECE_MAX, PieceTable, page_of
from otklik.agents.wiring.stream_clock import MAX_AHEAD_S, InputPartition, StreamClock
from otklik.schemas.managers import decode_manager_record, encode_manager_record
from otklik.schemas.records import LISTING_MARK, DeadLetter, Interaction, Listing, ResponseRecord

log = logging.getLogger("otklik.agents")
_PARTITIONER = DefaultPartitioner()

BATCH = 500  # normalize: small batches keep the latency to otklik.interactions low
RESPONSES_BATCH = 20_000  # responses: a page touched many times in a batch is saved once
RESPONSES_WITHIN_S = 1.0
BATCH_WITHIN_S = 0.05


# A page saved as one value (a small or busy one, and every page in earlier releases) is compressed when
# over this size: compressing every busy page once a second cost more CPU than the engine itself.
COMPRESS_ABOVE = 64 * 1024
_ZLIB = b"z"  # marks a compressed value (a JSON value never starts with it)


def pack_state(value: bytes) -> bytes:
    """A page's whole dumped state as saved in one value: compressed (and marked) when it is big."""
    return _ZLIB + zlib.compress(value, 1) if len(value) > COMPRESS_ABOVE else value


def unpack_state(value: bytes) -> bytes:
    """The inverse of :func:`pack_state` (values saved uncompressed or compressed load alike)."""
    return zlib.decompress(value[1:]) if value[:1] == _ZLIB else value


class PageStateMirror:
    """A pure core's state, page by page, mirrored into a faust table.

    The core (the response engine, the moderation watch) keeps every page of this worker's
    partitions in memory and says which pages changed (``take_dirty``) and what changed in each
    (``page_pieces``); after each batch those pieces are written to the table, each under its own
    key, whose changelog makes them survive a crash (:mod:`~otklik.agents.wiring.page_pieces`).
    After a rebalance the core is rebuilt from the table, which faust has recovered by then. The
    core must offer what :class:`~otklik.agents.wiring.page_pieces.PieceCore` lists.
    """

    def __init__(self, app, name: str, partitions: int, new_core) -> None:  # type: ignore[no-untyped-def]
        self.app = app
        self.new_core = new_core
        self.core = new_core()
        self.generation = 0  # bumped by every partition assignment
        self.loaded_generation = -1
        self.table = app.Table(
            name,  # changelog topic: <app id>-<name>-changelog
            default=None,
            key_type=bytes,  # the app's serializers are "raw": the core encodes page state itself
            value_type=bytes,
            partitions=partitions,
            # Written after a batch and by timers, outside one event's context: the partition is the
            # page's (see _partition_for_key), not the current event's.
            use_partitioner=True,
            extra_topic_configs={
                "max.message.bytes": str(2 * PIECE_MAX),
                # Compaction leaves the active segment alone: small, short segments keep the part of
                # the changelog a recovery reads beyond the live pieces small.
                "segment.bytes": str(64 * 1024 * 1024),
                "segment.ms": str(3600 * 1000),
            },
        )
        if hasattr(self.table, "partition_for_key"):  # faust's table (tests may pass a plain mapping)
            self.table.partition_for_key = self._partition_for_key
        self.partitions = list(range(partitions))  # of the changelog topic, from the broker once known
        self._partition_of: dict[bytes, int] = {}
        self.pieces = PieceTable(self.table, unpack_state, pack_state)

        # Held by whatever uses or replaces the core (an agent's batch, a timer's tick, a rebuild) until
        # it is done: the core must never be replaced under a batch still applying events to it.
        self.lock = asyncio.Lock()
        self.held: set[int] = set()  # the partitions whose pages the core holds

        @app.on_partitions_assigned.connect
        async def _assigned(sender, assigned, **kwargs) -> None:  # type: ignore[no-untyped-def]
            self.generation += 1
            async with self.lock:
                if self.held - self.active_partitions():
                    # Pages moved to another worker: this one shows none until it has rebuilt from
                    # the recovered table (below), rather than pages that are no longer its own. Not
                    # loaded now: before recovery the table may hold part of a save.
                    self.core = self.new_core()
                    self.held = set()

        if hasattr(self.table, "on_recover"):  # faust's table (tests may pass a plain mapping)

            @self.table.on_recover
            async def _recovered() -> None:
                # Rebuilt as soon as faust has recovered the table, not at the next batch or tick:
                # until then the pages gained would be missing from the metrics and the read API.
                async with self.lock:
                    await self.ensure_loaded()

    @property
    def ready(self) -> bool:
        return self.generation > 0

    async def ensure_loaded(self) -> None:
        """Rebuild from the table once after each assignment."""
        if self.loaded_generation == self.generation:
            return
        # Table writes pick their partition from the producer's metadata of the changelog topic,
        # which a fresh producer may not have yet: wait for it once, here, where we may await.
        producer = self.app.producer._ensure_producer()  # faust's aiokafka producer
        found = await producer.partitions_for(self.table.changelog_topic.get_topic_name())
        if found and sorted(found) != self.partitions:
            self.partitions, self._partition_of = sorted(found), {}
        active = self.active_partitions()
        self.core = self.new_core()
        self.held = active
        pages = self.pieces.load(self.core, lambda key: self._partition_for_key(key) in active)
        self.loaded_generation = self.generation
        log.info(
            "%s state rebuilt from its table: %d pages of partitions %s",
            self.table.name,
            pages,
            ",".join(map(str, sorted(active))) or "none",
        )

    def active_partitions(self) -> set[int]:
        """The changelog partitions this worker holds now: those of the input partitions it reads.
        The table holds more (docs/data-flow.md, "Several workers"): standby copies of other workers'
        partitions, and what this worker held before a rebalance."""
        topic = self.table.changelog_topic.get_topic_name()
        return {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == topic}

    def holds(self, page: str) -> bool:
        """Whether ``page`` is this worker's now."""
        return self._partition_for_key(page.encode()) in self.active_partitions()

    def save(self) -> None:
        """Write what changed in the pages that changed (by events or by timers). After a rebalance
        that came during the batch, only the pages still this worker's: the others' new holders
        recover them and read their events again (offsets of revoked partitions are not committed)."""
        if self.loaded_generation == self.generation:
            self.pieces.save(self.core)
            return
        active = self.active_partitions()
        self.pieces.save(self.core, lambda page: self._partition_for_key(page.encode()) in active)

    def _partition_for_key(self, key: bytes) -> int:
        """The changelog partition of any key of a page: the one the producer's partitioner gives the
        page id's bytes, as it did for the page's records on otklik.interactions (same key bytes, same
        partition count), so that a page's state is recovered by the worker that reads its events."""
        page = page_of(key)
        partition = self._partition_of.get(page)
        if partition is None:
            partition = self._partition_of[page] = _PARTITIONER(page, self.partitions, self.partitions)
        return partition


class Worker(Protocol):
    """What the agents need of the worker app (``otklik.streams.worker.app.OtklikApp``)."""

    faust: Any
    topics: Any
    metrics: Any
    settings: Any
    registry_watcher: Any
    responses_state: Any
    moderation_state: Any
    stream_time: Any


def register_agents(otk: Worker) -> None:
    app, topics, metrics, settings = otk.faust, otk.topics, otk.metrics, otk.settings
    watcher = otk.registry_watcher = RegistryWatcher(settings.registry)
    page_config = watcher.page_config

    async def dead_letter(event, stage: str, reason: str) -> None:  # type: ignore[no-untyped-def]
        message = event.message
        record = DeadLetter(
            stage=stage,
            reason=reason,
            input=(message.value or b"").decode("utf-8", errors="replace"),
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key.decode("utf-8", errors="replace") if message.key else None,
            failed_at=time.time(),
        )
        metrics.dead_letters.labels(stage).inc()
        log.warning("dead letter %s@%s/%s: %s", message.topic, message.partition, message.offset, reason)
        await topics.dead_letters.send(key=message.key, value=record.to_json())

    interactions_topic = topics.interactions.get_topic_name()
    raw_topic = topics.raw.get_topic_name()
    managers_topic = topics.managers.get_topic_name()

    # The response engine's deadlines and the moderation watch's pass by the stream's own clock
    # (docs/responses.md, "Stream time"): each agent's own, as each reads otklik.interactions at its own pace.
    def new_stream_clock() -> StreamClock:
        return StreamClock(interactions_topic, raw_topic if "normalize" in settings.agents else None)

    stream_clock = new_stream_clock() if "responses" in settings.agents else None
    moderation_clock = new_stream_clock() if "moderation" in settings.agents else None
    clocks = [clock for clock in (stream_clock, moderation_clock) if clock is not None]

    def mark_processed(topic: str, events, clock: StreamClock | None = None) -> None:  # type: ignore[no-untyped-def]
        """Tell the stream clocks how far an agent has processed its input: ``clock``, the agent's own
        (otklik.interactions), or every clock (None: otklik.raw, which the normalize agent reads for all)."""
        targets = clocks if clock is None else [clock]
        if targets:
            mono = time.monotonic()
            for event in events:
                for target in targets:
                    target.processed(topic, event.message.partition, event.message.offset, mono)

    def stream_now(clock: StreamClock | None = stream_clock) -> int | None:
        """The stream time now of ``clock`` (the response engine's unless told), from what the consumer
        knows of each assigned input partition."""
        if clock is None:
            return None
        consumer = app.consumer
        try:
            assigned = consumer.assignment()
        except Exception:  # no consumer yet, or rebalancing: the last stream time stands
            assigned = set()
        inputs = []
        for tp in assigned:
            if tp.topic != interactions_topic and tp.topic != raw_topic:
                continue
            try:
                highwater = consumer.highwater(tp)
                # When the consumer last heard the high-water mark (aiokafka keeps it per partition).
                polled = consumer._thread._ensure_consumer().last_poll_timestamp(tp)
            except Exception:  # not fetched yet, or rebalancing: unknown, so the partition counts as behind
                highwater = polled = None
            inputs.append(
                InputPartition(
                    tp.topic,
                    tp.partition,
                    highwater,
                    None if polled is None else polled / 1000,
                    consumer._committed_offset.get(tp),
                )
            )
        return clock.now(time.time(), time.monotonic(), inputs)

    otk.stream_time = stream_now

    if clocks:

        @app.on_partitions_assigned.connect
        async def _reassigned(sender, assigned, **kwargs) -> None:  # type: ignore[no-untyped-def]
            kept = [tp.partition for tp in assigned if tp.topic == interactions_topic]
            for clock in clocks:
                clock.forget(kept)

    async def produce(topic: str, key: bytes, value: bytes):  # type: ignore[no-untyped-def]
        """Hand a record to the producer (partitioned by its key) and return its delivery future.

        Straight to faust's producer rather than through Topic.send: a third of the worker's time
        went into the channel machinery around each message. faust flushes the producer before it
        commits offsets, so a record sent here is durable before its input counts as processed."""
        return await app.producer.send(topic, key, value, None, None, None)

    async def produce_or_dead_letter(event, stage: str, topic: str, key: bytes, value: bytes) -> bool:  # type: ignore[no-untyped-def]
        """:func:`produce`, but a record the broker refuses for itself (too large) is its input's dead
        letter; an unavailable broker still stops the agent, whose input is then read again."""
        try:
            await produce(topic, key, value)
        except ProducerSendError as exc:
            if not isinstance(exc.__cause__, MessageSizeTooLargeError):
                raise
            await dead_letter(event, stage, f"output to {topic}: {len(value)} bytes, over the topic's limit")
            return False
        return True

    async def write_then_save(state: PageStateMirror, topic, records, observe) -> None:  # type: ignore[no-untyped-def]
        """Count records in the metrics (``observe``), write them, wait for the broker's acks, and only
        then save the core's changed pages: after a crash a record may repeat (same content), never go
        missing. A record that cannot be encoded is a dead letter of its own; the others are written."""
        name = topic.get_topic_name()
        encoded = []
        for r in records:
            try:
                encoded.append((r.page.encode(), r.to_json()))
            except Exception as exc:  # one record's values must not cost the batch's others
                reason = f"output to {name} not encodable: {type(exc).__name__}: {exc}"
                log.error("record of %s: %s", r.item, reason)
                metrics.dead_letters.labels("output").inc()
                letter = DeadLetter(stage="output", reason=reason, input=r.item, topic=name, failed_at=time.time())
                await topics.dead_letters.send(key=r.page.encode(), value=letter.to_json())
                continue
            observe(r)
        futures = [await produce(name, key, value) for key, value in encoded]
        for fut in futures:
            await fut
        state.save()

    def interactions_of(events):  # type: ignore[no-untyped-def]
        """Decoded interaction records of a batch, each with its event (for dead letters)."""
        for event in events:
            value = event.message.value or b""
            try:
                # A catch-up's listing shares the topic (docs/responses.md, "A comment the API no longer returns").
                ia = Listing.from_json(value) if LISTING_MARK in value else Interaction.from_json(value)
            except Exception as exc:
                yield event, exc
                continue
            # Any producer may write otklik.interactions: its times are bounded as the normalizer's are.
            problem = interaction_problem(ia) if type(ia) is Interaction else listing_problem(ia)
            yield event, ia if problem is None else RejectedRecord("responses", problem)

    if "normalize" in settings.agents:

        @app.agent(topics.raw, concurrency=1, name="otklik.normalize")
        async def normalize(stream):  # type: ignore[no-untyped-def]
            """otklik.raw → otklik.interactions; anything that fails → otklik.dead-letters with the reason."""
            async for events in stream.take_events(BATCH, within=BATCH_WITHIN_S):
                # Metrics are tallied here and applied once per batch: updating the labelled metrics per
                # record cost ~7 µs, four times normalizing it.
                tally = NormalizeTally()
                now = time.time()  # the receiving clock of the bounds (docs/data-flow.md, "Bounded input")
                for event in events:
                    # Every step of one record, encoding its output included, fails for that record
                    # alone: a dead letter with the reason, and the batch goes on.
                    try:
                        envelope = decode_raw(event.message.value, now)
                        tally.raw[envelope.platform] += 1
                        records = to_interactions(envelope, settings.tg_links)
                        encoded = [(r.page.encode(), r.to_json()) for r in records]
                        # Nothing measured: perhaps a change of the page's managers (otklik.managers).
                        change = None if records else manager_change(envelope)
                    except RejectedRecord as exc:
                        if exc.stage == "decode":
                            tally.raw["unknown"] += 1
                        await dead_letter(event, exc.stage, exc.reason)
                        continue
                    except Exception as exc:  # a bug must cost one record, not the worker
                        log.exception("normalize failed on %s/%s", event.message.partition, event.message.offset)
                        await dead_letter(event, "normalize", f"internal error: {type(exc).__name__}: {exc}")
                        continue
                    tally.last_seen[envelope.platform, envelope.source] = envelope.received_at
                    for record, (key, value) in zip(records, encoded):
                        if await produce_or_dead_letter(event, "normalize", interactions_topic, key, value):
                            tally.interactions[record.platform, record.action] += 1
                    if change is not None:
                        value = encode_manager_record(change)
                        await produce_or_dead_letter(event, "normalize", managers_topic, change.page.encode(), value)
                mark_processed(raw_topic, events)
                metrics.observe_normalized(tally, len(events))

    if "responses" in settings.agents:
        assert stream_clock is not None
        responses_state = otk.responses_state = PageStateMirror(
            app,
            "pages",
            settings.partitions,
            lambda: ResponseEngine(
                page_config, late_window_s=settings.late_window_s, retention_s=settings.retention_s, triage=decide
            ),
        )

        def observe_response(record: ResponseRecord) -> None:
            metrics.observe_response(record, page_config(record.page))

        @app.agent(topics.interactions, concurrency=1, name="otklik.responses")
        async def responses(stream):  # type: ignore[no-untyped-def]
            """otklik.interactions → the response engine → otklik.responses, state in the pages table."""
            async for events in stream.take_events(RESPONSES_BATCH, within=RESPONSES_WITHIN_S):
                async with responses_state.lock:  # see PageStateMirror.lock
                    await responses_state.ensure_loaded()
                    engine = responses_state.core
                    out: list[ResponseRecord] = []
                    # A received_at beyond the limit moves no clock (docs/responses.md, "Stream time").
                    wall = time.time()
                    limit = stream_clock.limit(wall)
                    for event, ia in interactions_of(events):
                        if isinstance(ia, Exception):
                            if isinstance(ia, RejectedRecord):
                                await dead_letter(event, "responses", ia.reason)
                                continue
                            await dead_letter(
                                event, "responses", f"not an interaction record: {type(ia).__name__}: {ia}"
                            )
                            continue
                        stream_clock.observe(event.message.partition, ia.received_at, wall)
                        try:
                            if type(ia) is Listing:
                                out.extend(engine.listing(ia, limit))
                            else:
                                out.extend(engine.process(ia, limit))
                        except Exception as exc:  # a bug must cost one record, not the worker
                            log.exception("response engine failed on %s", ia.item)
                            await dead_letter(event, "responses", f"internal error: {type(exc).__name__}: {exc}")
                    mark_processed(interactions_topic, events, stream_clock)
                    await write_then_save(responses_state, topics.responses, out, observe_response)
                metrics.count_processed("responses", len(events))

        @app.timer(interval=settings.tick_interval_s)
        async def deadlines() -> None:
            """Open items that passed their deadline, settling and expiry, even when no event comes: at the
            stream time, never the wall clock while the input is behind (docs/responses.md, "Stream time")."""
            if app.rebalancing or not responses_state.ready:
                return
            async with responses_state.lock:  # see PageStateMirror.lock
                await responses_state.ensure_loaded()
                now = stream_now()
                if now is None:
                    return  # not known yet: some partition has neither a record read nor its input caught up
                out = responses_state.core.tick(now)
                await write_then_save(responses_state, topics.responses, out, observe_response)

        @app.agent(topics.overrides, concurrency=1, name="otklik.overrides")
        async def overrides(stream):  # type: ignore[no-untyped-def]
            """otklik.overrides → the response engine: a person's correction re-judges the item."""
            from otklik.schemas.overrides import Override, OverrideError

            async for events in stream.take_events(BATCH, within=BATCH_WITHIN_S):
                async with responses_state.lock:  # see PageStateMirror.lock
                    await responses_state.ensure_loaded()
                    engine = responses_state.core
                    for event in events:
                        try:
                            correction = Override.parse(_loads(event.message.value))
                        except (OverrideError, ValueError) as exc:
                            await dead_letter(event, "overrides", f"not a correction: {exc}")
                            continue
                        # Its time goes into the page's state, which a time beyond 64 bits would keep from
                        # being saved ever after (docs/data-flow.md, "Bounded input").
                        problem = received_at_problem(correction.requested_at, time.time())
                        if problem is not None:
                            await dead_letter(event, "overrides", f"requested_at: {problem}")
                            continue
                        held = engine.override(
                            correction.page,
                            correction.item,
                            correction.needs_answer,
                            correction.by,
                            int(correction.requested_at),
                            correction.note,
                            int(time.time()) + MAX_AHEAD_S,
                        )
                        log.info(
                            "correction of %s by %s: needs_answer=%s (%s)",
                            correction.item,
                            correction.by,
                            correction.needs_answer,
                            "applied" if held else "kept until the item arrives",
                        )
                    responses_state.save()

        @app.agent(topics.managers, concurrency=1, name="otklik.managers")
        async def managers(stream):  # type: ignore[no-untyped-def]
            """otklik.managers → the response engine: each page's managers, kept as time spans
            (docs/responses.md, "Page replies")."""
            async for events in stream.take_events(BATCH, within=BATCH_WITHIN_S):
                async with responses_state.lock:  # see PageStateMirror.lock
                    await responses_state.ensure_loaded()
                    engine = responses_state.core
                    for event in events:
                        try:
                            record = decode_manager_record(event.message.value or b"")
                        except ValueError as exc:  # msgspec's DecodeError is one
                            await dead_letter(event, "managers", f"not a record of managers: {exc}")
                            continue
                        # Its time goes into the page's state (docs/data-flow.md, "Bounded input").
                        problem = received_at_problem(record.at, time.time())
                        if problem is not None:
                            await dead_letter(event, "managers", f"at: {problem}")
                            continue
                        changed = engine.apply_managers(record, int(time.time()) + MAX_AHEAD_S)
                        if changed:
                            log.info("managers of %s: %d role(s) changed", record.page, len(changed))
                    responses_state.save()

        metrics.prime_areas(watcher.registry.pages)
        metrics.watch_engine(lambda: responses_state.core, stream_now)
        metrics.watch_unknown_page_events(lambda: responses_state.core.unknown_page_events)

    if "moderation" in settings.agents:
        from otklik.agents.moderation_watch import ModerationWatch
        from otklik.agents.text.moderation import default_detector

        detector = default_detector()
        moderation_state = otk.moderation_state = PageStateMirror(
            app, "moderation", settings.partitions, lambda: ModerationWatch(page_config, detector)
        )

        assert moderation_clock is not None

        @app.agent(topics.interactions, concurrency=1, name="otklik.moderation")
        async def moderation(stream):  # type: ignore[no-untyped-def]
            """otklik.interactions → labels, time visible, deflections → otklik.moderation."""
            async for events in stream.take_events(RESPONSES_BATCH, within=RESPONSES_WITHIN_S):
                async with moderation_state.lock:  # see PageStateMirror.lock
                    await moderation_state.ensure_loaded()
                    watch = moderation_state.core
                    out = []
                    wall = time.time()
                    for event, ia in interactions_of(events):
                        if isinstance(ia, Exception):
                            continue  # the responses agent dead-letters it once
                        # How far this agent has read, by the records' own times (a bad one moves nothing).
                        moderation_clock.observe(event.message.partition, ia.received_at, wall)
                        try:
                            if type(ia) is Listing:  # a catch-up's listing: texts removed unseen
                                out.extend(watch.listing(ia))
                            else:
                                out.extend(watch.process(ia))
                        except Exception as exc:
                            log.exception("moderation failed on %s", ia.item)
                            await dead_letter(event, "moderation", f"internal error: {type(exc).__name__}: {exc}")
                    mark_processed(interactions_topic, events, moderation_clock)
                    await write_then_save(moderation_state, topics.moderation, out, metrics.observe_moderation)
                metrics.count_processed("moderation", len(events))

        @app.timer(interval=settings.tick_interval_s)
        async def moderation_deadlines() -> None:
            """Offensive texts still visible past their moderation deadline: at this agent's stream time,
            never the wall clock while its input is behind (docs/moderation.md, "What the watch measures")."""
            if app.rebalancing or not moderation_state.ready:
                return
            async with moderation_state.lock:  # see PageStateMirror.lock
                await moderation_state.ensure_loaded()
                now = stream_now(moderation_clock)
                if now is None:
                    return  # not known yet: some partition has neither a record read nor its input caught up
                out = moderation_state.core.tick(now)
                await write_then_save(moderation_state, topics.moderation, out, metrics.observe_moderation)

        metrics.watch_moderation(lambda: moderation_state.core, lambda: stream_now(moderation_clock))

    metrics.watch_consumer(lambda: app.consumer)

    @app.timer(interval=settings.tick_interval_s)
    async def registry_reload() -> None:
        """Reload the registry when its file changed; cores look pages up anew."""
        if watcher.check() and otk.responses_state is not None:
            metrics.prime_areas(watcher.registry.pages)  # areas new to the registry
            otk.responses_state.core.reload_config()  # it caches page configs; the moderation watch does not


def _loads(value: bytes | None):  # type: ignore[no-untyped-def]
    import orjson

    if not value:
        raise ValueError("empty record")
    data = orjson.loads(value)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data
