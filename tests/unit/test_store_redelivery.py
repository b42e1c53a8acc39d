"""A redelivered item leaves the same rows however the store's batches cut its deliveries
(docs/history.md, "Exactly-once rows").

VK delivers some events twice; the worker passes both deliveries of a new comment to
otklik.interactions, each with the time it was received. The store keeps the first (the item's
`received_at`, and its `received` event): a batch holding both deliveries must keep the same one as two
batches holding one each, as after a restart of the store between them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from otklik.agents.registry import Registry
from otklik.schemas.records import Interaction
from otklik.streams.store.db import migrate, open_engine
from otklik.streams.store.schema import item_events, items
from otklik.streams.store.writer import Incoming, StoreWriter

PAGE = "vk:300000000"
ITEM = f"{PAGE}:wall:1:5"
REGISTRY = Registry.from_mapping(
    {"defaults": {"timezone": "Europe/Moscow", "deadline": "8h working"}, "pages": [{"id": PAGE}]}
)


def _delivery(received_at: int, event_id: str) -> Incoming:
    interaction = Interaction(
        platform="vk",
        page=PAGE,
        action="new",
        object_kind="wall",
        object_id=f"{PAGE}:wall:1",
        item=ITEM,
        seq=5,
        received_at=received_at,
        event_id=event_id,
        created_at=1_790_000_000,
        author="vk:user:700000001",
        thread_root=ITEM,
        text="Когда починят дорогу?",
    )
    return Incoming("interactions", interaction.to_json())


FIRST = _delivery(1_790_000_001, "a1")
AGAIN = _delivery(1_790_000_026, "a2")  # the redelivery, received later


def _rows(tmp_path: Path, batches: list[list[Incoming]]) -> dict[str, Any]:
    engine = open_engine(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    migrate(engine)
    writer = StoreWriter(engine, REGISTRY.page, 10**10)
    for batch in batches:
        assert not writer.apply(batch).rejected
    with engine.connect() as connection:
        events = [
            tuple(row)
            for row in connection.execute(
                select(item_events.c.item, item_events.c.at, item_events.c.kind, item_events.c.detail)
            )
        ]
        received = connection.execute(select(items.c.received_at).where(items.c.item == ITEM)).scalar()
    engine.dispose()
    return {"events": events, "received_at": received}


def test_two_batches_keep_the_first_delivery(tmp_path):
    rows = _rows(tmp_path, [[FIRST], [AGAIN]])
    assert rows["received_at"] == 1_790_000_001
    assert rows["events"] == [(ITEM, 1_790_000_000, "received", '{"received_at":1790000001}')]


def test_one_batch_keeps_what_two_batches_keep(tmp_path):
    assert _rows(tmp_path / "one", [[FIRST, AGAIN]]) == _rows(tmp_path / "two", [[FIRST], [AGAIN]])
