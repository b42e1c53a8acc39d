"""The browser tests' foundation (tests/browser.py, the fixtures in tests/conftest.py): Debian's chromium
driven by Playwright fills and submits a real form served by aiohttp, and a failing test leaves its
pages under its temporary folder."""

from __future__ import annotations

import html
import os
import subprocess
import sys
from pathlib import Path

from aiohttp import web

from tests.browser import ServedApp, chromium_path, save_pages

REPO = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n"


def form_app(received: list[dict[str, str]]) -> web.Application:
    """A page with a form, and the page its POST answers; ``received`` keeps what the server was sent."""

    async def form(request: web.Request) -> web.Response:
        return web.Response(
            text="""<!doctype html><html lang="ru"><head><meta charset="utf-8"><title>Обращение</title></head>
<body><form method="post" action="/submit">
<label>Кто <input name="who" required></label>
<label>Вид <select name="kind"><option value="question">вопрос</option>
<option value="complaint">жалоба</option></select></label>
<button type="submit">Отправить</button></form></body></html>""",
            content_type="text/html",
        )

    async def submit(request: web.Request) -> web.Response:
        data = await request.post()
        fields = {"who": str(data["who"]), "kind": str(data["kind"])}
        received.append(fields)
        return web.Response(
            text=f'<!doctype html><html lang="ru"><head><meta charset="utf-8"><title>Принято</title></head>'
            f'<body><p id="result">{html.escape(fields["who"])}: {html.escape(fields["kind"])}</p></body></html>',
            content_type="text/html",
        )

    app = web.Application()
    app.router.add_get("/", form)
    app.router.add_post("/submit", submit)
    return app


def test_a_form_is_filled_submitted_and_its_result_read(page, browser) -> None:
    assert browser.version  # the binary we launched answers
    received: list[dict[str, str]] = []
    with ServedApp(lambda: form_app(received)) as served:
        page.goto(served.url + "/")
        assert page.title() == "Обращение"
        page.get_by_label("Кто").fill("Петрова <ЦУР>")
        page.get_by_label("Вид").select_option("complaint")
        page.get_by_role("button", name="Отправить").click()
        page.wait_for_url(served.url + "/submit")
        assert page.locator("#result").inner_text() == "Петрова <ЦУР>: complaint"
    assert received == [{"who": "Петрова <ЦУР>", "kind": "complaint"}]


async def test_an_asyncio_test_runs_after_a_browser_test() -> None:
    # Sync Playwright's loop is parked outside browser tests (tests/browser.py, ParkedLoop); the browser
    # test after this one shows it resumes.
    from aiohttp.test_utils import TestClient, TestServer

    async with TestClient(TestServer(form_app([]))) as client:
        resp = await client.post("/submit", data={"who": "Сидоров", "kind": "question"})
        assert "Сидоров: question" in await resp.text()


def test_save_pages_writes_a_screenshot_and_the_html_of_each_open_page(new_context, tmp_path) -> None:
    with ServedApp(lambda: form_app([])) as served:
        first, second = new_context(), new_context()
        first.new_page().goto(served.url + "/")
        second.new_page().goto(served.url + "/")
        closed = second.new_page()
        closed.close()  # closed pages are no longer the context's: nothing to save
        written = save_pages([first, second], tmp_path / "shots")
    assert sorted(p.name for p in written) == ["01-page.html", "01-page.png", "02-page.html", "02-page.png"]
    for path in written:
        if path.suffix == ".png":
            assert path.read_bytes().startswith(PNG)
        else:
            assert "Отправить" in path.read_text(encoding="utf-8")


INNER = """
from tests.browser import ServedApp
from tests.integration.test_browser_fixture import form_app


def test_fails_on_a_page(page):
    with ServedApp(lambda: form_app([])) as served:
        page.goto(served.url + "/")
        assert page.title() == "not this title"


def test_passes_on_a_page(page):
    with ServedApp(lambda: form_app([])) as served:
        page.goto(served.url + "/")
        assert page.title() == "Обращение"
"""


def inner_pytest(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess, Path]:
    """Run INNER in a pytest of its own with the browser fixtures of tests/conftest.py; its basetemp."""
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "conftest.py").write_text(
        "from tests.conftest import _browser_loop, browser, new_context, page, pytest_runtest_makereport  # noqa: F401\n"
    )
    (inner / "test_inner.py").write_text(INNER)
    base = tmp_path / "base"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(inner), "-c"]
    command += [os.devnull, "--basetemp", str(base), str(inner / "test_inner.py")]
    done = subprocess.run(
        command,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done, base


def test_a_failing_browser_test_leaves_its_page_under_its_tmp_path(tmp_path) -> None:
    """The whole path: the hook keeps the failed report on the item, and the page fixture's teardown
    saves the page under that test's tmp_path."""
    done, base = inner_pytest(tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr  # a test failed, nothing else went wrong
    assert "1 failed, 1 passed" in done.stdout and "browser pages" in done.stdout, done.stdout
    assert not (base / "test_passes_on_a_page0" / "screenshots").exists()  # a test that passed saves nothing
    saved = sorted(base.glob("test_fails_on_a_page0/screenshots/*"))
    assert [p.suffix for p in saved] == [".html", ".png"], done.stdout
    assert saved[1].read_bytes().startswith(PNG)
    assert "Отправить" in saved[0].read_text(encoding="utf-8")


def test_chromium_is_debians_package() -> None:
    # The browser is the one apt installed, never one Playwright downloaded.
    assert Path(chromium_path()).resolve().is_relative_to("/usr")


def test_without_chromium_the_browser_tests_fail_and_say_how_to_install_it(tmp_path) -> None:
    nothing = tmp_path / "empty-path"
    nothing.mkdir()
    done, _ = inner_pytest(tmp_path, PATH=str(nothing))
    assert "2 errors" in done.stdout and "skipped" not in done.stdout, done.stdout
    assert "Debian's chromium is not installed: `make test` installs it" in done.stdout
