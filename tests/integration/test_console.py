"""The operations console over a real store, on SQLite and on PostgreSQL (aiohttp's test client; the
browser tests drive the same pages in chromium): sign-in, CSRF, the sign-in limit, who sees what,
escaping, filters, and a dispute accepted into a correction on otklik.overrides."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, insert, select

from otklik.schemas.overrides import Override
from otklik.streams.console.app import CONFIG, ConsoleConfig, make_app
from otklik.streams.console.auth import hash_password
from otklik.streams.console.data import ConsoleStore, RegistrySource
from otklik.streams.store.db import migrate, open_engine
from otklik.streams.store.schema import items, registry_versions

pytestmark = pytest.mark.integration

NOW = 1_764_576_000  # 2025-12-01 08:00 UTC, a Monday: 11:00 in Moscow, working time
PASSWORD = "верный-пароль-1"
REGISTRY_VERSION = {
    "digest": "d1",
    "source": "registry.yaml",
    "effective_from": NOW - 86400,
    "pages": 1,
    "document": "defaults: {timezone: Europe/Moscow}\npages:\n  - id: vk:1\n    title: ЦРБ Тары\n"
    "    municipality: Тара\n    deadline: 4h working\n    contacts: [{name: Ирина Петрова, email: petrova@example.gov.ru}]\n",
}
XSS = '<script>alert(1)</script> и "><img src=x onerror=alert(2)>'


def item_row(item: str, municipality: str, text: str, age_s: int) -> dict[str, Any]:
    page = ":".join(item.split(":")[:2])
    return {
        "item": item,
        "page": page,
        "platform": "vk",
        "kind": "comment",
        "author": "vk:user:5",
        "created_at": NOW - age_s,
        "received_at": NOW - age_s + 1,
        "due_at": NOW - age_s + 4 * 3600,  # as the store records it; only the three-day-old one is past it
        "outcome": "open",
        "breached": False,
        "needs_answer": True,
        "judged": False,
        "review": False,
        "region": "Область",
        "municipality": municipality,
        "sector": "health",
        "page_title": f"Страница {page}",
        "link": f"https://vk.com/wall-{page.split(':')[1]}_1",
        "text": text,
        "version": 0,
        "updated_at": NOW,
    }


class Console:
    def __init__(self, client: TestClient, produced: list[Override], store: ConsoleStore) -> None:
        self.client = client
        self.produced = produced
        self.store = store

    async def csrf(self, path: str = "/login") -> str:
        response = await self.client.get(path, allow_redirects=False)
        found = re.search(r'name="csrf" value="([^"]+)"', await response.text())
        assert found, f"{path} has no CSRF field"
        return found.group(1)

    async def sign_in(self, login: str, password: str = PASSWORD) -> Any:
        token = await self.csrf()
        return await self.client.post(
            "/login",
            data={"login": login, "password": password, "csrf": token, "next": "/queue"},
            allow_redirects=False,
        )


@pytest.fixture
async def console(store_url: str) -> AsyncIterator[Console]:
    async for running in _console(store_url):
        yield running


@pytest.fixture
async def proxied_console(store_url: str) -> AsyncIterator[Console]:
    async for running in _console(store_url, behind_proxy=True, user_header="X-Remote-User"):
        yield running


async def _console(store_url: str, **options: Any) -> AsyncIterator[Console]:
    engine = open_engine(store_url)
    migrate(engine)
    store = ConsoleStore(engine)
    with engine.begin() as connection:
        connection.execute(
            insert(items),
            [
                item_row("vk:1:wall:10:1", "Тара", "Когда починят крышу?", 3 * 86400),
                item_row("vk:1:wall:10:2", "Тара", XSS, 600),
                item_row("vk:2:wall:4:3", "Омск", "Где расписание?", 3600),
            ],
        )
    hashed = hash_password(PASSWORD)
    store.add_user("op", hashed, "operator")
    store.add_user("cur", hashed, "curator", municipalities=["Тара"])
    store.add_user("adm", hashed, "page_admin", pages=["vk:1"])
    store.add_user("ana", hashed, "analyst")
    produced: list[Override] = []

    async def produce(override: Override) -> None:
        produced.append(override)

    with engine.begin() as connection:
        connection.execute(insert(registry_versions).values(REGISTRY_VERSION))
    config = ConsoleConfig(store, RegistrySource(store), produce, secret=b"k" * 32, clock=lambda: NOW, **options)
    client = TestClient(TestServer(make_app(config)))
    await client.start_server()
    try:
        yield Console(client, produced, store)
    finally:
        await client.close()
        engine.dispose()


async def test_sign_in_shows_the_queue_most_urgent_first_and_sign_out_ends_it(console: Console) -> None:
    response = await console.client.get("/queue", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"].startswith("/login")
    response = await console.sign_in("op")
    assert response.status == 303 and response.headers["Location"] == "/queue"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    page = await (await console.client.get("/queue")).text()
    # The three-day-old item has used its deadline many times over; the ten-minute one almost none.
    assert page.index("vk:1:wall:10:1") < page.index("vk:2:wall:4:3") < page.index("vk:1:wall:10:2")
    assert "Обращений: <strong>3</strong>" in page
    token = await console.csrf("/queue")
    response = await console.client.post("/logout", data={"csrf": token}, allow_redirects=False)
    assert response.status == 303
    response = await console.client.get("/queue", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"].startswith("/login")


async def test_a_wrong_password_is_refused(console: Console) -> None:
    response = await console.sign_in("op", "не тот")
    assert response.status == 401
    response = await console.sign_in("nobody")
    assert response.status == 401


async def test_a_form_without_its_csrf_token_gets_403(console: Console) -> None:
    response = await console.client.post("/login", data={"login": "op", "password": PASSWORD}, allow_redirects=False)
    assert response.status == 403
    assert (await console.sign_in("op")).status == 303
    response = await console.client.post(
        "/items/vk:1:wall:10:1/correct", data={"needs_answer": "no", "note": "спасибо"}, allow_redirects=False
    )
    assert response.status == 403
    response = await console.client.post(
        "/items/vk:1:wall:10:1/correct",
        data={"needs_answer": "no", "note": "спасибо", "csrf": "чужой"},
        allow_redirects=False,
    )
    assert response.status == 403
    assert console.produced == []


async def test_ten_wrong_passwords_in_a_row_are_refused_for_a_while(console: Console) -> None:
    for _ in range(10):
        assert (await console.sign_in("op", "не тот")).status == 401
    # Even the right password is refused now.
    response = await console.sign_in("op")
    assert response.status == 429
    assert "Слишком много" in await response.text()
    # Another login from the same address is refused too (the limit is per login and per address).
    assert (await console.sign_in("cur")).status == 429


async def test_a_curator_sees_their_municipality_only(console: Console) -> None:
    assert (await console.sign_in("cur")).status == 303
    assert (await console.client.get("/items/vk:1:wall:10:1")).status == 200
    response = await console.client.get("/items/vk:2:wall:4:3")
    assert response.status == 404
    page = await (await console.client.get("/queue")).text()
    assert "vk:2:wall:4:3" not in page and "Обращений: <strong>2</strong>" in page
    assert (await console.client.get("/pages/vk:2")).status == 404


async def test_a_page_administrator_disputes_but_cannot_correct(console: Console) -> None:
    assert (await console.sign_in("adm")).status == 303
    token = await console.csrf("/items/vk:1:wall:10:1")
    response = await console.client.post(
        "/items/vk:1:wall:10:1/correct",
        data={"needs_answer": "no", "note": "не нам", "csrf": token},
        allow_redirects=False,
    )
    assert response.status == 403
    assert console.produced == []
    response = await console.client.post(
        "/items/vk:1:wall:10:1/dispute",
        data={"reason": "answered_in_dm", "text": "ответили в ЛС", "csrf": token},
        allow_redirects=False,
    )
    assert response.status == 303
    assert (await console.client.get("/items/vk:2:wall:4:3")).status == 404  # not their page


async def test_texts_show_as_text_never_as_markup(console: Console) -> None:
    assert (await console.sign_in("op")).status == 303
    for path in ("/items/vk:1:wall:10:2", "/queue", "/queue/rows"):
        page = await (await console.client.get(path)).text()
        assert "<script>alert" not in page and "<img src=x" not in page, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page, path
        assert "&#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in page, path


@pytest.mark.parametrize(
    "query",
    ["municipality=' OR '1'='1", "page=vk:1' OR 1=1 --", "sector=%25", 'kind=comment"; DROP TABLE items; --'],
)
async def test_filters_with_sql_metacharacters_give_an_empty_list(console: Console, query: str) -> None:
    assert (await console.sign_in("op")).status == 303
    for path in ("/queue?", "/queue/rows?"):
        response = await console.client.get(path + query)
        assert response.status == 200
        page = await response.text()
        assert "Ничего не найдено" in page and "Обращений: <strong>0</strong>" in page
    with console.store.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(items)).scalar() == 3


async def test_an_accepted_dispute_becomes_a_correction_by_the_operator(console: Console) -> None:
    assert (await console.sign_in("adm")).status == 303
    token = await console.csrf("/items/vk:1:wall:10:1")
    response = await console.client.post(
        "/items/vk:1:wall:10:1/dispute",
        data={"reason": "not_addressed", "text": "это соседям", "csrf": token},
        allow_redirects=False,
    )
    assert response.status == 303
    dispute_id = re.search(r"/disputes/(\d+)/decide", await (await console.client.get("/items/vk:1:wall:10:1")).text())
    assert dispute_id is None  # a page administrator does not decide
    await console.client.post("/logout", data={"csrf": await console.csrf("/queue")})

    assert (await console.sign_in("op")).status == 303
    page = await (await console.client.get("/items/vk:1:wall:10:1")).text()
    found = re.search(r"/disputes/(\d+)/decide", page)
    assert found and "это соседям" in page
    token = await console.csrf("/items/vk:1:wall:10:1")
    response = await console.client.post(
        f"/disputes/{found.group(1)}/decide",
        data={"decision": "accept", "note": "согласна", "csrf": token},
        allow_redirects=False,
    )
    assert response.status == 303
    assert len(console.produced) == 1
    override = console.produced[0]
    assert (override.item, override.needs_answer, override.by) == ("vk:1:wall:10:1", False, "op")
    assert "adm" in override.note and "согласна" in override.note
    # Decided once: a second decision is refused and produces nothing.
    response = await console.client.post(
        f"/disputes/{found.group(1)}/decide", data={"decision": "reject", "csrf": token}, allow_redirects=False
    )
    assert response.status == 409 and len(console.produced) == 1
    page = await (await console.client.get("/items/vk:1:wall:10:1")).text()
    assert "спор принят" in page and "оспорено" in page and "принят" in page


async def test_an_operator_correction_goes_to_overrides_with_their_login(console: Console) -> None:
    assert (await console.sign_in("cur")).status == 303
    token = await console.csrf("/items/vk:1:wall:10:2")
    response = await console.client.post(
        "/items/vk:1:wall:10:2/correct",
        data={"needs_answer": "no", "note": "это не вопрос", "csrf": token},
        allow_redirects=False,
    )
    assert response.status == 303
    assert [(o.item, o.needs_answer, o.by, o.note) for o in console.produced] == [
        ("vk:1:wall:10:2", False, "cur", "это не вопрос")
    ]
    page = await (await console.client.get("/items/vk:1:wall:10:2")).text()
    assert "исправление разбора" in page and "это не вопрос" in page


async def test_an_analyst_reads_but_changes_nothing(console: Console) -> None:
    assert (await console.sign_in("ana")).status == 303
    page = await (await console.client.get("/items/vk:2:wall:4:3")).text()
    assert 'id="correct"' not in page and 'id="dispute"' not in page
    token = await console.csrf("/queue")
    for path, data in (
        ("/items/vk:2:wall:4:3/correct", {"needs_answer": "no", "note": "x"}),
        ("/items/vk:2:wall:4:3/dispute", {"reason": "other", "text": "x"}),
    ):
        response = await console.client.post(path, data={**data, "csrf": token}, allow_redirects=False)
        assert response.status == 403, path
    assert console.produced == []


async def test_the_other_pages_render(console: Console) -> None:
    assert (await console.sign_in("op")).status == 303
    for path in ("/pages/vk:1", "/rating", "/moderation", "/disputes", "/health"):
        assert (await console.client.get(path)).status == 200, path
    response = await console.client.get("/rating.xlsx?month=2025-11&by=municipality")
    assert response.status == 200 and (await response.read())[:2] == b"PK"
    response = await console.client.get("/rating.csv?month=2025-11")
    assert response.status == 200 and (await response.text()).startswith("unit,")
    response = await console.client.get("/static/console.css")
    assert response.status == 200


async def test_a_page_shows_the_registry_the_store_recorded(console: Console) -> None:
    assert (await console.sign_in("op")).status == 303
    page = await (await console.client.get("/pages/vk:1")).text()
    assert "ЦРБ Тары" in page and "4h working" in page and "Ирина Петрова" in page
    assert "Ждут ответа: <strong>2</strong>" in page


async def test_a_page_draws_its_response_times_per_month_and_this_months_against_the_deadline(
    console: Console,
) -> None:
    def answered(n: int, age_s: int, business_s: int) -> dict[str, Any]:
        row = item_row(f"vk:1:wall:20:{n}", "Тара", "вопрос", age_s)
        closed = row["created_at"] + business_s
        return {
            **row,
            **{"outcome": "answered", "closed_at": closed, "latency_s": business_s, "business_latency_s": business_s},
            **{"judged": True, "version": 1},
        }

    # This month (December, from 00:00 in Moscow): answers in 0.5, 1, 4 (the deadline, in time) and 5
    # working hours; November: 1 and 2 hours.
    december = [answered(n, 6 * 3600, s) for n, s in enumerate((1800, 3600, 4 * 3600, 5 * 3600))]
    november = [answered(10 + n, 5 * 86400, s) for n, s in enumerate((3600, 7200))]
    with console.store.engine.begin() as connection:
        connection.execute(insert(items), december + november)
    assert (await console.sign_in("op")).status == 303
    page = await (await console.client.get("/pages/vk:1")).text()
    # Medians and 90th percentiles (interpolated like the rating's): December 2.5 h and 4.7 h
    # (14400 + 0.7 * 3600 s), November 1.5 h and 1.9 h (3600 + 0.9 * 3600 s).
    assert "<title>2025-12: медиана 2.5 ч</title>" in page and "<title>2025-12: 90-й процентиль 4.7 ч</title>" in page
    assert "<title>2025-11: медиана 1.5 ч</title>" in page and "<title>2025-11: 90-й процентиль 1.9 ч</title>" in page
    assert "<title>2025-10: медиана —</title>" in page  # nothing answered in October
    # The scale is 5 hours (the largest figure, rounded up): the 4-hour deadline's line at 4/5 of it.
    assert '<line x1="5" y1="40" x2="375" y2="40" class="deadline"><title>срок 4h working</title>' in page
    # This month's four answers by the share of the deadline they took: two within a quarter, one at the
    # deadline (in time), one past it.
    assert "Отвечено: <strong>4</strong>, из них в срок: <strong>3</strong>" in page
    for title in ("до ¼: 2", "¼–½: 0", "¾–1: 1", "1–1½: 1", "больше 2: 0"):
        assert f"<title>{title}</title>" in page, title


async def test_an_item_names_the_engine_rule_that_judged_it(console: Console) -> None:
    late = {
        **item_row("vk:1:wall:30:1", "Тара", "вопрос", 2 * 86400),
        **{"outcome": "answered", "breached": True, "judged": True, "version": 2, "reason": "question"},
        **{"closed_at": NOW - 86400, "latency_s": 86400, "business_latency_s": 5 * 3600, "deadline": "4h working"},
    }
    withdrawn = {
        **item_row("vk:1:wall:30:2", "Тара", "вопрос", 3600),
        **{"outcome": "withdrawn", "judged": True, "version": 1, "closed_at": NOW - 1800},
        **{"latency_s": 1800, "business_latency_s": 1800, "extra": orjson.dumps({"deleted_by": "vk:user:5"}).decode()},
    }
    with console.store.engine.begin() as connection:
        connection.execute(insert(items), [late])
        connection.execute(insert(items), [withdrawn])
    assert (await console.sign_in("op")).status == 303
    page = await (await console.client.get("/items/vk:1:wall:30:1")).text()
    assert (
        "<strong>отвечено страницей</strong> <small>(docs/responses.md, «Outcomes»: answered, breached)</small>" in page
    )
    assert "Срок: ответ после срока: нарушение (рабочее время 5 ч 00 мин при сроке 4h working)" in page
    page = await (await console.client.get("/items/vk:1:wall:30:2")).text()
    assert "<strong>удалено автором до ответа</strong>" in page and "Удалил: vk:user:5." in page
    assert "Срок: удалено до срока: не нарушение" in page
    # The three-day-old open item is past the due time the store recorded; the worker has not said so.
    page = await (await console.client.get("/items/vk:1:wall:10:1")).text()
    assert "<strong>ждёт ответа</strong>" in page and "срок прошёл; обработчик ещё не записал просрочку" in page


async def test_behind_a_proxy_the_limit_counts_the_client_address(proxied_console: Console) -> None:
    console = proxied_console

    async def attempt(login: str, password: str, address: str) -> int:
        token = await console.csrf()
        response = await console.client.post(
            "/login",
            data={"login": login, "password": password, "csrf": token},
            headers={"X-Forwarded-For": f"203.0.113.9, {address}"},
            allow_redirects=False,
        )
        return response.status

    for _ in range(10):
        assert await attempt("op", "не тот", "198.51.100.1") == 401
    assert await attempt("cur", PASSWORD, "198.51.100.1") == 429  # that address is refused
    assert await attempt("cur", PASSWORD, "198.51.100.2") == 303  # another client behind the same proxy is not


async def test_filters_count_what_they_would_show_and_overdue_only_narrows(console: Console) -> None:
    assert (await console.sign_in("op")).status == 303
    page = await (await console.client.get("/queue")).text()
    assert ">Тара (2)</option>" in page and ">Омск (1)</option>" in page
    assert "только просроченные (1)" in page
    page = await (await console.client.get("/queue?overdue=1")).text()
    assert "Обращений: <strong>1</strong>" in page and "vk:1:wall:10:1" in page and "vk:2:wall:4:3" not in page
    # Counts per municipality under "overdue only": Омск has none overdue.
    assert ">Тара (1)</option>" in page and "Омск" not in page
    page = await (await console.client.get("/queue/rows?municipality=Омск")).text()
    assert "Обращений: <strong>1</strong>" in page and "vk:2:wall:4:3" in page


async def test_a_new_password_ends_the_sessions_signed_in_with_the_old_one(console: Console) -> None:
    assert (await console.sign_in("op")).status == 303
    assert (await console.client.get("/queue", allow_redirects=False)).status == 200
    console.store.add_user("op", hash_password("новый-пароль-2"), "operator")
    response = await console.client.get("/queue", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"].startswith("/login")


async def test_an_authenticating_proxy_names_the_user_only_when_configured(proxied_console: Console) -> None:
    response = await proxied_console.client.get("/queue", headers={"X-Remote-User": "cur"}, allow_redirects=False)
    assert response.status == 200
    page = await response.text()
    assert "cur · " in page and "vk:2:wall:4:3" not in page
    response = await proxied_console.client.get("/queue", headers={"X-Remote-User": "nobody"}, allow_redirects=False)
    assert response.status == 303
    # Without the setting the header is anyone's to send, and counts for nothing.
    proxied_console.client.server.app[CONFIG].behind_proxy = False
    response = await proxied_console.client.get("/queue", headers={"X-Remote-User": "op"}, allow_redirects=False)
    assert response.status == 303


async def test_a_correction_reaches_otklik_overrides_on_the_broker(kafka: str, tmp_path: Any) -> None:
    from otklik.streams.console.cli import kafka_producer
    from tests.conftest import consume, unique

    engine = open_engine(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    migrate(engine)
    with engine.begin() as connection:
        connection.execute(insert(items), [item_row("vk:1:wall:10:1", "Тара", "Когда?", 3600)])
    store = ConsoleStore(engine)
    store.add_user("op", hash_password(PASSWORD), "operator")
    topic = unique("console") + ".otklik.overrides"
    config = ConsoleConfig(store, RegistrySource(store), kafka_producer(kafka, topic), secret=b"k" * 32)
    client = TestClient(TestServer(make_app(config)))
    await client.start_server()
    try:
        console = Console(client, [], store)
        assert (await console.sign_in("op")).status == 303
        token = await console.csrf("/items/vk:1:wall:10:1")
        response = await client.post(
            "/items/vk:1:wall:10:1/correct",
            data={"needs_answer": "no", "note": "благодарность", "csrf": token},
            allow_redirects=False,
        )
        assert response.status == 303
    finally:
        await client.close()
        engine.dispose()
    records = await consume(kafka, topic, expect=1)
    assert len(records) == 1 and records[0].key == b"vk:1"
    override = Override.parse(orjson.loads(records[0].value))
    assert (override.item, override.needs_answer, override.by, override.note) == (
        "vk:1:wall:10:1",
        False,
        "op",
        "благодарность",
    )


async def test_a_correction_kafka_did_not_take_is_not_recorded(console: Console) -> None:
    async def refuse(override: Override) -> None:
        raise ConnectionError("broker down")

    console.client.server.app[CONFIG].produce = refuse
    assert (await console.sign_in("op")).status == 303
    token = await console.csrf("/items/vk:1:wall:10:1")
    response = await console.client.post(
        "/items/vk:1:wall:10:1/correct",
        data={"needs_answer": "no", "note": "благодарность", "csrf": token},
        allow_redirects=False,
    )
    assert response.status == 503
    assert console.store.story("vk:1:wall:10:1")["actions"] == []
