"""A correction's row does not depend on how its records fall into the store's batches
(docs/history.md, "Exactly-once rows").

The worker writes a corrected item's new judgement after the correction, but the store reads
otklik.overrides and otklik.responses as separate topics: after a restart, or reading a backlog, the
correction and that judgement can come in one batch, or the judgement first. Each order must leave the
row the calm order leaves: before = the judgement the correction changed, after = the one it led to.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from sqlalchemy import select

from otklik.agents.registry import Registry
from otklik.schemas.records import ResponseRecord
from otklik.streams.store.db import migrate, open_engine
from otklik.streams.store.schema import corrections
from otklik.streams.store.writer import Incoming, StoreWriter

PAGE = "vk:300000000"
ITEM = f"{PAGE}:wall:1:5"
REQUESTED_AT = 1_790_000_500.0
REGISTRY = Registry.from_mapping(
    {"defaults": {"timezone": "Europe/Moscow", "deadline": "8h working"}, "pages": [{"id": PAGE}]}
)


def _record(**fields: object) -> Incoming:
    base: dict[str, object] = dict(
        item=ITEM,
        page=PAGE,
        kind="comment",
        author="vk:user:700000001",
        created_at=1_790_000_000,
        deadline="8h working",
    )
    base.update(fields)
    return Incoming("responses", ResponseRecord(**base).to_json())  # type: ignore[arg-type]


EXCLUDED = _record(
    outcome="no_answer_needed",
    closed_at=1_790_000_000,
    latency_s=0,
    business_latency_s=0,
    breached=False,
    reason="acknowledgement",
    version=1,
)
OVERRIDE = Incoming(
    "overrides",
    orjson.dumps({"item": ITEM, "needs_answer": True, "by": "ops", "note": "a question", "requested_at": REQUESTED_AT}),
)
REJUDGED = _record(
    outcome="answered",
    closed_at=1_790_001_000,
    latency_s=1000,
    business_latency_s=1000,
    breached=False,
    extra={"override": {"needs_answer": True, "by": "ops", "at": REQUESTED_AT, "note": "a question", "previous": None}},
    version=2,
)


ANSWERED = _record(
    outcome="answered",
    closed_at=1_790_001_000,
    latency_s=1000,
    business_latency_s=1000,
    breached=False,
    responder=PAGE,
    version=1,
)
# A correction the worker writes no new record for (an answered item marked as needing none).
NOT_NEEDED = Incoming(
    "overrides",
    orjson.dumps(
        {"item": ITEM, "needs_answer": False, "by": "ops", "note": "a thank-you", "requested_at": REQUESTED_AT}
    ),
)


def _corrections(tmp_path: Path, batches: list[list[Incoming]]) -> list[tuple[object, ...]]:
    engine = open_engine(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    migrate(engine)
    writer = StoreWriter(engine, REGISTRY.page, 90 * 86400)
    for batch in batches:
        assert not writer.apply(batch).rejected
    columns = [c for c in corrections.columns if c.name != "id"]
    with engine.connect() as connection:
        rows = [tuple(row) for row in connection.execute(select(*columns))]
    engine.dispose()
    return rows


def test_a_correction_between_two_judgements_keeps_both(tmp_path):
    rows = _corrections(tmp_path, [[EXCLUDED], [OVERRIDE], [REJUDGED]])
    assert rows == [(ITEM, int(REQUESTED_AT), "ops", "a question", True, "no_answer_needed", False, "answered", False)]


@pytest.mark.parametrize(
    "batches",
    [
        pytest.param([[EXCLUDED, OVERRIDE, REJUDGED]], id="one batch"),
        pytest.param([[EXCLUDED], [OVERRIDE, REJUDGED]], id="correction with its re-judgement"),
        pytest.param([[EXCLUDED], [REJUDGED], [OVERRIDE]], id="re-judgement first"),
    ],
)
def test_a_correction_row_is_the_same_however_the_records_are_batched(tmp_path, batches):
    calm = _corrections(tmp_path / "calm", [[EXCLUDED], [OVERRIDE], [REJUDGED]])
    assert _corrections(tmp_path / "other", batches) == calm


def test_a_correction_no_record_carries_keeps_the_items_judgement_whatever_came_first(tmp_path):
    calm = _corrections(tmp_path / "calm", [[ANSWERED], [NOT_NEEDED]])
    assert calm == [(ITEM, int(REQUESTED_AT), "ops", "a thank-you", False, "answered", False, None, None)]
    assert _corrections(tmp_path / "other", [[NOT_NEEDED], [ANSWERED]]) == calm
