"""Creating otklik's topics before the worker subscribes to them.

faust creates the changelog topics of its tables, but not the topics its agents read: left to the
broker's auto-creation, a topic that appears after the group joined is picked up only at the next
metadata refresh. Creating them first (idempotently) makes the first records flow at once.
"""

from __future__ import annotations

import asyncio

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from otklik.streams.settings import TOPIC_NAMES, WorkerSettings

# Corrections are an audit trail, and managers' roles are judged by at any later time: kept forever.
TOPIC_CONFIGS = {TOPIC_NAMES["overrides"]: {"retention.ms": "-1"}, TOPIC_NAMES["managers"]: {"retention.ms": "-1"}}


async def ensure_topics(settings: WorkerSettings, timeout_s: float = 30.0) -> list[str]:
    """Create every otklik topic that does not exist yet; return the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap, request_timeout_ms=int(timeout_s * 1000))
    await asyncio.wait_for(admin.start(), timeout_s)
    try:
        existing = set(await admin.list_topics())
        wanted = [settings.topic(role) for role in TOPIC_NAMES]
        missing = [name for name in wanted if name not in existing]
        if missing:
            try:
                await admin.create_topics(
                    [
                        NewTopic(
                            name,
                            settings.partitions,
                            settings.replicas,
                            topic_configs=TOPIC_CONFIGS.get(name[len(settings.topic_prefix) :], {}),
                        )
                        for name in missing
                    ]
                )
            except TopicAlreadyExistsError:  # another worker won the race: fine
                pass
        return missing
    finally:
        await admin.close()
