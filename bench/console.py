"""The console's queue page (issue 16): p95 of the full HTTP response with 100,000 open items in PostgreSQL.

- **Data**: 100,000 open items on 2,000 pages (50 each, written over the last week: most are past their
  deadline), as the store writes a new item (``pending_row``: its due time by the page's clock, its text
  kept), plus 100,000 closed ones of the last month (``item_row`` of final records), loaded with COPY into
  a fresh PostgreSQL database at the store's schema, then ANALYZEd. The registry (recorded in the store,
  where the console reads it by default) gives 60 municipalities, four sectors, and a few clocks and
  deadlines: one page in ten answers within 4 working hours, one in twenty-five works in Omsk's time
  zone, so the queue weighs more than one group of pages.
- **Requests**: the console served in-process (aiohttp's test server on a loopback port, the client in
  the same event loop), an operator signed in through ``POST /login`` with the form's CSRF token; after a
  warm-up, ``REQUESTS`` sequential GETs of each path, the whole body read: ``/queue`` (the first page,
  default filters), ``/queue?overdue=1&municipality=…``, and ``/health`` as the baseline (no store, no
  template). Median and p95 of each. Target: p95 of ``/queue`` at most 200 ms.
- **Counts**: the console keeps a scope's queue counts for ``COUNTS_TTL_S`` seconds and then counts
  again in the background while it still gives them (``otklik console`` does; the rows are read afresh
  each time): so in ``/queue`` no request waits for the counts. ``/queue, counts due each second`` keeps
  them 1 s, so that they are counted again in the background throughout; ``/queue, counts afresh``
  keeps nothing: what a request pays when it must count (the first for a scope, or one after two
  minutes without any).

PostgreSQL is a throwaway cluster of the tests' own (tests/postgres.py). Run: ``python -m bench console``
(``make bench`` runs it too).
"""

from __future__ import annotations

import asyncio
import random
import re
import statistics
import time
from collections.abc import Iterator
from typing import Any

import yaml
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import Engine, func, insert, select

from otklik.agents.history.rows import item_row, pending_row
from otklik.agents.registry import Registry
from otklik.schemas.overrides import Override
from otklik.schemas.records import Interaction, ResponseRecord
from otklik.streams.console.app import ConsoleConfig, make_app
from otklik.streams.console.auth import hash_password
from otklik.streams.console.data import COUNTS_TTL_S, ConsoleStore, RegistrySource
from otklik.streams.store.db import migrate, open_engine
from otklik.streams.store.schema import items, registry_versions

PAGES = 2_000
OPEN_ITEMS = 100_000
CLOSED_ITEMS = 100_000
MUNICIPALITIES = 60
GROUP = 300_000_000
WEEK = 7 * 86400
MONTH = 30 * 86400
REQUESTS = 200
WARMUP = 20
TARGET_MS = 200.0
PASSWORD = "bench-password-1"
MUNICIPALITY = "Район 7"
TEXTS = (
    "Когда починят дорогу на улице Ленина? Уже месяц ямы, машины ломаются.",
    "Почему не вывозят мусор третий день?",
    "Спасибо за ответ, но вопрос так и не решён.",
    "Где можно узнать расписание приёма врачей в поликлинике?",
    "В подъезде нет света с пятницы, управляющая компания не отвечает.",
)


def registry_mapping() -> dict[str, Any]:
    pages = []
    for i in range(PAGES):
        page: dict[str, Any] = {
            "id": f"vk:{GROUP + i}",
            "title": f"Страница {i}",
            "municipality": f"Район {i % MUNICIPALITIES}",
            "sector": ("education", "health", "administration", "social")[i % 4],
            "administrators": [f"vk:user:{500_000_000 + i}"],
        }
        if i % 10 == 0:
            page["deadline"] = "4h working"
        if i % 25 == 1:
            page["timezone"] = "Asia/Omsk"
        pages.append(page)
    return {
        "defaults": {"timezone": "Europe/Moscow", "deadline": "8h working", "region": "Тестовая область"},
        "pages": pages,
    }


def open_rows(reg: Registry, now: int, seed: int = 1) -> Iterator[dict[str, Any]]:
    """The rows of ``OPEN_ITEMS`` new citizens' comments, as the store writes them before judgement."""
    rng = random.Random(seed)
    for i in range(OPEN_ITEMS):
        index = i % PAGES
        page = f"vk:{GROUP + index}"
        created = now - rng.randrange(60, WEEK)
        post = 1 + i // PAGES
        interaction = Interaction(
            platform="vk",
            page=page,
            action="new",
            object_kind="wall",
            object_id=f"{page}:wall:{post}",
            item=f"{page}:wall:{post}:{i}",
            seq=i,
            received_at=created + 2,
            created_at=created,
            author=f"vk:user:{700_000_000 + rng.randrange(200_000)}",
            text=TEXTS[i % len(TEXTS)],
        )
        row = pending_row(interaction, reg.page(page), now, text_kept_from=0)
        assert row is not None
        yield row


def closed_rows(reg: Registry, now: int, seed: int = 2) -> Iterator[dict[str, Any]]:
    """The rows of ``CLOSED_ITEMS`` items of the last month, answered or otherwise closed."""
    rng = random.Random(seed)
    outcomes = ("answered", "answered", "answered", "no_answer_needed", "moderated", "withdrawn")
    for i in range(CLOSED_ITEMS):
        page = f"vk:{GROUP + rng.randrange(PAGES)}"
        created = now - WEEK - rng.randrange(MONTH)
        outcome = rng.choice(outcomes)
        latency = int(rng.expovariate(1 / 20_000))
        record = ResponseRecord(
            item=f"{page}:wall:{900_000 + i // 7}:{i}",
            page=page,
            kind="comment",
            author=f"vk:user:{700_000_000 + rng.randrange(200_000)}",
            created_at=created,
            outcome=outcome,  # type: ignore[arg-type]
            closed_at=created + latency,
            latency_s=latency,
            business_latency_s=None if outcome == "no_answer_needed" else min(latency, 9_000),
            deadline="8h working",
            breached=False,
            responder=f"vk:user:{500_000_000}" if outcome == "answered" else None,
            reason="acknowledgement" if outcome == "no_answer_needed" else None,
            version=1,
        )
        row = item_row(record, reg.page(page), now)
        row["received_at"] = created + 2
        row["text"] = None  # past the text's retention or not needed: the queue shows open items only
        yield row


def load(engine: Engine, reg: Registry, document: str, now: int) -> None:
    columns = [c.name for c in items.columns]
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        with cursor.copy(f"COPY items ({', '.join(columns)}) FROM STDIN") as copy:  # type: ignore[attr-defined]
            for rows in (open_rows(reg, now), closed_rows(reg, now)):
                for row in rows:
                    copy.write_row([row.get(c) for c in columns])
        raw.commit()
        cursor.execute("ANALYZE items")
        raw.commit()
    finally:
        raw.close()
    with engine.begin() as connection:
        connection.execute(
            insert(registry_versions).values(
                digest="bench", source="registry.yaml", effective_from=now - MONTH, pages=PAGES, document=document
            )
        )
    with engine.connect() as connection:
        counted = connection.execute(select(func.count()).where(items.c.outcome == "open")).scalar()
    assert counted == OPEN_ITEMS, counted


async def timed(client: TestClient, path: str, n: int) -> list[float]:
    """Milliseconds of ``n`` sequential GETs of ``path``, each until its whole body is read."""
    times = []
    for _ in range(n):
        started = time.perf_counter()
        response = await client.get(path, allow_redirects=False)
        body = await response.read()
        times.append((time.perf_counter() - started) * 1000)
        assert response.status == 200, (path, response.status, body[:200])
    return times


def p95(times: list[float]) -> float:
    return statistics.quantiles(times, n=20, method="inclusive")[-1]


class TimedStore(ConsoleStore):
    """The console's store, timing its queue query (SQL and the merge of candidates): the part of a
    queue page's response that is the store's."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine, counts_ttl_s=COUNTS_TTL_S)
        self.queue_ms: list[float] = []
        self.counted = 0  # how many times the counts were read, before an answer or in the background

    def _count(self, *args: Any, **kwargs: Any) -> Any:
        self.counted += 1
        return super()._count(*args, **kwargs)

    def queue(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            return super().queue(*args, **kwargs)
        finally:
            self.queue_ms.append((time.perf_counter() - started) * 1000)


async def measure(store: TimedStore) -> dict[str, tuple[list[float], int, list[float], int]]:
    async def produce(override: Override) -> None:  # the queue writes nothing
        raise AssertionError(override)

    config = ConsoleConfig(store, RegistrySource(store), produce)
    client = TestClient(TestServer(make_app(config)))
    await client.start_server()
    try:
        form = await (await client.get("/login")).text()
        found = re.search(r'name="csrf" value="([^"]+)"', form)
        assert found, "the sign-in form has no CSRF field"
        response = await client.post(
            "/login",
            data={"login": "bench", "password": PASSWORD, "csrf": found.group(1), "next": "/queue"},
            allow_redirects=False,
        )
        assert response.status == 303 and response.headers["Location"] == "/queue", response.status
        paths = {
            "/health": ("/health", COUNTS_TTL_S),
            "/queue": ("/queue", COUNTS_TTL_S),
            "/queue?overdue=1&municipality=…": ("/queue?" + "overdue=1&municipality=" + MUNICIPALITY, COUNTS_TTL_S),
            "/queue, counts due each second": ("/queue", 1.0),
            "/queue, counts afresh": ("/queue", 0.0),
        }
        results: dict[str, tuple[list[float], int, list[float], int]] = {}
        for name, (path, ttl) in paths.items():
            store.counts_ttl_s = ttl
            await timed(client, path, WARMUP)
            size = len(await (await client.get(path)).read())
            store.queue_ms.clear()
            store.counted = 0
            times = await timed(client, path, REQUESTS)
            store.settle()
            results[name] = (times, size, list(store.queue_ms), store.counted)
        page = await (await client.get("/queue")).text()
        shown = re.search(r"Обращений: <strong>(\d+)</strong>", page)
        assert shown and int(shown.group(1)) == OPEN_ITEMS, shown
        return results
    finally:
        await client.close()


def main() -> None:
    from tests.conftest import free_port
    from tests.postgres import LocalPostgres

    mapping = registry_mapping()
    reg = Registry.from_mapping(mapping, source="<bench>")
    document = yaml.safe_dump(mapping, allow_unicode=True, sort_keys=False)
    now = int(time.time())
    cluster = LocalPostgres.create(free_port())
    try:
        cluster.start()
        engine = open_engine(cluster.url(cluster.create_database()))
        migrate(engine)
        started = time.perf_counter()
        load(engine, reg, document, now)
        load_s = time.perf_counter() - started
        store = TimedStore(engine)
        store.add_user("bench", hash_password(PASSWORD), "operator")
        results = asyncio.run(measure(store))
        engine.dispose()
    finally:
        cluster.stop()
    print(
        f"open items                     {OPEN_ITEMS:>12,}   on {PAGES:,} pages, {MUNICIPALITIES} municipalities "
        f"(+{CLOSED_ITEMS:,} closed; COPY and ANALYZE in {load_s:.0f} s)"
    )
    print(f"requests per path              {REQUESTS:>12,}   sequential, after {WARMUP} to warm up; operator signed in")
    for name, (times, size, queue_ms, counted) in results.items():
        target = f"   (target p95 <= {TARGET_MS:.0f} ms; counts kept {COUNTS_TTL_S:.0f} s)" if name == "/queue" else ""
        baseline = "   (baseline)" if name == "/health" else ""
        print(
            f"{name:<31}median {statistics.median(times):7.1f} ms   p95 {p95(times):7.1f} ms   "
            f"{size / 1024:6.0f} KiB{target}{baseline}"
        )
        if queue_ms:
            print(
                f"{'  of which ConsoleStore.queue':<31}median {statistics.median(queue_ms):7.1f} ms   "
                f"p95 {p95(queue_ms):7.1f} ms   (its SQL and the merge; counts read {counted} times)"
            )


if __name__ == "__main__":
    main()
