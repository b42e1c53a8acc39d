"""The console's queue query on a real store, SQLite and PostgreSQL: the counts per filter and the
order of the rows equal a recount in Python over the same items, for every role's scope, with pages on
several clocks and deadlines (named, on the defaults, and unknown to the registry); the counts kept
for a while per scope, the rows never."""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import Engine, insert

from otklik.agents.console.rules import Viewer, share_used
from otklik.agents.registry import Registry
from otklik.schemas.overrides import Override
from otklik.streams.console.app import FILTERS, ConsoleConfig, make_app, queue_groups
from otklik.streams.console.auth import hash_password
from otklik.streams.console.data import COUNTS_STALE_S, ConsoleStore, RegistrySource
from otklik.streams.store.db import migrate, open_engine
from otklik.streams.store.schema import items

pytestmark = pytest.mark.integration

NOW = 1_764_576_000  # 2025-12-01 08:00 UTC, a Monday
REGISTRY = {
    "defaults": {"timezone": "Europe/Moscow", "deadline": "8h working"},
    "pages": [
        {"id": "vk:1", "title": "ЦРБ", "municipality": "Тара", "deadline": "4h working"},
        {"id": "vk:2", "title": "Школа", "municipality": "Омск", "deadline": "4h working", "sector": "education"},
        {"id": "vk:3", "title": "Администрация", "municipality": "Тара", "timezone": "Asia/Omsk"},
        {"id": "vk:4", "title": "Соцзащита", "municipality": "Омск"},
        {"id": "tg:5", "title": "Канал", "municipality": "Исилькуль", "deadline": "2h calendar"},
    ],
}
PARSED = Registry.from_mapping(REGISTRY, source="<test>")
GROUPS = queue_groups(PARSED)  # the pages grouped by clock and deadline, as the console groups them
# Pages and where their items say they were. vk:4's items moved municipality (the registry changed);
# vk:6 and vk:7 are unknown to the registry (judged on its defaults).
PLACES = {
    "vk:1": [("Тара", "health")],
    "vk:2": [("Омск", "education")],
    "vk:3": [("Тара", "administration")],
    "vk:4": [("Омск", "social"), ("Омский район", "social")],
    "tg:5": [("Исилькуль", "administration")],
    "vk:6": [("Тара", "other")],
    "vk:7": [("Исилькуль", "other")],
}
VIEWERS = [
    Viewer("op", "operator"),
    Viewer("ana", "analyst"),
    Viewer("cur", "curator", frozenset({"Тара"})),
    Viewer("cur2", "curator", frozenset({"Омск", "Исилькуль"})),
    Viewer("adm", "page_admin", frozenset(), frozenset({"vk:1", "vk:6"})),
]
CHOICES: list[tuple[dict[str, str], bool]] = [
    ({}, False),
    ({}, True),
    ({"municipality": "Тара"}, False),
    ({"municipality": "Омск", "kind": "message"}, True),
    ({"page": "vk:4"}, False),
    ({"platform": "tg"}, False),
    ({"sector": "other", "kind": "comment"}, True),
]


def generated(seed: int = 16, count: int = 160) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    for i in range(count):
        page = rng.choice(sorted(PLACES))
        municipality, sector = rng.choice(PLACES[page])
        created = NOW - rng.randrange(60, 4 * 86400)
        yield {
            "item": f"{page}:wall:{i % 9}:{i}",
            "page": page,
            "platform": page.split(":")[0],
            "kind": rng.choice(("comment", "comment", "message")),
            "author": f"vk:user:{i}",
            "created_at": created,
            "received_at": created + 1,
            # Some items have no due time recorded (never overdue); a few are closed (never in the queue).
            "due_at": None if i % 11 == 0 else created + rng.randrange(3600, 2 * 86400),
            "outcome": "answered" if i % 13 == 0 else "open",
            "breached": False,
            "needs_answer": True,
            "judged": False,
            "review": False,
            "region": "Область",
            "municipality": municipality,
            "sector": sector,
            "page_title": f"Страница {page}",
            "link": None,
            "text": f"вопрос {i}",
            "version": 0,
            "updated_at": NOW,
        }


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    engine = open_engine(store_url)
    migrate(engine)
    with engine.begin() as connection:
        connection.execute(insert(items), list(generated()))
    try:
        yield engine
    finally:
        engine.dispose()


def recount(rows: list[dict[str, Any]], viewer: Viewer, chosen: dict[str, str], overdue_only: bool, now: int) -> Any:
    """The queue as a person would count it: every open item the viewer may see, one by one."""
    mine = [r for r in rows if r["outcome"] == "open" and viewer.may_see(r["page"], r["municipality"])]

    def late(row: dict[str, Any]) -> bool:
        return row["due_at"] is not None and row["due_at"] <= now

    def passes(row: dict[str, Any], skip: str | None = None) -> bool:
        if overdue_only and skip != "overdue" and not late(row):
            return False
        return all(row[name] == value for name, value in chosen.items() if value and name != skip)

    facets = {name: Counter(r[name] for r in mine if passes(r, name)) for name in FILTERS}
    shown = [r for r in mine if passes(r)]

    def urgency(row: dict[str, Any]) -> float:
        page = PARSED.page(row["page"])
        return share_used(page.deadline, page.clock, row["created_at"], now)

    order = [r["item"] for r in sorted(shown, key=lambda r: (-urgency(r), r["created_at"], r["item"]))]
    overdue = sum(1 for r in mine if late(r) and passes(r, "overdue"))
    return facets, order, overdue


def read_all(store: ConsoleStore, viewer: Viewer, chosen: dict[str, str], overdue_only: bool, now: int) -> Any:
    """Every page of the queue, 7 rows a page, and the first page's counts."""
    first = store.queue(viewer, chosen, overdue_only, now, GROUPS, 0, 7)
    order = [r["item"] for r in first["rows"]]
    offset = 7
    while offset < first["total"]:
        order += [r["item"] for r in store.queue(viewer, chosen, overdue_only, now, GROUPS, offset, 7)["rows"]]
        offset += 7
    return first, order


@pytest.mark.parametrize("viewer", VIEWERS, ids=lambda v: v.login)
def test_the_counts_and_the_order_equal_a_recount_for_every_scope(engine: Engine, viewer: Viewer) -> None:
    rows = list(generated())
    store = ConsoleStore(engine)
    for chosen, overdue_only in CHOICES:
        full = {name: chosen.get(name, "") for name in FILTERS}
        first, order = read_all(store, viewer, full, overdue_only, NOW)
        facets, expected_order, overdue = recount(rows, viewer, chosen, overdue_only, NOW)
        case = (chosen, overdue_only)
        assert {name: {v: n for v, _, n in first["facets"][name]} for name in FILTERS} == facets, case
        assert first["total"] == len(expected_order) and order == expected_order, case
        assert first["overdue_count"] == overdue, case
        assert {v: shown for v, shown, _ in first["facets"]["page"]} == {p: f"Страница {p}" for p in facets["page"]}
    # The scopes are what they should be: not everything for those limited, something for everyone.
    everything = len([r for r in rows if r["outcome"] == "open"])
    total = store.queue(viewer, dict.fromkeys(FILTERS, ""), False, NOW, GROUPS, 0, 1)["total"]
    assert total > 0 and (total == everything) == viewer.sees_everything


def test_the_counts_are_kept_for_a_while_per_scope_and_the_rows_never(engine: Engine) -> None:
    store = ConsoleStore(engine, counts_ttl_s=10)
    operator, curator = VIEWERS[0], VIEWERS[2]
    none = dict.fromkeys(FILTERS, "")
    before = store.queue(operator, none, False, NOW, GROUPS, 0, 500)
    curator_before = store.queue(curator, none, False, NOW, GROUPS, 0, 500)
    assert curator_before["total"] < before["total"]  # the curator's counts are theirs, not the operator's
    newest = {
        **next(generated(count=1)),
        **{"item": "vk:6:wall:1:new", "page": "vk:6", "platform": "vk", "municipality": "Тара", "sector": "other"},
        **{"outcome": "open", "created_at": NOW - 30, "due_at": NOW - 1},
    }
    with engine.begin() as connection:
        connection.execute(insert(items), [newest])
    # Within the ten seconds: the same counts (and when they were made), but the new item in the rows.
    kept = store.queue(operator, {**none, "municipality": "Тара"}, True, NOW + 9, GROUPS, 0, 500)
    assert kept["counted_at"] == NOW
    assert kept["overdue_count"] == recount(list(generated()), operator, {"municipality": "Тара"}, True, NOW)[2]
    assert "vk:6:wall:1:new" in [r["item"] for r in kept["rows"]]
    # Past them: the kept counts still answer at once, while a thread counts again; the next request
    # gets the new counts: the new item counted, as overdue.
    assert store.queue(operator, none, False, NOW + 10, GROUPS, 0, 500)["counted_at"] == NOW
    store.settle()
    fresh = store.queue(operator, none, False, NOW + 11, GROUPS, 0, 500)
    assert fresh["counted_at"] == NOW + 10 and fresh["total"] == before["total"] + 1
    assert fresh["overdue_count"] == recount([*generated(), newest], operator, {}, False, NOW + 10)[2]
    # Counts older than COUNTS_STALE_S are not given: counted before the answer.
    late = NOW + 10 + int(COUNTS_STALE_S)
    assert store.queue(operator, none, False, late, GROUPS, 0, 1)["counted_at"] == late
    # Nor are counts made later than the console's clock says it is (a clock that went back).
    assert store.queue(operator, none, False, NOW, GROUPS, 0, 1)["counted_at"] == NOW
    # The curator's counts were kept apart all along: from before the new item, now past their time.
    assert store.queue(curator, none, False, NOW + 12, GROUPS, 0, 1)["total"] == curator_before["total"]
    store.settle()
    assert store.queue(curator, none, False, NOW + 13, GROUPS, 0, 1)["total"] == curator_before["total"] + 1


async def test_the_queue_page_says_how_old_its_counts_are(engine: Engine) -> None:
    store = ConsoleStore(engine, counts_ttl_s=10)
    store.add_user("op", hash_password("пароль-для-теста"), "operator")

    async def produce(override: Override) -> None:
        raise AssertionError(override)

    clock = [float(NOW)]
    config = ConsoleConfig(store, RegistrySource(store), produce, secret=b"k" * 32, clock=lambda: clock[0])
    client = TestClient(TestServer(make_app(config)))
    await client.start_server()
    try:
        form = await (await client.get("/login")).text()
        token = re.search(r'name="csrf" value="([^"]+)"', form)
        assert token
        data = {"login": "op", "password": "пароль-для-теста", "csrf": token.group(1), "next": "/queue"}
        assert (await client.post("/login", data=data, allow_redirects=False)).status == 303
        page = await (await client.get("/queue")).text()
        assert "Числа — на 11:00:00 (пересчитываются в фоне, не чаще раза в 10 с)" in page  # Moscow time
        clock[0] = NOW + 12
        rows = await (await client.get("/queue/rows")).text()
        assert "Числа — на 11:00:00" in rows  # given while counted again
        store.settle()
        rows = await (await client.get("/queue/rows")).text()
        assert "Числа — на 11:00:12" in rows
    finally:
        await client.close()
