"""The catch-up service's watch on the real broker with the fake VK API (streams/edge/watch.py): a
community's managers reach ``otklik.managers`` without anyone running ``otklik managers sync`` (one
known by its token at start, one first seen on ``otklik.raw``), a list already on the topic is not read
again, and a community silent far beyond its learned rate gets a gap record; and ``otklik catchup``
itself, as compose starts it, reads a community's managers."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import uuid
from pathlib import Path

import aiohttp
import orjson
import pytest

from otklik.agents.ingest.watch_rules import SilenceRule, SilenceWatch
from otklik.schemas.managers import ManagerList, decode_manager_record, encode_manager_record
from otklik.schemas.records import Gap, RawEnvelope
from otklik.streams.edge.vk_api import VkApiClient, VkToken
from otklik.streams.edge.watch import WATCH_GROUP, watch_service
from otklik.streams.settings import VkApiSettings
from tests.conftest import OTKLIK, consume, produce, run
from tests.fakes.vk_api import FakeVkApi, KnownToken, scripted_community, served_in_thread

pytestmark = pytest.mark.integration

AT_START, FIRST_SEEN, READ_BEFORE, SILENT = 200002001, 200002002, 200002003, 200002004


def test_managers_arrive_unasked_and_a_silent_community_is_a_gap(kafka: str, tmp_path: Path) -> None:
    prefix = f"watch-{uuid.uuid4().hex[:8]}."

    def topic(name: str) -> str:
        return f"{prefix}otklik.{name}"

    tokens = {g: f"vk1.a.group-{g}-{uuid.uuid4().hex}" for g in (AT_START, FIRST_SEEN, READ_BEFORE)}
    communities = {g: scripted_community(g, seed=g) for g in tokens}
    fake = FakeVkApi(communities, {t: KnownToken("group", g) for g, t in tokens.items()})
    now = time.time()

    # A list read an hour ago (before a restart): not due again for six hours.
    earlier = ManagerList(f"vk:{READ_BEFORE}", ["vk:user:1"], int(now) - 3600)
    run(produce(kafka, topic("managers"), [(earlier.page.encode(), encode_manager_record(earlier))]))

    # What the last run learned: SILENT wrote every minute, day and night, for ten days, then stopped
    # two hours ago.
    learned = SilenceWatch(SilenceRule())
    for k in reversed(range(10 * 24 * 60)):
        learned.seen(f"vk:{SILENT}", now - 2 * 3600 - 60 * k)
    state = tmp_path / "watch.json"
    state.write_bytes(orjson.dumps({"silence": learned.state()}))
    quiet_since = int(now - 2 * 3600)

    def token_of(group_id: int) -> VkToken | None:
        token = tokens.get(group_id)
        return VkToken.of("group", token, f"community {group_id}") if token else None

    async def scenario() -> tuple[list, list]:
        async with fake.running(), aiohttp.ClientSession() as session:
            settings = VkApiSettings.from_env({"OTKLIK_VK_API_URL": fake.url})
            client = VkApiClient(settings, session)
            from aiokafka import AIOKafkaProducer

            producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
            await producer.start()
            stop = asyncio.Event()
            task = asyncio.create_task(
                watch_service(
                    client,
                    token_of,
                    [AT_START, READ_BEFORE],  # FIRST_SEEN's token is not listed: it is found on otklik.raw
                    lambda t, v, k: producer.send_and_wait(t, v, key=k),
                    kafka,
                    topic,
                    prefix + WATCH_GROUP,
                    6 * 3600,
                    SilenceRule(expected=8, floor_s=1800),
                    state,
                    stop,
                    round_s=1.0,
                )
            )
            try:
                events = [
                    {"type": "wall_reply_new", "group_id": g, "event_id": f"w{g}", "v": "5.199", "object": {}}
                    for g in (FIRST_SEEN,)
                ]
                await produce(
                    kafka,
                    topic("raw"),
                    [
                        (f"vk:{b['group_id']}".encode(), RawEnvelope("vk", "vk-callback", now, b).to_json())
                        for b in events
                    ],
                )
                lists = await consume(kafka, topic("managers"), expect=3, timeout=60)
                gaps = await consume(kafka, topic("gaps"), expect=1, timeout=60)
            finally:
                stop.set()
                await asyncio.wait_for(task, 30)
                await producer.stop()
            return lists, gaps

    lists, gaps = run(scenario())
    records = [decode_manager_record(m.value) for m in lists]
    read = {r.page: r for r in records if isinstance(r, ManagerList) and r.at >= int(now)}
    assert set(read) == {f"vk:{AT_START}", f"vk:{FIRST_SEEN}"}
    for g in (AT_START, FIRST_SEEN):
        assert sorted(read[f"vk:{g}"].users) == sorted(f"vk:user:{u}" for u in communities[g].managers)
    assert fake.calls_of("groups.getMembers") == 2  # READ_BEFORE's list was read back, not read again
    assert fake.violations == []

    gap = Gap.from_json(gaps[0].value)
    assert (gap.community, gap.why, gap.detected_by) == (f"vk:{SILENT}", "silent", "catchup")
    assert gap.since == quiet_since and gap.until >= int(now)
    assert f"vk:{SILENT}" in orjson.loads(state.read_bytes())["silence"]  # saved for the next start


def test_the_catchup_service_reads_a_communitys_managers_by_itself(kafka: str, tmp_path: Path) -> None:
    """`otklik catchup` as compose starts it: the list of a community with a token reaches
    otklik.managers with no `otklik managers sync`, and no token shows in its log."""
    prefix = f"watchcmd-{uuid.uuid4().hex[:8]}."
    token, service = f"vk1.a.group-{uuid.uuid4().hex}", f"vk1.a.service-{uuid.uuid4().hex}"
    community = scripted_community(AT_START, seed=1)
    fake = FakeVkApi({AT_START: community}, {token: KnownToken("group", AT_START), service: KnownToken("service")})
    with served_in_thread(fake):
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTKLIK_") or k == "OTKLIK_PURE_PYTHON"}
        env.update(
            OTKLIK_KAFKA_BROKER=f"kafka://{kafka}",
            OTKLIK_TOPIC_PREFIX=prefix,
            OTKLIK_VK_API_URL=fake.url,
            OTKLIK_VK_SERVICE_TOKEN=service,
            OTKLIK_CATCHUP_STATE_FILE=str(tmp_path / "watch.json"),
            **{f"OTKLIK_VK_{AT_START}_TOKEN": token},
        )
        log = tmp_path / "catchup.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([OTKLIK, "catchup"], env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            lists = run(consume(kafka, f"{prefix}otklik.managers", expect=1, timeout=90))
        finally:
            proc.terminate()
            code = proc.wait(60)
    text = log.read_text(errors="replace")
    assert lists, text
    record = decode_manager_record(lists[0].value)
    assert isinstance(record, ManagerList) and record.page == f"vk:{AT_START}"
    assert sorted(record.users) == sorted(f"vk:user:{u}" for u in community.managers)
    assert code == 0, text
    assert token not in text and service not in text
    assert fake.violations == []
