"""Helpers of the gateway's reliability scenarios: read back ``otklik.raw``, probe health and readiness."""

from __future__ import annotations

import re
import time

import aiohttp
import orjson


async def read_event_ids(bootstrap: str, topic: str) -> list[str | None]:
    """The event ids of every record of the topic up to its current end (None for bodies without one)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        assert tps, f"{topic} has no partitions"
        ends = await consumer.end_offsets(tps)
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, 0)
        ids: list[str] = []
        remaining = {tp for tp in tps if ends[tp] > 0}
        deadline = time.monotonic() + 60
        while remaining and time.monotonic() < deadline:
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                ids.extend(orjson.loads(r.value)["body"].get("event_id") for r in records if r.offset < ends[tp])
                if records and records[-1].offset >= ends[tp] - 1:
                    remaining.discard(tp)
        assert not remaining, f"could not read {topic} to its end"
        return ids
    finally:
        await consumer.stop()


async def probe(session: aiohttp.ClientSession, base: str) -> tuple[int, float | None]:
    """(/health's status, otklik_gateway_kafka_ready)."""
    async with session.get(base + "/health") as resp:
        health = resp.status
    async with session.get(base + "/metrics") as resp:
        found = re.search(r"^otklik_gateway_kafka_ready (\S+)$", await resp.text(), re.M)
    return health, float(found.group(1)) if found else None
