"""aiokafka's clients during a Kafka outage: a pause between failed metadata requests.

aiokafka (0.14) asks for metadata again as soon as an attempt fails: a producer's sender with records
for a partition without a known leader, and a consumer's fetcher, each wait for the next metadata
update, which fails at once while the broker is down, and ask again. A process spent most of a core
on it for as long as an outage lasted (the worker: 13.7 s of CPU in a 20 s outage), and logged a
line per attempt (bounded by :mod:`otklik.streams.logs`). :func:`install_metadata_backoff` makes a
failed update report its failure only after a pause, which paces every one of those loops.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["METADATA_BACKOFF_S", "install_metadata_backoff"]

# After a failed metadata update: the broker is back in the client's view at most this much later.
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
