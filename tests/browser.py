"""Tests in a real browser: Playwright for Python driving Debian's ``chromium`` package by its path.

Playwright downloads no browser here (never run ``playwright install``): ``make test`` installs Debian's
chromium when it is missing (Makefile, ``deb-packages``), and :func:`launch` starts that binary. When
it cannot start, the tests that need it fail with the reason; they are never skipped.

The fixtures in tests/conftest.py build on this module:

- ``browser`` (session): one headless chromium for the whole run;
- ``new_context`` (per test): ``new_context()`` gives a fresh browser context (its own cookies: one per
  signed-in user), closed after the test;
- ``page`` (per test): a page in a context of its own.

When a test fails, every page its contexts still have open is saved under the test's temporary folder
(``tmp_path / "screenshots"``): a full-page PNG and the page's HTML (:func:`save_pages`).

Sync API: a browser test is a plain ``def`` (not ``async def``), and the application under test runs
beside the browser in a thread of its own (:class:`ServedApp`) or as a subprocess. Sync Playwright
keeps its event loop marked as running in the test's thread between calls, which would stop every
asyncio test after the first browser test; :class:`ParkedLoop` hides the mark outside browser tests.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp import web
    from playwright.sync_api import Browser, BrowserContext, Playwright

# Playwright's own limit per action or wait is 30 s; a page of ours that takes longer is a failure.
ACTION_TIMEOUT_MS = 10_000


class BrowserUnavailable(RuntimeError):
    """Chromium cannot be found or started; the message says why and how to install it."""


class ParkedLoop:
    """Sync Playwright's event loop, marked as running only while a browser test uses it.

    Between two sync calls Playwright leaves its loop set as the thread's running loop (it is suspended
    inside ``run_until_complete`` in a greenlet of its own); pytest-asyncio then refuses to run a test
    ("cannot be called from a running event loop"). :meth:`park` clears the mark once the browser is
    up and after each browser test; :meth:`resume` sets it again before Playwright is used."""

    def __init__(self) -> None:
        self.loop = asyncio._get_running_loop()  # set by sync_playwright().start()

    def park(self) -> None:
        asyncio._set_running_loop(None)

    def resume(self) -> None:
        asyncio._set_running_loop(self.loop)


def chromium_path() -> str:
    """The path of Debian's chromium (``/usr/bin/chromium``)."""
    path = shutil.which("chromium")
    if path is None:
        raise BrowserUnavailable(
            "Debian's chromium is not installed: `make test` installs it (Makefile, deb-packages), "
            "or `apt-get install chromium`"
        )
    return path


def launch_args() -> list[str]:
    # Chromium refuses to start as root with its sandbox (the tests run as root in containers).
    return ["--no-sandbox"] if os.geteuid() == 0 else []


def launch(playwright: Playwright) -> Browser:
    """Headless chromium from its Debian path; :class:`BrowserUnavailable` when it cannot start."""
    path = chromium_path()
    try:
        return playwright.chromium.launch(executable_path=path, headless=True, args=launch_args())
    except Exception as exc:  # Playwright's Error carries chromium's own output
        raise BrowserUnavailable(f"{path} did not start: {exc}") from exc


def new_context(browser: Browser, **options) -> BrowserContext:  # type: ignore[no-untyped-def]
    """A fresh context (its own cookies and storage) with the tests' timeouts and a Russian locale."""
    context = browser.new_context(locale="ru-RU", timezone_id="Europe/Moscow", **options)
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    return context


def save_pages(contexts: Iterable[BrowserContext], folder: Path) -> list[Path]:
    """Every open page of ``contexts`` as ``NN-<path>.png`` (full page) and ``.html`` under ``folder``;
    the files written. A page that cannot be saved (closed, crashed) gets a ``.txt`` saying why, so
    that saving never hides the test's own failure."""
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    pages = [page for context in contexts for page in context.pages]
    for number, page in enumerate(pages, start=1):
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", page.url.split("://", 1)[-1].split("/", 1)[-1])[:80] or "page"
        stem = folder / f"{number:02d}-{slug}"
        try:
            page.screenshot(path=str(stem.with_suffix(".png")), full_page=True)
            written.append(stem.with_suffix(".png"))
            stem.with_suffix(".html").write_text(page.content(), encoding="utf-8")
            written.append(stem.with_suffix(".html"))
        except Exception as exc:
            stem.with_suffix(".txt").write_text(f"{page.url}: not saved: {exc}\n", encoding="utf-8")
            written.append(stem.with_suffix(".txt"))
    return written


class ServedApp:
    """An aiohttp application served on 127.0.0.1 (a free port) from a thread of its own, so that the
    sync Playwright API can drive it from the test's thread::

        with ServedApp(make_app) as served:
            page.goto(served.url + "/")

    ``factory`` builds the application inside the server's event loop (aiohttp binds some objects to
    the loop they were made in)."""

    def __init__(self, factory: Callable[[], web.Application]) -> None:
        self.factory = factory
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="served-app", daemon=True)
        self._runner: web.AppRunner | None = None

    def __enter__(self) -> ServedApp:
        self._thread.start()
        port = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def _start(self) -> int:
        from aiohttp import web

        self._runner = web.AppRunner(self.factory(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return self._runner.addresses[0][1]

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()
