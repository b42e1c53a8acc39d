"""What saving a page's state costs as its backlog grows: events per CPU-second through the response
engine plus the save after each batch, and bytes written to the changelog per event, for a page holding
100 open items (the baseline) and one holding 100,000, in the same run (issue 19, finding 10).

The stream keeps the backlog where it is: half the events are new citizen comments, half are page
replies that each answer one item of the backlog (which then closes). After every batch the engine
ticks and the worker's mirror (``PageStateMirror``) saves, into a table that counts what reaches the
changelog: each key and value written, each tombstone's key. Also the CPU time to rebuild the page
from that table, as after a restart. CPU figures are medians of three runs. Run: ``python -m bench
state-cost`` (``make bench`` runs it with the others).
"""

from __future__ import annotations

import gc
import hashlib
import random
import statistics
import sys
import time
from types import SimpleNamespace
from typing import Any

import orjson

from otklik.agents.registry import Registry
from otklik.agents.responses.engine import ResponseEngine
from otklik.agents.wiring import pipeline
from otklik.schemas.records import Interaction

SIZES = (100, 100_000)
EVENTS = 20_000
BATCH = 100  # events of the page between two saves
ROUNDS = 3  # runs per size; CPU figures are their medians (the machine may be shared)
PAGE = "vk:200000001"
START = 1764230400


class CountingTable(dict):  # type: ignore[type-arg]
    """A table that counts the bytes a faust table would send to its changelog."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes = 0
        self.records = 0

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.bytes += len(key) + len(value)
        self.records += 1
        super().__setitem__(key, value)

    def __delitem__(self, key: bytes) -> None:
        self.bytes += len(key)  # a tombstone
        self.records += 1
        super().__delitem__(key)


def _comment(i: int, t: int) -> Interaction:
    post = 1 + i // 10  # a neglected page: many posts, a few comments each
    item = f"{PAGE}:wall:{post}:{i}"
    return Interaction(
        platform="vk",
        page=PAGE,
        action="new",
        object_kind="wall",
        object_id=f"{PAGE}:wall:{post}",
        item=item,
        seq=i,
        received_at=t,
        created_at=t,
        event_id=hashlib.sha1(f"c{i}".encode()).hexdigest(),
        author=f"vk:user:{10_000_000 + i}",
        thread_root=item,
        text="Когда отремонтируют дорогу на улице Ленина?",
    )


def _reply(i: int, to: Interaction, t: int) -> Interaction:
    return Interaction(
        platform="vk",
        page=PAGE,
        action="new",
        object_kind="wall",
        object_id=to.object_id,
        item=f"{to.object_id}:{10_000_000 + i}",
        seq=10_000_000 + i,
        received_at=t,
        created_at=t,
        event_id=hashlib.sha1(f"r{i}".encode()).hexdigest(),
        author=PAGE,
        thread_root=to.item,
        reply_to_item=to.item,
        reply_to_author=to.author,
        text="Добрый день! Ремонт запланирован на май.",
    )


def _mirror(table: CountingTable, engine: ResponseEngine) -> tuple[Any, Any]:
    """The worker's mirror of ``engine`` into ``table``, and its save (the part that writes the table)."""
    app = SimpleNamespace(
        Table=lambda *args, **kwargs: table, on_partitions_assigned=SimpleNamespace(connect=lambda handler: handler)
    )
    mirror = pipeline.PageStateMirror(app, "pages", 1, lambda: engine)
    mirror.core = engine
    if hasattr(mirror, "pieces"):  # its save then sends the writes to the broker, which a table counts here
        return mirror, lambda: mirror.pieces.save(engine)
    return mirror, mirror.save


def _rebuild(mirror: Any, registry: Registry) -> tuple[ResponseEngine, float]:
    """The engine rebuilt from the mirror's table, and the CPU seconds it took."""
    fresh = ResponseEngine(registry.page)
    t0 = time.process_time()
    if hasattr(mirror, "pieces"):  # pieces, under their own keys
        mirror.pieces.load(fresh)
    else:  # one value per page (before)
        for key, value in mirror.table.items():
            fresh.load_page(key.decode(), pipeline.unpack_state(value))
    return fresh, time.process_time() - t0


def _same(a: bytes, b: bytes) -> bool:
    """Two dumps of a page hold the same state (kept replies in any order of their objects)."""
    x, y = orjson.loads(a), orjson.loads(b)
    x["replies"].sort()
    y["replies"].sort()
    return bool(x == y)


def run(size: int, registry: Registry) -> dict[str, float]:
    engine = ResponseEngine(registry.page)
    table = CountingTable()
    mirror, save = _mirror(table, engine)
    t = START
    backlog = []
    for i in range(size):
        ia = _comment(i, t)
        engine.process(ia)
        backlog.append(ia)
    save()  # the page as the table already holds it
    for _ in range(3):  # deadlines computed, as the worker's timer does soon after items arrive
        engine.tick(t + 1)
        save()
    rng = random.Random(size)
    stream = []
    n = size
    for k in range(EVENTS):
        t += 1
        if k % 2:
            ia = _comment(n, t)
            n += 1
            backlog.append(ia)
        else:  # a reply to an item of the backlog, chosen at random (it was never answered before)
            j = rng.randrange(len(backlog))
            backlog[j], backlog[-1] = backlog[-1], backlog[j]
            ia = _reply(k, backlog.pop(), t)
        stream.append(ia)
    written, records = table.bytes, table.records
    engine_s = save_s = 0.0
    for start in range(0, EVENTS, BATCH):
        t0 = time.process_time()
        for ia in stream[start : start + BATCH]:
            engine.process(ia)
        engine.tick(ia.received_at)  # the worker's timer: settles, reports, prunes the late window
        t1 = time.process_time()
        save()
        t2 = time.process_time()
        engine_s += t1 - t0
        save_s += t2 - t1
    fresh, load_s = _rebuild(mirror, registry)
    assert _same(fresh.dump_page(PAGE), engine.dump_page(PAGE)), "the table does not restore the page"
    return {
        "open": len(engine.pages[PAGE].items),
        "events_per_s": EVENTS / (engine_s + save_s),
        "engine_per_s": EVENTS / engine_s,
        "bytes_per_event": (table.bytes - written) / EVENTS,
        "records_per_event": (table.records - records) / EVENTS,
        "table_bytes": sum(len(k) + len(v) for k, v in table.items()),
        "load_ms": load_s * 1000,
    }


def main() -> None:
    registry = Registry.from_mapping(
        {"defaults": {"deadline": "8h working"}, "pages": [{"id": PAGE}]}, source="<bench>"
    )
    saving = "pieces" if hasattr(pipeline, "PieceTable") else "one value per page"
    print(f"saving: {sys.modules['otklik.agents.wiring.pipeline'].__file__} ({saving})")
    print(f"{EVENTS:,} events per page (half new comments, half replies closing a backlog item), saved every {BATCH}")
    results = {f"{size:,}": _median(size, registry) for size in SIZES}
    table = getattr(pipeline, "PieceTable", None)
    if table is not None:  # each way of saving on its own: the small page, which goes as one value, in pieces
        chooses = table.one_value
        table.one_value = staticmethod(lambda *args: False)
        try:
            results[f"{SIZES[0]:,}, in pieces"] = _median(SIZES[0], registry)
        finally:
            table.one_value = chooses
    print(
        f"{'page':>16} {'open items':>11} {'events/s':>9} {'engine only':>12} {'bytes/event':>12}"
        f" {'writes/event':>13} {'table bytes':>12} {'rebuild ms':>11}"
    )
    for name, r in results.items():
        print(
            f"{name:>16} {r['open']:>11,.0f} {r['events_per_s']:>9,.0f} {r['engine_per_s']:>12,.0f}"
            f" {r['bytes_per_event']:>12,.0f} {r['records_per_event']:>13.2f} {r['table_bytes']:>12,.0f}"
            f" {r['load_ms']:>11,.1f}"
        )
    small, big = results[f"{SIZES[0]:,}"], results[f"{SIZES[-1]:,}"]
    print(
        f"{SIZES[-1]:,} against {SIZES[0]:,} open items: events/s ×{big['events_per_s'] / small['events_per_s']:.2f}"
        f" (target ≥ 0.8), bytes/event ×{big['bytes_per_event'] / small['bytes_per_event']:.2f}"
    )


def _median(size: int, registry: Registry) -> dict[str, float]:
    rounds = []
    for _ in range(ROUNDS):
        gc.collect()
        rounds.append(run(size, registry))
    return {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}


if __name__ == "__main__":
    main()
