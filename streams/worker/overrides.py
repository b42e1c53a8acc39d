"""Writing corrections of triage to ``otklik.overrides`` (the record is :class:`otklik.schemas.overrides.Override`)."""

from __future__ import annotations

from otklik.schemas.overrides import Override


async def submit(bootstrap: str, topic: str, override: Override) -> None:
    """Write the correction to Kafka and wait for the broker's acknowledgement (acks=all)."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value=override.to_json(), key=override.page.encode())
    finally:
        await producer.stop()
