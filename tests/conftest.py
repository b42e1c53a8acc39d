"""Fixtures for tests on real services.

The local Kafka is started when it is not running (and stopped afterwards only if these tests
started it); PostgreSQL is a cluster of the tests' own (tests/postgres.py), started on first use and
removed at the end. A service that does not come up fails the test that needs it; it never skips.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.postgres import LocalPostgres, PostgresError

REPO = Path(__file__).resolve().parent.parent
# shared/reference (VK's JSON Schema, the Compose Specification, Grafana's OpenAPI) lies beside the
# repository, in development and in CI alike; OTKLIK_SHARED_REFERENCE points elsewhere.
SHARED_REFERENCE = Path(os.environ.get("OTKLIK_SHARED_REFERENCE", REPO.parent / "shared" / "reference"))
OTKLIK = str(Path(sys.executable).parent / "otklik")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def kafka() -> Iterator[str]:
    """The bootstrap address of a running local Kafka."""
    from otklik.streams.tools.kafka_local import KafkaError, LocalKafka

    broker = LocalKafka.from_env()
    was_running = broker.pid() is not None
    try:
        broker.start()
    except KafkaError as exc:
        pytest.fail(f"the local Kafka did not start: {exc}")
    yield broker.bootstrap
    if not was_running:
        broker.stop()


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[LocalPostgres]:
    """A PostgreSQL cluster of the tests' own (tests/postgres.py); stopped and removed at the end."""
    failure = ""
    for _attempt in range(3):  # another process may take the free port before the server binds it
        try:
            cluster = LocalPostgres.create(free_port())
        except PostgresError as exc:
            pytest.fail(f"PostgreSQL cannot be set up: {exc}")
        try:
            cluster.start()
        except (PostgresError, OSError, subprocess.TimeoutExpired) as exc:
            failure = f"{exc}\n--- server log ---\n{cluster.log_tail()}"
            cluster.stop()
            if "could not bind" not in failure and "Address already in use" not in failure:
                break
            continue
        try:
            yield cluster
        finally:
            cluster.stop()
        return
    pytest.fail(f"PostgreSQL did not come up: {failure}")


@pytest.fixture(scope="session")
def postgres_url(postgres_cluster: LocalPostgres) -> str:
    """SQLAlchemy URL of the cluster's database ``otklik``, as the role ``otklik`` over TCP."""
    return postgres_cluster.url()


@pytest.fixture
def pg_database(postgres_cluster: LocalPostgres) -> Iterator[str]:
    """SQLAlchemy URL of a fresh empty PostgreSQL database for one test, dropped after it."""
    name = postgres_cluster.create_database()
    try:
        yield postgres_cluster.url(name)
    finally:
        postgres_cluster.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh empty store database: an SQLite file, then a PostgreSQL database (one test run each).

    The PostgreSQL cluster starts only when a test asks for the second."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite3'}"
    return request.getfixturevalue("pg_database")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass
class WorkerProcess:
    """A real `otklik worker` in its own process, with its own topics, group and port."""

    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen | None = None
    starts: int = field(default=0)

    @property
    def web(self) -> str:
        return f"http://127.0.0.1:{self.env['OTKLIK_WEB_PORT']}"

    def topic(self, name: str) -> str:
        return self.env["OTKLIK_TOPIC_PREFIX"] + name

    def start(self, timeout: float = 90.0) -> None:
        self.starts += 1
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([OTKLIK, "worker"], env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        log.close()
        self.wait_assigned(timeout)

    def wait_assigned(self, timeout: float) -> None:
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                pytest.fail(f"the worker exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.web + "/health", timeout=2) as resp:
                    import json

                    health = json.loads(resp.read())
                    if health["assigned_partitions"] > 0 and not health["rebalancing"]:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        pytest.fail(f"the worker did not join its group within {timeout}s:\n{self.log_tail()}")

    def stop(self, kill: bool = False) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        if kill:
            self.proc.kill()
        else:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def metrics(self) -> str:
        import urllib.request

        with urllib.request.urlopen(self.web + "/metrics", timeout=5) as resp:
            return resp.read().decode()

    def health(self) -> tuple[int | None, dict]:
        """/health's status and body (a 503 carries one too); (None, {}) when it does not answer."""
        import json
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(self.web + "/health", timeout=3) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())
        except OSError:
            return None, {}

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return "(no log)"


def worker_process(
    bootstrap: str, folder: Path, registry: Path | None = None, prefix: str = "t", **extra_env: str
) -> WorkerProcess:
    """A worker (not started) on its own topics, web port and data folder under ``folder``."""
    name = unique(prefix)
    env = dict(os.environ)
    env.update(
        OTKLIK_KAFKA_BROKER=f"kafka://{bootstrap}",
        OTKLIK_APP_ID=name,
        OTKLIK_TOPIC_PREFIX=name + ".",
        OTKLIK_WEB_PORT=str(free_port()),
        OTKLIK_DATA_DIR=str(folder / name),
        OTKLIK_PARTITIONS="2",
        OTKLIK_REBALANCE_TIMEOUT="6",
        OTKLIK_LOG_LEVEL="info",
    )
    if registry is not None:
        env["OTKLIK_REGISTRY"] = str(registry)
    env.update(extra_env)
    return WorkerProcess(env=env, log_path=folder / f"{name}.log")


@pytest.fixture
def worker_factory(kafka: str, tmp_path: Path) -> Iterator:
    workers: list[WorkerProcess] = []

    def make(registry: Path | None = None, **extra_env: str) -> WorkerProcess:
        w = worker_process(kafka, tmp_path, registry, **extra_env)
        workers.append(w)
        return w

    yield make
    for w in workers:
        w.stop()


async def produce(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes]]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in records:
            await producer.send(topic, value=value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def consume(bootstrap: str, topic: str, expect: int, timeout: float = 60.0) -> list:
    """Read a topic from the start until `expect` records arrived or the time is up."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    out: list = []
    try:
        deadline = time.monotonic() + timeout
        while len(out) < expect and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                out.extend(records)
    finally:
        await consumer.stop()
    return out


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


# ---- tests in a real browser (tests/browser.py) ----------------------------------------------------------


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):  # type: ignore[no-untyped-def]
    """Keep each phase's report on the item (``item.rep_setup``, ``rep_call``): the browser fixtures
    save the pages at teardown only when the test failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    if report.failed and report.when == "call" and "new_context" in item.fixturenames:
        tmp_path = item.funcargs.get("tmp_path")  # type: ignore[attr-defined]
        report.sections.append(("browser pages", f"saved under {tmp_path}/screenshots after the test"))
    return report


_PARKED_LOOP = pytest.StashKey["object"]()


@pytest.fixture(scope="session")
def browser(request: pytest.FixtureRequest) -> Iterator:
    """One headless chromium (Debian's, by its path) for the run; fails, never skips, when it cannot start."""
    from playwright.sync_api import sync_playwright

    from tests.browser import BrowserUnavailable, ParkedLoop, launch

    playwright = sync_playwright().start()
    loop = ParkedLoop()
    try:
        try:
            chromium = launch(playwright)
        except BrowserUnavailable as exc:
            pytest.fail(str(exc), pytrace=False)
        request.config.stash[_PARKED_LOOP] = loop
        loop.park()  # asyncio tests may run between browser tests (tests/browser.py, ParkedLoop)
        try:
            yield chromium
        finally:
            loop.resume()
            chromium.close()
    finally:
        loop.resume()
        playwright.stop()


@pytest.fixture(autouse=True)
def _browser_loop(request: pytest.FixtureRequest) -> Iterator[None]:
    """Playwright's loop marked as running during a test that uses the browser, and only then
    (tests/browser.py, ParkedLoop). Set up before, and torn down after, the browser fixtures."""
    if "browser" not in request.fixturenames:
        yield
        return
    request.getfixturevalue("browser")
    loop = request.config.stash[_PARKED_LOOP]
    loop.resume()
    try:
        yield
    finally:
        loop.park()


@pytest.fixture
def new_context(browser, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator:  # type: ignore[no-untyped-def]
    """``new_context(**options)``: a fresh browser context (its own cookies: one per signed-in user).
    If the test failed, every page still open is saved under ``tmp_path / "screenshots"``."""
    from tests.browser import new_context as make_context
    from tests.browser import save_pages

    contexts: list = []

    def make(**options):  # type: ignore[no-untyped-def]
        context = make_context(browser, **options)
        contexts.append(context)
        return context

    yield make
    try:
        reports = (getattr(request.node, f"rep_{when}", None) for when in ("setup", "call"))
        if any(report is not None and report.failed for report in reports):
            save_pages(contexts, tmp_path / "screenshots")
    finally:
        for context in contexts:
            context.close()


@pytest.fixture
def page(new_context):  # type: ignore[no-untyped-def]
    """A page in a context of its own; saved under ``tmp_path / "screenshots"`` if the test fails."""
    return new_context().new_page()
