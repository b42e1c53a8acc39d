"""The thin faust wiring of the pure cores: read a topic, call the core, write topics and metrics.

Agents run with concurrency=1 (higher values can commit offsets past records still in flight) and
take records in batches, so the per-record cost is the core's, not faust's.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from otklik.agents.ingest import RejectedRecord, decode_raw, to_interactions
from otklik.schemas.records import DeadLetter

if TYPE_CHECKING:
    from otklik.streams.app import OtklikApp

log = logging.getLogger("otklik.agents")

BATCH = 500
BATCH_WITHIN_S = 0.05


def register_agents(otk: OtklikApp) -> None:
    app, topics, metrics = otk.faust, otk.topics, otk.metrics

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
