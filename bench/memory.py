"""Worker memory per open item at 1,000,000 open items: the engine's objects plus the serialized
page states that the pages table holds, beside the memory of the interaction records themselves.

Event ids are shaped like VK's (40 hex digits): the engine keeps every event's id for a day to
recognise redeliveries, so their size matters."""

from __future__ import annotations

import gc
import hashlib
import statistics
import time

from otklik.agents.registry import Registry
from otklik.agents.responses.engine import ResponseEngine
from otklik.schemas.records import Interaction

PAGES = 5_000


def rss_bytes(pid: int | str = "self") -> int:
    """Resident memory of a process (this one by default)."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status")


def interactions(n: int, start: int):  # type: ignore[no-untyped-def]
    for i in range(n):
        group = 200_000_001 + i % PAGES
        post = 1 + (i // PAGES) % 40
        cid = i
        page = f"vk:{group}"
        yield Interaction(
            platform="vk",
            page=page,
            action="new",
            object_kind="wall",
            object_id=f"{page}:wall:{post}",
            item=f"{page}:wall:{post}:{cid}",
            seq=cid,
            received_at=start + i // 100,
            event_id=hashlib.sha1(i.to_bytes(8, "little")).hexdigest(),
            created_at=start + i // 100,
            author=f"vk:user:{10_000_000 + i}",
            thread_root=f"{page}:wall:{post}:{cid}",
            text="Когда отремонтируют дорогу на улице Ленина?",
        )


def main() -> None:
    from otklik.streams.settings import BenchSettings

    n = BenchSettings.from_env().bench_open_items
    start = 1764230400
    registry = Registry.from_mapping({"defaults": {"deadline": "8h working"}}, source="<bench>")

    # Baseline: the same records held in a list (what merely keeping the input would cost).
    gc.collect()
    before = rss_bytes()
    kept = list(interactions(n, start))
    baseline = (rss_bytes() - before) / n
    del kept
    gc.collect()

    before = rss_bytes()
    engine = ResponseEngine(registry.page)
    t0 = time.perf_counter()
    for ia in interactions(n, start):
        engine.process(ia)
    took = time.perf_counter() - t0
    gc.collect()
    engine_bytes = rss_bytes() - before
    open_count = sum(s.open_count for s in engine.snapshot(start + n // 100))
    tables = {page: engine.dump_page(page) for page in list(engine.pages)}
    gc.collect()
    total = rss_bytes() - before
    table_bytes = sum(len(v) for v in tables.values())
    print(f"open items                         {open_count:>12,}  on {len(engine.pages):,} pages")
    print(f"baseline: Interaction records kept {baseline:>12,.0f} bytes/item")
    print(f"engine state (RSS growth)          {engine_bytes / n:>12,.0f} bytes/item")
    print(f"+ serialized pages table (values)  {table_bytes / n:>12,.0f} bytes/item")
    print(f"worker state total (RSS growth)    {total / n:>12,.0f} bytes/item   (target <= 1,024)")
    print(f"ingest into the engine             {n / took:>12,.0f} items/s")
    del tables, engine
    print_dump_costs()


if __name__ == "__main__":
    main()


def dump_costs(sizes: tuple[int, ...] = (10, 100, 2_000), trials: int = 31) -> dict[int, tuple[float, float, int]]:
    """µs of CPU per ``dump_page`` of a page holding ``size`` open items: after one change (a new
    comment, what the worker writes after a batch) and cold (every block encoded, as after a load).
    Medians over ``trials`` fresh pages. Returns {size: (after_one_change_us, cold_us, bytes)}."""
    registry = Registry.from_mapping({"defaults": {"deadline": "8h working"}}, source="<bench>")
    start = 1764230400
    page = "vk:200000001"
    out = {}
    for size in sizes:
        changed: list[float] = []
        cold: list[float] = []
        length = 0
        for trial in range(trials):
            engine = ResponseEngine(registry.page)
            *earlier, change = _page_items(size + 1, start, trial)
            for ia in earlier:
                engine.process(ia)
            engine.dump_page(page)  # the table already holds the page: its encoding is cached
            engine.process(change)
            t0 = time.process_time()
            data = engine.dump_page(page)
            changed.append(time.process_time() - t0)
            length = len(data)
            engine.load_page(page, data)  # state as after a restart: nothing cached
            t0 = time.process_time()
            engine.dump_page(page)
            cold.append(time.process_time() - t0)
        out[size] = (statistics.median(changed) * 1e6, statistics.median(cold) * 1e6, length)
    return out


def _page_items(n: int, start: int, salt: int):  # type: ignore[no-untyped-def]
    page = "vk:200000001"
    for i in range(n):
        post = 1 + i % 40
        yield Interaction(
            platform="vk",
            page=page,
            action="new",
            object_kind="wall",
            object_id=f"{page}:wall:{post}",
            item=f"{page}:wall:{post}:{i}",
            seq=i,
            received_at=start + i,
            created_at=start + i,
            event_id=hashlib.sha1(f"{salt}:{i}".encode()).hexdigest(),
            author=f"vk:user:{10_000_000 + i}",
            thread_root=f"{page}:wall:{post}:{i}",
            text="Когда отремонтируют дорогу на улице Ленина?",
        )


def print_dump_costs() -> None:
    print("page dump (CPU time), after one change / cold (nothing cached):")
    for size, (changed, cold, length) in dump_costs().items():
        print(f"  {size:>6,} open items   {changed:>8,.1f} µs / {cold:>8,.1f} µs   ({length:,} bytes)")
