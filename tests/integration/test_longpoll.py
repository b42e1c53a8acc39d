"""The Long Poll source against a local HTTP server speaking VK's Bots Long Poll protocol, into the real broker.

The fake VK keeps an event history numbered by ``ts`` (the next event's number), hands out keys from
``groups.getLongPollServer``, answers ``a_check`` with batches of at most three updates, holds the
request open up to ``wait`` seconds when there is nothing new, and can be told to answer ``failed``
1, 2 or 3 or an HTTP error next.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from otklik.schemas.records import Gap
from otklik.streams.edge.longpoll import KafkaSink, LongPollConfig, LongPollSource, StateFile
from otklik.streams.settings import LongPollSettings, WorkerSettings
from otklik.streams.worker.topics import ensure_topics
from tests.conftest import free_port
from tests.integration.test_gateway import read_topic

pytestmark = pytest.mark.integration

GROUP = 300300
TOKEN = "vk1.a.community-token-do-not-log"


class FakeVk:
    def __init__(self, batch: int = 3) -> None:
        self.events: list[dict[str, Any]] = []
        self.first_ts = 1  # the oldest ts still in the history
        self.keys: set[str] = set()
        self.issued = 0
        self.forced: list[Any] = []  # next a_check answers: a dict, or an int HTTP status
        self.batch = batch
        self.checks = 0
        self.server_calls = 0
        self.token_in_url = False
        self.changed = asyncio.Event()
        self.url = ""

    @property
    def current_ts(self) -> int:
        return len(self.events) + 1

    def add(self, n: int) -> None:
        for _ in range(n):
            number = len(self.events) + 1
            self.events.append(
                {
                    "type": "wall_reply_new",
                    "group_id": GROUP,
                    "event_id": f"lp-{number:04d}",
                    "v": "5.199",
                    "object": {
                        "id": number,
                        "from_id": 7000 + number,
                        "date": 1764000000 + number,
                        "text": f"вопрос {number}",
                        "post_id": 88,
                        "owner_id": -GROUP,
                    },
                }
            )
        self.changed.set()

    async def get_server(self, request: web.Request) -> web.Response:
        self.server_calls += 1
        form = await request.post()
        self.token_in_url |= "access_token" in request.query
        if form.get("access_token") != TOKEN or form.get("group_id") != str(GROUP) or not form.get("v"):
            return web.json_response({"error": {"error_code": 5, "error_msg": "User authorization failed"}})
        self.issued += 1
        key = f"key-{self.issued}"
        self.keys = {key}  # a new key invalidates the old one
        return web.json_response({"response": {"key": key, "server": self.url + "/lp", "ts": str(self.current_ts)}})

    async def a_check(self, request: web.Request) -> web.Response:
        self.checks += 1
        q = request.query
        assert q["act"] == "a_check"
        if self.forced:
            forced = self.forced.pop(0)
            if isinstance(forced, int):
                return web.Response(status=forced, text="upstream trouble")
            return web.json_response(forced)
        if q["key"] not in self.keys:
            return web.json_response({"failed": 2})
        ts = int(q["ts"])
        if ts < self.first_ts:
            return web.json_response({"failed": 1, "ts": self.first_ts})
        deadline = time.monotonic() + int(q["wait"])
        while ts > len(self.events) and time.monotonic() < deadline:
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), deadline - time.monotonic())
            except TimeoutError:
                break
        updates = self.events[ts - 1 : ts - 1 + self.batch]
        return web.json_response({"ts": str(ts + len(updates)), "updates": updates})

    async def start(self) -> web.AppRunner:
        app = web.Application()
        app.router.add_post("/method/groups.getLongPollServer", self.get_server)
        app.router.add_get("/lp", self.a_check)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"
        return runner


class Harness:
    def __init__(self, vk: FakeVk, config: LongPollConfig, sink: KafkaSink, gaps: KafkaSink | None = None) -> None:
        self.vk, self.config, self.sink, self.gaps = vk, config, sink, gaps
        self.stop = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.source: LongPollSource | None = None
        self._session: Any = None

    async def start(self) -> LongPollSource:
        import aiohttp

        self._session = aiohttp.ClientSession()
        self.stop = asyncio.Event()
        self.source = LongPollSource(GROUP, TOKEN, self.config, self.sink, self._session, gaps=self.gaps)
        self.task = asyncio.create_task(self.source.run(self.stop))
        return self.source

    async def until(self, condition, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.task is not None
            if self.task.done():
                self.task.result()
                pytest.fail("the source stopped by itself")
            assert time.monotonic() < deadline, "timed out"
            await asyncio.sleep(0.02)

    async def shutdown(self, kill: bool = False) -> None:
        assert self.task is not None
        if kill:
            self.task.cancel()  # as abrupt as it gets inside one process: no chance to finish anything
        else:
            self.stop.set()
        try:
            await asyncio.wait_for(self.task, 10)
        except asyncio.CancelledError:
            pass
        await self._session.close()


@pytest.fixture
async def setup(kafka: str, tmp_path: Path):
    vk = FakeVk()
    runner = await vk.start()
    settings = WorkerSettings(broker=f"kafka://{kafka}", topic_prefix=f"lp-{uuid.uuid4().hex[:10]}.", partitions=2)
    await ensure_topics(settings)
    sink = KafkaSink(kafka, settings.topic("raw"))
    await sink.start()
    config = LongPollConfig.from_settings(
        LongPollSettings(
            broker=settings.broker,
            topic_prefix=settings.topic_prefix,
            api_url=vk.url + "/method/",  # the trailing slash is dropped
            state_dir=tmp_path / "state",
        ),
        wait_s=1,
        backoff_s=0.05,
        max_backoff_s=0.2,
    )
    yield vk, config, sink, kafka
    await sink.stop()
    await runner.cleanup()


async def produced_ids(kafka: str, topic: str) -> list[str]:
    records = await read_topic(kafka, topic)
    for r in records:
        assert r.key == f"vk:{GROUP}".encode()
        envelope = orjson.loads(r.value)
        assert (envelope["platform"], envelope["source"]) == ("vk", "vk-longpoll")
    return [orjson.loads(r.value)["body"]["event_id"] for r in records]


async def test_restarts_in_the_middle_neither_lose_nor_repeat_events(setup, caplog):
    vk, config, sink, kafka = setup
    caplog.set_level(logging.DEBUG)
    first = Harness(vk, config, sink)
    source = await first.start()
    await first.until(lambda: vk.checks >= 1)  # first start: from VK's current ts
    vk.add(7)
    vk.forced = [{"failed": 2}, 502]  # after the first batch: the key expires, then an upstream error
    await first.until(lambda: source.produced == 7)
    await first.shutdown()
    assert StateFile(config.state_dir, GROUP).load() == "8"
    assert vk.server_calls == 2  # the start, and a new key after failed 2

    vk.add(5)  # arrive while no source runs
    second = Harness(vk, config, sink)
    source = await second.start()
    await second.until(lambda: source.produced == 5)
    # failed 3 while caught up: new key and ts, and nothing to lose; then more events.
    vk.forced = [{"failed": 3}]
    await second.until(lambda: source.lost_notices == 1)
    vk.add(2)
    await second.until(lambda: source.produced == 7)
    await second.until(lambda: vk.checks >= 3 and StateFile(config.state_dir, GROUP).load() == "15")
    await second.shutdown(kill=True)  # killed while a long request is open: nothing in flight to lose

    vk.add(3)
    third = Harness(vk, config, sink)
    source = await third.start()
    await third.until(lambda: source.produced == 3)
    await third.shutdown()

    assert await produced_ids(kafka, config.topic) == [f"lp-{n:04d}" for n in range(1, 18)]
    assert not vk.token_in_url
    assert TOKEN not in caplog.text


async def test_failed_1_continues_from_the_new_ts_and_says_events_were_lost(setup):
    vk, config, sink, kafka = setup
    vk.add(6)
    StateFile(config.state_dir, GROUP).save("2")
    saved_at = int(StateFile(config.state_dir, GROUP).path.stat().st_mtime)
    vk.first_ts = 4  # events 2 and 3 dropped out of VK's history
    gaps = KafkaSink(kafka, config.gaps_topic)
    await gaps.start()
    harness = Harness(vk, config, sink, gaps)
    source = await harness.start()
    await harness.until(lambda: source.produced == 3)
    await harness.shutdown()
    await gaps.stop()
    assert source.lost_notices == 1
    # The lost stretch is recorded for the catch-up: from the last saved ts to the failed answer.
    [record] = await read_topic(kafka, config.gaps_topic)
    gap = Gap.from_json(record.value)
    assert record.key == f"vk:{GROUP}".encode()
    assert (gap.community, gap.why, gap.detected_by, gap.since) == (
        f"vk:{GROUP}",
        "longpoll-failed-1",
        "longpoll",
        saved_at,
    )
    assert saved_at < gap.until <= time.time() + 1
    assert await produced_ids(kafka, config.topic) == ["lp-0004", "lp-0005", "lp-0006"]
    assert StateFile(config.state_dir, GROUP).load() == "7"


async def test_a_kafka_failure_saves_nothing_and_the_batch_is_polled_again(setup):
    vk, config, sink, kafka = setup

    class FlakySink:
        def __init__(self) -> None:
            self.failures = 1

        async def produce(self, key: str, values: list[bytes]) -> None:
            if self.failures:
                self.failures -= 1
                raise RuntimeError("broker unavailable")
            await sink.produce(key, values)

    StateFile(config.state_dir, GROUP).save("1")
    vk.add(2)
    harness = Harness(vk, config, FlakySink())  # type: ignore[arg-type]
    source = await harness.start()
    await harness.until(lambda: source.produced == 2)
    await harness.shutdown()
    assert await produced_ids(kafka, config.topic) == ["lp-0001", "lp-0002"]


async def test_a_bad_token_backs_off_and_a_corrupt_state_file_is_named(setup, tmp_path):
    vk, config, sink, _ = setup
    import aiohttp

    from otklik.streams.edge.longpoll import LongPollError

    async with aiohttp.ClientSession() as session:
        source = LongPollSource(GROUP, "wrong-token", config, sink, session)
        stop = asyncio.Event()
        task = asyncio.create_task(source.run(stop))
        await asyncio.sleep(0.6)
        stop.set()
        await asyncio.wait_for(task, 5)
    assert vk.server_calls >= 3 and vk.checks == 0  # retried with backoff, never polled without a key
    state = StateFile(config.state_dir, GROUP)
    state.path.parent.mkdir(parents=True, exist_ok=True)
    state.path.write_text("{not json")
    with pytest.raises(LongPollError, match=str(state.path)):
        state.load()
