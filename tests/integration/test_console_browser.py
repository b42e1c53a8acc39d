"""The operations console in a real browser (Debian's chromium driven by Playwright, tests/browser.py) over
the real chain: a real `otklik worker` judges simulated comments, a real `otklik store` writes its records to
an SQLite store, and the console (served in a thread of the test) reads that store and writes accepted
corrections to the worker's otklik.overrides on the broker. The re-judged item the test then sees is the
one the worker wrote and the store kept, not one fed in by the test.

Security checks the console's integration tests already make with aiohttp's client are not repeated here
(tests/integration/test_console.py): a form without its CSRF token gets 403
(``test_a_form_without_its_csrf_token_gets_403``), a curator asking for another municipality's item gets
404 (``test_a_curator_sees_their_municipality_only``), a page administrator cannot correct
(``test_a_page_administrator_disputes_but_cannot_correct``), ten wrong passwords are refused for a while
(``test_ten_wrong_passwords_in_a_row_are_refused_for_a_while``), and SQL metacharacters in filters give an
empty list on SQLite and PostgreSQL (``test_filters_with_sql_metacharacters_give_an_empty_list``); the
worker's correction API without a token gets 401 in tests/integration/test_override_api_auth.py. Here the
browser shows that markup in texts never runs (any dialog fails the test) and that a filter with SQL
metacharacters renders an empty queue.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import openpyxl
import pytest
from sqlalchemy import select

from otklik.schemas.records import RawEnvelope
from otklik.streams.console.app import ConsoleConfig, make_app
from otklik.streams.console.auth import hash_password
from otklik.streams.console.cli import kafka_producer
from otklik.streams.console.data import ConsoleStore, RegistrySource
from otklik.streams.store.db import open_engine
from otklik.streams.store.schema import items
from tests.browser import ServedApp
from tests.conftest import OTKLIK, REPO, produce, run
from tests.integration.test_store_live import StoreProcess

pytestmark = pytest.mark.integration

TARA, OMSK = 200000811, 200000812
REGISTRY = f"""
defaults:
  calendar: none
  schedule: {{mon-sun: "00:00-24:00"}}  # around the clock: the test passes at any hour of any day
  deadline: "30m calendar"
  timezone: Europe/Moscow
pages:
  - id: vk:{TARA}
    title: ЦРБ Тары
    municipality: Тара
    sector: health
  - id: vk:{OMSK}
    title: Школа № 5
    municipality: Омск
    sector: education
"""
PASSWORD = "пароль-для-браузера-1"
XSS = 'Почему не отвечаете? <script>alert(1)</script> и "><img src=x onerror=alert(2)>'
QUESTION = "Когда починят крыльцо поликлиники?"
SQL_FILTER = "municipality=" + quote("' OR '1'='1")


def item_url(name: str) -> re.Pattern[str]:
    """An item page's address, its colons escaped or not."""
    return re.compile("/items/" + re.escape(name).replace(":", "(?::|%3A)") + "$")


def in_thread(coro) -> None:  # type: ignore[no-untyped-def]
    # Sync Playwright's loop counts as running in the test's thread (tests/browser.py, ParkedLoop).
    with ThreadPoolExecutor(1) as pool:
        pool.submit(run, coro).result(timeout=60)


def item(group: int, cid: int) -> str:
    return f"vk:{group}:wall:4:{cid}"


def comment(group: int, cid: int, text: str, date: int) -> RawEnvelope:
    body = {
        "type": "wall_reply_new",
        "group_id": group,
        "event_id": f"e{group}-{cid}",
        "v": "5.199",
        "object": {"id": cid, "from_id": 9000 + cid, "date": date, "text": text, "post_id": 4, "owner_id": -group},
    }
    return RawEnvelope("vk", "test", float(date), body)


def store_rows(url: str) -> dict[str, tuple[str, int]]:
    """item → (outcome, version) of every item the store holds a worker's record of."""
    engine = open_engine(url)
    try:
        with engine.connect() as connection:
            query = select(items.c.item, items.c.outcome, items.c.version).where(items.c.version > 0)
            return {row.item: (row.outcome, row.version) for row in connection.execute(query)}
    except Exception:  # the store has not created its tables yet
        return {}
    finally:
        engine.dispose()


def wait_until(check, what: str, store: StoreProcess, timeout: float = 90.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not store.alive():
            pytest.fail(f"the store exited:\n{store.log_tail()}")
        found = check()
        if found:
            return found
        time.sleep(0.5)
    pytest.fail(f"{what} did not happen within {timeout}s\n--- store ---\n{store.log_tail()}")


@dataclass
class Chain:
    url: str  # the store's database
    console: str  # the console's address
    store: StoreProcess


@pytest.fixture
def chain(worker_factory, kafka: str, tmp_path: Path) -> Iterator[Chain]:
    registry = tmp_path / "registry.yaml"
    registry.write_text(REGISTRY, encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    worker = worker_factory(registry, OTKLIK_LATE_WINDOW="2", OTKLIK_TICK_INTERVAL="1")
    worker.start()
    store = StoreProcess.beside(worker, url, registry, tmp_path / "store.log")
    store.start()
    try:
        created = int(time.time()) - 3600  # an hour ago: past the half-hour deadline, still open
        events = [
            comment(TARA, 1, QUESTION, created),
            comment(TARA, 2, XSS, created + 60),
            comment(OMSK, 3, "Где расписание уроков на завтра?", created + 120),
        ]
        in_thread(
            produce(
                kafka, worker.topic("otklik.raw"), [(f"vk:{e.body['group_id']}".encode(), e.to_json()) for e in events]
            )
        )
        expected = {item(TARA, 1), item(TARA, 2), item(OMSK, 3)}
        wait_until(
            lambda: expected <= {i for i, (outcome, _) in store_rows(url).items() if outcome == "open"},
            "the three open items reaching the store",
            store,
        )
        # One user through the command (as a newcomer adds them), one straight into the store.
        added = subprocess.run(
            [OTKLIK, "console", "--store", url, "add-user", "op", "--role", "operator", "--password-stdin"],
            input=PASSWORD,
            capture_output=True,
            text=True,
            cwd=REPO,
            env=dict(os.environ),
            timeout=60,
        )
        assert added.returncode == 0, added.stderr
        engine = open_engine(url)
        console_store = ConsoleStore(engine)
        console_store.add_user("adm", hash_password(PASSWORD), "page_admin", pages=[f"vk:{TARA}"])
        config = ConsoleConfig(
            console_store,
            RegistrySource(console_store, registry),
            kafka_producer(kafka, worker.topic("otklik.overrides")),
        )
        try:
            with ServedApp(lambda: make_app(config)) as served:
                yield Chain(url, served.url, store)
        finally:
            engine.dispose()
    finally:
        store.stop()


def no_dialogs(page) -> list[str]:  # type: ignore[no-untyped-def]
    """Fail on any alert, confirm or prompt: a script from a comment's text would have opened one."""
    opened: list[str] = []

    def refuse(dialog) -> None:  # type: ignore[no-untyped-def]
        opened.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", refuse)
    return opened


def sign_in(page, base: str, login: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(base + "/queue")
    page.wait_for_url(re.compile(r"/login\?next="))
    page.get_by_label("Логин").fill(login)
    page.get_by_label("Пароль").fill(PASSWORD)
    page.get_by_role("button", name="Войти").click()
    page.wait_for_url(base + "/queue")


def test_dispute_accepted_in_the_browser_is_rejudged_by_the_worker(chain: Chain, new_context, tmp_path) -> None:
    base = chain.console
    operator = new_context().new_page()
    admin = new_context().new_page()
    opened_op, opened_adm = no_dialogs(operator), no_dialogs(admin)

    # The operator signs in and filters the queue by municipality.
    sign_in(operator, base, "op")
    assert operator.locator(".summary strong").inner_text() == "3"
    operator.get_by_label("Муниципалитет").select_option("Тара")  # queue.js submits the form on change
    operator.wait_for_url(re.compile(r"/queue\?.*municipality="))
    assert operator.locator(".summary strong").inner_text() == "2"
    rows = operator.locator("table.queue tbody tr")
    assert rows.count() == 2 and "Омск" not in rows.all_inner_texts()[0] + rows.all_inner_texts()[1]
    # The markup in a comment's text shows as text, and runs nothing.
    assert "<script>alert(1)</script>" in operator.locator("table.queue").inner_text()
    assert operator.locator("table.queue img").count() == 0 and opened_op == []

    # A filter with SQL metacharacters: an empty queue, not an error.
    response = operator.goto(base + "/queue?" + SQL_FILTER)
    assert response is not None and response.status == 200
    assert operator.locator(".summary strong").inner_text() == "0"
    assert operator.get_by_text("Ничего не найдено").is_visible()

    # The page administrator opens their item from the queue and disputes it.
    sign_in(admin, base, "adm")
    assert admin.locator(".summary strong").inner_text() == "2"  # their page's items only
    admin.get_by_role("link", name=item(TARA, 1)).click()
    admin.wait_for_url(item_url(item(TARA, 1)))
    assert admin.locator("blockquote.text").inner_text() == QUESTION
    assert admin.locator("#correct").count() == 0  # a page administrator only disputes
    admin.get_by_label("Причина").select_option("answered_in_dm")
    admin.get_by_label("Пояснение").fill("ответили в личных сообщениях <b>вчера</b>")
    admin.get_by_role("button", name="Оспорить").click()
    admin.wait_for_url(re.compile(r"\?done=disputed$"))
    assert "Спор отправлен оператору" in admin.locator(".notice").inner_text()

    # The operator sees the dispute and accepts it; the correction goes to otklik.overrides.
    operator.goto(base + "/disputes")
    operator.get_by_role("link", name=item(TARA, 1)).first.click()
    operator.wait_for_url(item_url(item(TARA, 1)))
    assert "ответили в личных сообщениях <b>вчера</b>" in operator.locator(".dispute").inner_text()
    version_before = store_rows(chain.url)[item(TARA, 1)][1]
    operator.get_by_label("Примечание").first.fill("подтверждаю")
    operator.get_by_role("button", name="Принять").click()
    operator.wait_for_url(re.compile(r"\?done=accepted$"))
    assert "Спор принят" in operator.locator(".notice").inner_text()

    # The worker re-judges the item and the store keeps its new record; the item page shows it.
    wait_until(
        lambda: (row := store_rows(chain.url)[item(TARA, 1)])[0] == "no_answer_needed" and row[1] > version_before,
        "the re-judged item reaching the store",
        chain.store,
    )
    operator.reload()
    facts = operator.locator("dl.facts").inner_text()
    assert "ответ не нужен" in facts and "ждёт ответа" not in facts
    assert "(причина разбора: override)" in facts
    handled = operator.locator("text=Исправления, которые учёл обработчик").locator("xpath=following-sibling::ul[1]")
    assert "no_answer_needed" in handled.inner_text() and "op" in handled.inner_text()
    # The re-judged item has left the queue.
    operator.goto(base + "/queue")
    assert operator.locator(".summary strong").inner_text() == "2"
    assert operator.get_by_role("link", name=item(TARA, 1)).count() == 0

    # The month's rating by municipality, downloaded as XLSX.
    operator.get_by_role("link", name="Рейтинг").click()
    operator.wait_for_url("**/rating")
    with operator.expect_download() as download_info:
        operator.get_by_role("link", name="XLSX").click()
    saved = tmp_path / download_info.value.suggested_filename
    download_info.value.save_as(saved)
    assert saved.suffix == ".xlsx" and saved.name.endswith("-municipality.xlsx")
    book = openpyxl.load_workbook(saved, read_only=True)
    cells = {str(c) for row in book.worksheets[0].iter_rows(values_only=True) for c in row if c is not None}
    assert {"Тара", "Омск"} <= cells

    # Sign out: the queue asks for a sign-in again.
    operator.get_by_role("button", name="Выйти").click()
    operator.wait_for_url("**/login")
    operator.goto(base + "/queue")
    operator.wait_for_url(re.compile(r"/login\?next="))
    assert opened_op == [] and opened_adm == []


def test_on_postgresql_markup_shows_as_text_and_sql_in_a_filter_gives_an_empty_queue(pg_database, page) -> None:
    """The same pages on a PostgreSQL store (rows written as the store writes them: no worker needed)."""
    from sqlalchemy import insert

    from otklik.streams.store.db import migrate
    from otklik.streams.store.schema import registry_versions
    from tests.integration.test_console import REGISTRY_VERSION, item_row
    from tests.integration.test_console import XSS as STORED_XSS

    engine = open_engine(pg_database)
    migrate(engine)
    with engine.begin() as connection:
        connection.execute(
            insert(items),
            [item_row("vk:1:wall:10:2", "Тара", STORED_XSS, 600), item_row("vk:2:wall:4:3", "Омск", QUESTION, 60)],
        )
        connection.execute(insert(registry_versions).values(REGISTRY_VERSION))
    console_store = ConsoleStore(engine)
    console_store.add_user("op", hash_password(PASSWORD), "operator")

    async def produce(override) -> None:  # type: ignore[no-untyped-def]
        raise AssertionError("nothing is corrected here")

    opened = no_dialogs(page)
    try:
        with ServedApp(
            lambda: make_app(ConsoleConfig(console_store, RegistrySource(console_store), produce))
        ) as served:
            sign_in(page, served.url, "op")
            assert page.locator(".summary strong").inner_text() == "2"
            page.get_by_role("link", name="vk:1:wall:10:2").click()
            page.wait_for_url(item_url("vk:1:wall:10:2"))
            assert page.locator("blockquote.text").inner_text() == STORED_XSS
            assert page.locator("main img").count() == 0
            response = page.goto(served.url + "/queue?" + SQL_FILTER)
            assert response is not None and response.status == 200
            assert page.locator(".summary strong").inner_text() == "0"
            assert page.get_by_text("Ничего не найдено").is_visible()
    finally:
        engine.dispose()
    assert opened == []
