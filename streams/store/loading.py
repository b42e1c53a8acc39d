"""`otklik store load`: `otklik replay` output, or a dump of otklik.responses, into the store.

docs/history.md, "Loading archives": a replay row is an item's final judgement under today's rules, so
it is written with :data:`REPLAY_VERSION`, above any version the worker writes: it replaces what the
store held for the item. A dumped record keeps its own version, as the live store would write it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

import orjson

from otklik.agents.replay import parse_time
from otklik.schemas.records import ResponseRecord
from otklik.streams.store.writer import Incoming, StoreWriter

__all__ = ["REPLAY_VERSION", "load_lines"]

# Above any item's count of records in the worker (each record of an item adds one).
REPLAY_VERSION: Final = 1_000_000_000

# Lines written per transaction.
_BATCH = 5000


def _record(data: dict[str, Any]) -> bytes:
    """A line as a record of otklik.responses: a dumped record as it is, a replay row converted."""
    if "version" in data:
        return orjson.dumps(data)
    created = parse_time(data["created_at"])
    closed = data.get("closed_at")
    record = ResponseRecord(
        item=data["item"],
        page=data["page"],
        kind=data["kind"],
        author=data["author"],
        created_at=created,
        outcome=data["outcome"],
        closed_at=parse_time(closed) if closed is not None else None,
        latency_s=data.get("latency_s"),
        business_latency_s=data.get("business_latency_s"),
        deadline=data["deadline"],
        breached=data["breached"],
        responder=data.get("responder"),
        reason=data.get("reason"),
        version=REPLAY_VERSION,
    )
    return record.to_json()


def load_lines(writer: StoreWriter, lines: Iterable[bytes]) -> tuple[int, list[tuple[int, str]]]:
    """Write every line; returns (records written, [(line number, reason)] of the lines refused)."""
    loaded = 0
    rejected: list[tuple[int, str]] = []
    batch: list[Incoming] = []
    numbers: list[int] = []

    def flush() -> None:
        nonlocal loaded
        applied = writer.apply(batch)
        refused = {id(incoming): reason for incoming, reason in applied.rejected}
        for number, incoming in zip(numbers, batch, strict=True):
            if id(incoming) in refused:
                rejected.append((number, refused[id(incoming)]))
        loaded += len(batch) - len(refused)
        batch.clear()
        numbers.clear()

    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = orjson.loads(line)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            value = _record(data)
        except (orjson.JSONDecodeError, ValueError, KeyError, TypeError) as exc:
            reason = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
            rejected.append((number, reason))
            continue
        batch.append(Incoming("responses", value))
        numbers.append(number)
        if len(batch) >= _BATCH:
            flush()
    if batch:
        flush()
    return loaded, rejected
