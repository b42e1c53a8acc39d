"""The thin faust wiring of the pure cores: read a topic, call the core, write topics and metrics.

Agents run with concurrency=1 (higher values can commit offsets past records still in flight) and
take records in batches, so the per-record cost is the core's, not faust's.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from otklik.agents.ingest import RejectedRecord, decode_raw, to_interactions
from otklik.agents.responses import ResponseEngine
from otklik.schemas.records import DeadLetter, Interaction, ResponseRecord
from otklik.schemas.registry import Registry, RegistryError, load_registry

if TYPE_CHECKING:
    from otklik.streams.app import OtklikApp

log = logging.getLogger("otklik.agents")

BATCH = 500
BATCH_WITHIN_S = 0.05


class RegistryWatcher:
    """The page registry, reloaded when its file changes. A bad file at start-up stops the worker
    (with the file, the entry and the problem); a bad edit later is logged and the last good
    registry stays in force, so one typo does not stop the measurement."""

    def __init__(self, path) -> None:  # type: ignore[no-untyped-def]
        self.path = path
        self.registry: Registry = load_registry(path) if path else Registry.from_mapping({}, source="<defaults>")
        self._stamp = self._stat()
        self.reloads = 0
        self.last_error: str | None = None

    def _stat(self) -> tuple[float, int] | None:
        if not self.path:
            return None
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime, st.st_size)

    def check(self) -> bool:
        """Reload when the file changed; True when the registry in force changed."""
        stamp = self._stat()
        if stamp is None or stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            fresh = load_registry(self.path)
        except RegistryError as exc:
            self.last_error = str(exc)
            log.error("registry not reloaded, the previous one stays in force: %s", exc)
            return False
        self.last_error = None
        if fresh.digest == self.registry.digest:
            return False
        self.registry = fresh
        self.reloads += 1
        log.info("registry reloaded: %r", fresh)
        return True


class LiveResponses:
    """The response engine inside the worker: its state mirrored, page by page, into a faust table.

    The engine keeps every page of this worker's partitions in memory; after each batch, the pages
    that changed are written once to the table (whose changelog makes them survive a crash). After a
    rebalance the engine is rebuilt from the table, which faust has recovered by then.
    """

    def __init__(self, otk: OtklikApp) -> None:
        self.settings = otk.settings
        self.watcher = RegistryWatcher(otk.settings.registry)
        self.engine = self._new_engine()
        self.generation = 0  # bumped by every partition assignment
        self.loaded_generation = -1

    def _new_engine(self) -> ResponseEngine:
        return ResponseEngine(
            self.page_config,
            late_window_s=self.settings.late_window_s,
            retention_s=self.settings.retention_s,
        )

    def page_config(self, page: str):  # type: ignore[no-untyped-def]
        return self.watcher.registry.page(page)

    def rebuild_from(self, table) -> int:  # type: ignore[no-untyped-def]
        """Drop the in-memory state and load every page the table holds for our partitions."""
        self.engine = self._new_engine()
        pages = 0
        for key, value in table.items():
            if value:
                self.engine.load_page(key.decode(), value)
                pages += 1
        self.loaded_generation = self.generation
        return pages


def register_agents(otk: OtklikApp) -> None:
    app, topics, metrics = otk.faust, otk.topics, otk.metrics
    live = otk.live = LiveResponses(otk)
    pages_table = app.Table(
        "pages",  # changelog topic: <app id>-pages-changelog
        default=None,
        key_type=bytes,  # the app's serializers are "raw": the engine encodes page state itself
        value_type=bytes,
        partitions=otk.settings.partitions,
        # Written after a batch and by the deadline timer, outside one event's context: the key's
        # partition comes from the producer's partitioner, which is the one that keyed the page's
        # records on otklik.interactions (same key bytes, same partition count).
        use_partitioner=True,
    )

    @app.on_partitions_assigned.connect
    async def _assigned(sender, assigned, **kwargs) -> None:  # type: ignore[no-untyped-def]
        live.generation += 1

    def ensure_loaded() -> None:
        if live.loaded_generation != live.generation:
            pages = live.rebuild_from(pages_table)
            log.info("response state rebuilt from the table: %d pages", pages)

    async def emit(records: list[ResponseRecord]) -> None:
        """Write response records and wait for the broker's acks before the state that follows
        them is saved: after a crash a record may repeat (same content), never go missing."""
        futures = []
        for record in records:
            metrics.observe_response(record, live.page_config(record.page))
            futures.append(await topics.responses.send(key=record.page.encode(), value=record.to_json()))
        for fut in futures:
            await fut

    def save() -> None:
        """Write the pages that changed (by events or by the timer) once each."""
        for page in live.engine.take_dirty():
            pages_table[page.encode()] = live.engine.dump_page(page)

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

    @app.agent(topics.raw, concurrency=1, name="otklik.normalize")
    async def normalize(stream):  # type: ignore[no-untyped-def]
        """otklik.raw → otklik.interactions; anything that fails → otklik.dead-letters with the reason."""
        async for events in stream.take_events(BATCH, within=BATCH_WITHIN_S):
            for event in events:
                try:
                    envelope = decode_raw(event.message.value)
                    metrics.raw_records.labels(envelope.platform).inc()
                    records = to_interactions(envelope)
                except RejectedRecord as exc:
                    if exc.stage == "decode":
                        metrics.raw_records.labels("unknown").inc()
                    await dead_letter(event, exc.stage, exc.reason)
                    continue
                except Exception as exc:  # a bug must cost one record, not the worker
                    log.exception("normalize failed on %s/%s", event.message.partition, event.message.offset)
                    await dead_letter(event, "normalize", f"internal error: {type(exc).__name__}: {exc}")
                    continue
                metrics.last_event.labels(envelope.platform).set(envelope.received_at)
                for record in records:
                    metrics.interactions.labels(record.platform, record.action).inc()
                    await topics.interactions.send(key=record.page.encode(), value=record.to_json())

    @app.agent(topics.interactions, concurrency=1, name="otklik.responses")
    async def responses(stream):  # type: ignore[no-untyped-def]
        """otklik.interactions → the response engine → otklik.responses, state in the pages table."""
        async for events in stream.take_events(BATCH, within=BATCH_WITHIN_S):
            ensure_loaded()
            out: list[ResponseRecord] = []
            for event in events:
                try:
                    ia = Interaction.from_dict(_loads(event.message.value))
                except Exception as exc:
                    await dead_letter(event, "responses", f"not an interaction record: {type(exc).__name__}: {exc}")
                    continue
                try:
                    out.extend(live.engine.process(ia))
                except Exception as exc:  # a bug must cost one record, not the worker
                    log.exception("response engine failed on %s", ia.item)
                    await dead_letter(event, "responses", f"internal error: {type(exc).__name__}: {exc}")
                    continue
            await emit(out)
            save()

    @app.timer(interval=otk.settings.tick_interval_s)
    async def deadlines() -> None:
        """Open items that passed their deadline, settling and expiry, even when no event comes."""
        if app.rebalancing or live.generation == 0:
            return
        if live.watcher.check():
            live.engine.reload_config()
        ensure_loaded()
        out = live.engine.tick(int(time.time()))
        await emit(out)
        save()

    metrics.watch_engine(lambda: live.engine)


def _loads(value: bytes | None):  # type: ignore[no-untyped-def]
    import orjson

    if not value:
        raise ValueError("empty record")
    data = orjson.loads(value)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data
