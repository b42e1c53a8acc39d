"""The history store (issue 15): ingest rate, the monthly rating's time, and bytes per stored item.

- **Ingest**: 200,000 records of otklik.responses (one item each, 1,000 pages) through
  ``StoreWriter.apply`` in the service's batches (``OTKLIK_STORE_BATCH``, 2,000), into SQLite and into
  PostgreSQL: decoding, the item's row, its upsert and its timeline event, one transaction a batch.
  Baseline, same run, same database: a bare batched INSERT (``executemany``) of the same item rows into
  a table of the items table's shape, one transaction a batch (decoding and row-making not timed).
  Target: at least 20,000 items/s.
- **Rating**: ``reports.rating(engine, month, by="page")`` over 1,000,000 items created in one month on
  5,000 pages (plus 100,000 in the months either side, and offensive-overdue findings for 1 % of items)
  on PostgreSQL, median of three runs. Baseline: ``SELECT count(*)`` over the same month's items.
  Target: at most 2 s.
- **Bytes per stored item**: the database's size after the ingest (SQLite: the file after a WAL
  checkpoint; PostgreSQL: ``pg_database_size``, which includes the empty database's own catalogue)
  divided by the items; also the items and item_events tables with their indexes alone (PostgreSQL).

PostgreSQL is a throwaway cluster of the tests' own (tests/postgres.py: Debian's binaries, a free
loopback port; fsync off, as there). Run: ``python -m bench store`` (``make bench`` runs it too).
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, MetaData, func, insert, select, text

from otklik.agents.history.rating import month_bounds
from otklik.agents.history.rows import decode_response, item_row
from otklik.agents.registry import Registry
from otklik.schemas.records import ResponseRecord
from otklik.streams.store.db import migrate, open_engine
from otklik.streams.store.reports import rating
from otklik.streams.store.schema import items, moderation_findings
from otklik.streams.store.writer import Incoming, StoreWriter

INGEST_ITEMS = 200_000
INGEST_PAGES = 1_000
BATCH = 2_000  # the service's default OTKLIK_STORE_BATCH
RATING_ITEMS = 1_000_000
RATING_PAGES = 5_000
RATING_OUTSIDE = 100_000  # items of the months either side, which the rating must skip
MONTH = "2026-10"
ZONE = "Europe/Moscow"
ROUNDS = 3
RETENTION_S = 90 * 86400
GROUP = 300_000_000

# How items end, roughly as the simulator's traffic does.
OUTCOMES = (
    ("answered", 0.52),
    ("no_answer_needed", 0.30),
    ("expired", 0.06),
    ("open", 0.05),
    ("moderated", 0.04),
    ("withdrawn", 0.03),
)


def registry(pages: int) -> Registry:
    return Registry.from_mapping(
        {
            "defaults": {"timezone": ZONE, "deadline": "8h working", "region": "Тестовая область"},
            "pages": [
                {
                    "id": f"vk:{GROUP + i}",
                    "title": f"Страница {i}",
                    "municipality": f"Район {i % 60}",
                    "sector": ("education", "health", "administration", "social")[i % 4],
                    "administrators": [f"vk:user:{500_000_000 + i}"],
                }
                for i in range(pages)
            ],
        },
        source="<bench>",
    )


def records(n: int, pages: int, start: int, end: int, seed: int) -> Iterator[ResponseRecord]:
    """``n`` final records of distinct items created in ``[start, end)``, spread over ``pages``."""
    rng = random.Random(seed)
    names = [name for name, _ in OUTCOMES]
    weights = [w for _, w in OUTCOMES]
    for i in range(n):
        page = GROUP + rng.randrange(pages)
        created = rng.randrange(start, end)
        outcome = rng.choices(names, weights)[0]
        latency = int(rng.expovariate(1 / 20_000))
        business = min(latency, int(rng.expovariate(1 / 9_000)))
        breached = outcome in ("expired", "open") or business > 28_800
        closed = None if outcome == "open" else created + (30 * 86400 if outcome == "expired" else latency)
        yield ResponseRecord(
            item=f"vk:{page}:wall:{1 + i // 7}:{i}",
            page=f"vk:{page}",
            kind="comment",
            author=f"vk:user:{700_000_000 + rng.randrange(200_000)}",
            created_at=created,
            outcome=outcome,  # type: ignore[arg-type]
            closed_at=closed,
            latency_s=None if closed is None else closed - created,
            business_latency_s=None if outcome in ("open", "no_answer_needed") else business,
            deadline="8h working",
            breached=breached and outcome != "no_answer_needed",
            responder=f"vk:user:{500_000_000 + page - GROUP}" if outcome == "answered" else None,
            reason="acknowledgement" if outcome == "no_answer_needed" else None,
            version=2 if breached else 1,
        )


def bare_table(engine: Engine, name: str = "items_bare") -> Any:
    """A table of the items table's shape (columns, key and indexes), empty."""
    metadata = MetaData()
    table = items.to_metadata(metadata, name=name)
    for index in list(table.indexes):  # index names are global in PostgreSQL: rename the copies
        index.name = f"{name}_{index.name}"
    metadata.create_all(engine)
    return table


def ingest(engine: Engine, reg: Registry) -> tuple[float, float, float]:
    """Into ``engine``'s database: (items/s through StoreWriter.apply, rows/s of the bare INSERT through
    SQLAlchemy Core, rows/s of the same INSERT through the driver's own ``executemany``)."""
    month = month_bounds(MONTH, ZONE)
    values = [r.to_json() for r in records(INGEST_ITEMS, INGEST_PAGES, month.start, month.end, seed=1)]
    writer = StoreWriter(engine, reg.page, RETENTION_S)
    started = time.perf_counter()
    written = 0
    for i in range(0, len(values), BATCH):
        applied = writer.apply([Incoming("responses", v) for v in values[i : i + BATCH]])
        assert not applied.rejected, applied.rejected[:1]
        written += applied.items
    store_s = time.perf_counter() - started
    assert written == INGEST_ITEMS

    table, driver_table = bare_table(engine), bare_table(engine, "items_driver")
    columns = [c.name for c in items.columns]
    mark = "?" if engine.dialect.name == "sqlite" else "%s"
    driver_insert = f"INSERT INTO items_driver ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"
    now = int(time.time())
    bare_s = driver_s = 0.0
    raw = engine.raw_connection()
    try:
        for i in range(0, len(values), BATCH):
            rows = []
            for v in values[i : i + BATCH]:
                record = decode_response(v)
                rows.append(dict(item_row(record, reg.page(record.page), now), text=None, received_at=None))
            tuples = [tuple(row[c] for c in columns) for row in rows]
            started = time.perf_counter()
            with engine.begin() as connection:
                connection.execute(insert(table), rows)
            bare_s += time.perf_counter() - started
            started = time.perf_counter()
            cursor = raw.cursor()
            cursor.executemany(driver_insert, tuples)
            raw.commit()
            driver_s += time.perf_counter() - started
    finally:
        raw.close()
    with engine.connect() as connection:
        for t in (table, driver_table):
            assert connection.execute(select(func.count()).select_from(t)).scalar() == INGEST_ITEMS
    return INGEST_ITEMS / store_s, INGEST_ITEMS / bare_s, INGEST_ITEMS / driver_s


def sqlite_size(path: Path, engine: Engine) -> int:
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def pg_sizes(engine: Engine) -> tuple[int, int]:
    """(the database's size, the items and item_events tables with their indexes)."""
    with engine.connect() as connection:
        whole = connection.execute(text("SELECT pg_database_size(current_database())")).scalar()
        tables = connection.execute(
            text("SELECT pg_total_relation_size('items') + pg_total_relation_size('item_events')")
        ).scalar()
    return int(whole or 0), int(tables or 0)


def load_rating_rows(engine: Engine, reg: Registry) -> int:
    """1,000,000 items in the month and 100,000 either side, written with COPY (their rows as the
    writer makes them), and overdue findings for 1 % of them; returns the month's items."""
    month = month_bounds(MONTH, ZONE)
    now = int(time.time())
    columns = [c.name for c in items.columns]
    day = 86400
    sets = (
        (RATING_ITEMS, month.start, month.end, 11),
        (RATING_OUTSIDE // 2, month.start - 20 * day, month.start, 12),
        (RATING_OUTSIDE // 2, month.end, month.end + 20 * day, 13),
    )
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        findings = []
        with cursor.copy(f"COPY items ({', '.join(columns)}) FROM STDIN") as copy:  # type: ignore[attr-defined]
            for n, start, end, seed in sets:
                for i, record in enumerate(records(n, RATING_PAGES, start, end, seed)):
                    row = item_row(record, reg.page(record.page), now)
                    row["item"] = f"{record.item}:{seed}"
                    row["text"] = row["received_at"] = None
                    copy.write_row([row[c] for c in columns])
                    if i % 100 == 0:
                        findings.append((row["item"], "overdue", row["page"], row["created_at"] + 3600))
        with cursor.copy("COPY moderation_findings (item, kind, page, at) FROM STDIN") as copy:  # type: ignore[attr-defined]
            for finding in findings:
                copy.write_row(finding)
        raw.commit()
        cursor.execute("ANALYZE items")
        cursor.execute(f"ANALYZE {moderation_findings.name}")
        raw.commit()
    finally:
        raw.close()
    return RATING_ITEMS


def median_time(fn: Any) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(ROUNDS):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main() -> None:
    from tests.conftest import free_port
    from tests.postgres import LocalPostgres

    reg = registry(max(INGEST_PAGES, RATING_PAGES))
    month = month_bounds(MONTH, ZONE)
    print(f"records ingested               {INGEST_ITEMS:>12,}   ({INGEST_PAGES:,} pages, batches of {BATCH:,})")

    with tempfile.TemporaryDirectory(prefix="otklik-bench-store-") as folder:
        path = Path(folder) / "store.sqlite3"
        engine = open_engine(f"sqlite:///{path}")
        migrate(engine)
        store_rate, bare_rate, driver_rate = ingest(engine, reg)
        engine.dispose()
        # The size of the store's own rows: the baselines' tables dropped first.
        engine = open_engine(f"sqlite:///{path}")
        with engine.begin() as connection:
            connection.exec_driver_sql("DROP TABLE items_bare")
            connection.exec_driver_sql("DROP TABLE items_driver")
        with engine.connect() as connection:
            connection.exec_driver_sql("VACUUM")
        size = sqlite_size(path, engine)
        engine.dispose()
    print(f"SQLite: baseline bare INSERT   {bare_rate:>12,.0f} rows/s   (Core executemany, same rows, same batches)")
    print(f"SQLite: the driver's INSERT    {driver_rate:>12,.0f} rows/s   (sqlite3 executemany of tuples)")
    print(f"SQLite: StoreWriter.apply      {store_rate:>12,.0f} items/s  (target >= 20,000)")
    print(f"SQLite: bytes per stored item  {size / INGEST_ITEMS:>12,.0f}   (file {size / 1e6:,.1f} MB, VACUUMed)")

    cluster = LocalPostgres.create(free_port())
    try:
        cluster.start()
        engine = open_engine(cluster.url(cluster.create_database()))
        migrate(engine)
        store_rate, bare_rate, driver_rate = ingest(engine, reg)
        with engine.begin() as connection:
            connection.exec_driver_sql("DROP TABLE items_bare")
            connection.exec_driver_sql("DROP TABLE items_driver")
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM FULL")
        whole, tables = pg_sizes(engine)
        engine.dispose()
        print(
            f"PostgreSQL: baseline bare INSERT {bare_rate:>10,.0f} rows/s   (Core executemany, same rows, same batches)"
        )
        print(f"PostgreSQL: the driver's INSERT {driver_rate:>11,.0f} rows/s   (psycopg executemany of tuples)")
        print(f"PostgreSQL: StoreWriter.apply  {store_rate:>12,.0f} items/s  (target >= 20,000)")
        print(
            f"PostgreSQL: bytes per item     {whole / INGEST_ITEMS:>12,.0f}   (pg_database_size {whole / 1e6:,.1f} MB; "
            f"items + item_events with indexes: {tables / INGEST_ITEMS:,.0f} bytes per item)"
        )

        engine = open_engine(cluster.url(cluster.create_database()))
        migrate(engine)
        started = time.perf_counter()
        load_rating_rows(engine, reg)
        load_s = time.perf_counter() - started
        in_month = (items.c.created_at >= month.start) & (items.c.created_at < month.end)

        def count() -> int:
            with engine.connect() as connection:
                return int(connection.execute(select(func.count()).select_from(items).where(in_month)).scalar() or 0)

        count_s, counted = median_time(count)
        assert counted == RATING_ITEMS, counted
        rating_s, rows = median_time(lambda: rating(engine, month, by="page"))
        assert len(rows) == RATING_PAGES and sum(r.received for r in rows) == RATING_ITEMS
        by_municipality_s, _ = median_time(lambda: rating(engine, month, by="municipality"))
        engine.dispose()
        print(
            f"rating data                    {RATING_ITEMS:>12,}   items in {MONTH} on {RATING_PAGES:,} pages "
            f"(+{RATING_OUTSIDE:,} outside; loaded with COPY in {load_s:.0f} s)"
        )
        print(f"baseline: SELECT count(*)      {count_s:>12.3f} s    (the month's items; median of {ROUNDS})")
        print(f"rating by page                 {rating_s:>12.3f} s    (target <= 2; median of {ROUNDS})")
        print(f"rating by municipality         {by_municipality_s:>12.3f} s")
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
