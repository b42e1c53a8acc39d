"""The real gateway over real HTTP on loopback, producing to the real broker.

Each test runs the gateway's aiohttp application in-process on a free port with its own topic prefix,
talks to it with an HTTP client, and reads back what reached ``otklik.raw``. The broker-outage test
starts a broker of its own (own ports, own data folder) and stops and restarts that one only.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiohttp import web

from otklik.schemas.records import RawEnvelope
from otklik.streams.edge.gateway import Gateway
from otklik.streams.edge.secrets import Secrets, VkCommunity
from otklik.streams.settings import GatewaySettings, WorkerSettings
from otklik.streams.worker.topics import ensure_topics
from tests.conftest import free_port

pytestmark = pytest.mark.integration

GROUP = 200100
OTHER_GROUP = 200200  # configured with a confirmation string but no secret
SECRET = "Zx9-callback-secret"
CONFIRMATION = "a1b2c3d4"
TG_TOKEN = "tg_secret-Token_42"
MAX_SECRET = "max_secret_0042"
CHANNEL = -1001234567890
DISCUSSION = -1009876543210


def secrets() -> Secrets:
    return Secrets(
        vk={
            GROUP: VkCommunity(GROUP, secret=SECRET, confirmation=CONFIRMATION),
            OTHER_GROUP: VkCommunity(OTHER_GROUP, confirmation="zzz"),
        },
        tg_secret_token=TG_TOKEN,
        max_secret=MAX_SECRET,
    )


def vk_event(event_id: str, group: int = GROUP, secret: str | None = SECRET, **over) -> dict:
    body = {
        "type": "wall_reply_new",
        "group_id": group,
        "event_id": event_id,
        "v": "5.199",
        "object": {
            "id": 17,
            "from_id": 5001,
            "date": 1764000000,
            "text": "Когда починят?",
            "post_id": 88,
            "owner_id": -group,
        },
    }
    if secret is not None:
        body["secret"] = secret
    body.update(over)
    return body


@dataclass
class Running:
    url: str
    gateway: Gateway
    topic: str
    bootstrap: str
    runner: web.AppRunner

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_gateway(bootstrap: str, prefix: str, **config) -> Running:
    settings = WorkerSettings(broker=f"kafka://{bootstrap}", topic_prefix=prefix, partitions=2)
    await ensure_topics(settings)
    port = free_port()
    cfg = GatewaySettings(
        broker=f"kafka://{bootstrap}", topic_prefix=prefix, port=port, tg_links={DISCUSSION: CHANNEL}, **config
    )
    gateway = Gateway(cfg, secrets())
    runner = web.AppRunner(gateway.app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    assert await gateway.wait_ready(30), "the gateway's producer did not connect"
    return Running(f"http://127.0.0.1:{port}", gateway, cfg.topic("raw"), bootstrap, runner)


async def read_topic(bootstrap: str, topic: str) -> list:
    """Every record of the topic, up to its end offsets at the time of the call (exact, no waiting)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in partitions]
        ends = await consumer.end_offsets(tps)
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, 0)
        out = []
        remaining = {tp for tp in tps if ends[tp] > 0}
        deadline = time.monotonic() + 30
        while remaining and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for tp, records in batch.items():
                out.extend(r for r in records if r.offset < ends[tp])
                if records and records[-1].offset >= ends[tp] - 1:
                    remaining.discard(tp)
        assert not remaining, f"could not read {topic} to its end"
        return out
    finally:
        await consumer.stop()


@pytest.fixture
async def gw(kafka: str) -> AsyncIterator[Running]:
    running = await start_gateway(kafka, f"gw-{uuid.uuid4().hex[:10]}.", produce_timeout_s=10)
    yield running
    await running.stop()


async def post(session: aiohttp.ClientSession, url: str, body, headers=None) -> tuple[int, str, dict]:
    data = body if isinstance(body, (bytes, str)) else orjson.dumps(body)
    async with session.post(url, data=data, headers=headers or {}) as resp:
        return resp.status, await resp.text(), dict(resp.headers)


async def test_confirmation_secrets_redelivery_and_exactly_once(gw: Running):
    async with aiohttp.ClientSession() as s:
        # Confirmation answers the community's string as plain text.
        status, text, headers = await post(s, gw.url + "/vk/callback", {"type": "confirmation", "group_id": GROUP})
        assert (status, text) == (200, CONFIRMATION) and headers["Content-Type"].startswith("text/plain")
        status, text, _ = await post(s, gw.url + "/vk/callback", {"type": "confirmation", "group_id": 31337})
        assert status == 403 and "31337" in text and CONFIRMATION not in text
        status, _, _ = await post(
            s, gw.url + "/vk/callback", {"type": "confirmation", "group_id": GROUP, "secret": "nope"}
        )
        assert status == 403

        # Wrong, missing and unconfigured secrets: 403, and never the secret in the answer.
        for body, fragment in (
            (vk_event("e-wrong", secret="wrong"), "wrong secret"),
            (vk_event("e-missing", secret=None), "no secret"),
            (vk_event("e-other", group=OTHER_GROUP, secret="anything"), "no secret configured"),
            (vk_event("e-unknown", group=777), "not served"),
        ):
            status, text, _ = await post(s, gw.url + "/vk/callback", body)
            assert status == 403 and fragment in text, (status, text)
            assert SECRET not in text

        # Accepted, then redelivered (VK marks redeliveries with X-Retry-Counter): `ok` both times.
        for attempt in range(3):
            headers = {"X-Retry-Counter": str(attempt)} if attempt else {}
            status, text, _ = await post(s, gw.url + "/vk/callback", vk_event("e-1"), headers)
            assert (status, text) == (200, "ok")
        # Concurrent deliveries of one new event: one copy in Kafka, every answer `ok`.
        answers = await asyncio.gather(*(post(s, gw.url + "/vk/callback", vk_event("e-2")) for _ in range(8)))
        assert {(a[0], a[1]) for a in answers} == {(200, "ok")}
        # An unknown event type is accepted: the normalizer ignores it, the raw topic keeps it.
        status, text, _ = await post(s, gw.url + "/vk/callback", vk_event("e-3", type="future_event_type"))
        assert (status, text) == (200, "ok")
        # Lenient about the content type VK sends.
        async with s.post(
            gw.url + "/vk/callback",
            data=orjson.dumps(vk_event("e-4")),
            headers={"Content-Type": "text/plain; charset=cp1251"},
        ) as resp:
            assert resp.status == 200 and await resp.text() == "ok"

        async with s.get(gw.url + "/metrics") as resp:
            metrics = await resp.text()
        async with s.get(gw.url + "/health") as resp:
            assert resp.status == 200 and (await resp.json())["kafka"] is True

    records = await read_topic(gw.bootstrap, gw.topic)
    events = [orjson.loads(r.value) for r in records]
    assert sorted(e["body"]["event_id"] for e in events) == ["e-1", "e-2", "e-3", "e-4"]
    assert {r.key for r in records} == {f"vk:{GROUP}".encode()}
    for e in events:
        assert e["platform"] == "vk" and e["source"] == "vk-callback" and abs(e["received_at"] - time.time()) < 120
    assert events[0]["body"]["object"]["text"] == "Когда починят?"  # verbatim
    first = events[0]
    assert records[0].value == RawEnvelope("vk", "vk-callback", first["received_at"], first["body"]).to_json()

    def value(pattern: str) -> float:
        found = re.search(pattern, metrics, re.M)
        assert found, pattern
        return float(found.group(1))

    assert value(r'^otklik_gateway_requests_total\{outcome="accepted",platform="vk",source="vk-callback"\} (\S+)') == 4
    assert value(r'^otklik_gateway_requests_total\{outcome="duplicate",platform="vk",source="vk-callback"\} (\S+)') == 9
    assert value(r'^otklik_gateway_rejected_total\{platform="vk",reason="bad_secret",source="vk-callback"\} (\S+)') == 2
    assert (
        value(r'^otklik_gateway_rejected_total\{platform="vk",reason="missing_secret",source="vk-callback"\} (\S+)')
        == 1
    )
    assert (
        value(r'^otklik_gateway_rejected_total\{platform="vk",reason="unknown_community",source="vk-callback"\} (\S+)')
        == 2
    )
    stamp = value(
        r'^otklik_connector_last_event_timestamp_seconds\{community="vk:200100",platform="vk",source="vk-callback"\} (\S+)'
    )
    assert abs(stamp - time.time()) < 120
    assert value(r'^otklik_gateway_produce_seconds_count\{platform="vk"\} (\S+)') == 4
    assert "5001" not in metrics and SECRET not in metrics  # no user ids, no secrets


def _ok_base(**over) -> dict:
    """A valid event with some envelope fields replaced (None: the field is sent as JSON null)."""
    body = vk_event("e-bad")
    body.update(over)
    return body


def _without(name: str) -> dict:
    body = vk_event("e-bad")
    del body[name]
    return body


# (body, status, a fragment the answer must contain): each a different way to be wrong.
MALFORMED: list[tuple[object, int, str]] = [
    (b"", 400, "empty"),
    (b"   \n\t ", 400, "empty"),
    (b"not json", 400, "not JSON"),
    (b"{", 400, "not JSON"),
    (b'{"type": "wall_reply_new",', 400, "not JSON"),
    (b"\xff\xfe\x00{", 400, "not JSON"),
    (b'{"type": NaN}', 400, "not JSON"),
    (b"\xef\xbb\xbf{}", 400, "not JSON"),
    (b"{} trailing", 400, "not JSON"),
    (b"[" * 2000, 400, "not JSON"),
    (b'{"type": "\xff"}', 400, "not JSON"),
    (b'{"type": "\\ud800"}', 400, "not JSON"),
    (b"type=wall_reply_new&group_id=1", 400, "not JSON"),
    (b"<xml><type>wall_reply_new</type></xml>", 400, "not JSON"),
    (b"\x00\x00\x00", 400, "not JSON"),
    (b"{'type': 'single quotes'}", 400, "not JSON"),
    (b"[]", 400, "not an object"),
    (b"[1, 2]", 400, "array, not an object"),
    (b'"a string"', 400, "string, not an object"),
    (b"42", 400, "integer, not an object"),
    (b"3.14", 400, "number, not an object"),
    (b"null", 400, "null, not an object"),
    (b"true", 400, "boolean, not an object"),
    ({}, 400, "type: missing"),
    (_without("type"), 400, "type: missing"),
    (_ok_base(type=None), 400, "type: missing"),
    (_ok_base(type=1), 400, "type: expected a string"),
    (_ok_base(type=True), 400, "type: expected a string"),
    (_ok_base(type=["wall_reply_new"]), 400, "type: expected a string"),
    (_ok_base(type={"x": 1}), 400, "type: expected a string"),
    (_ok_base(type=""), 400, "is not an event type"),
    (_ok_base(type="x" * 100), 400, "is not an event type"),
    (_without("group_id"), 400, "group_id: missing"),
    (_ok_base(group_id=None), 400, "group_id: missing"),
    (_ok_base(group_id=str(GROUP)), 400, "group_id: expected an integer"),
    (_ok_base(group_id=0), 400, "group_id: expected a positive integer"),
    (_ok_base(group_id=-GROUP), 400, "group_id: expected a positive integer"),
    (_ok_base(group_id=1.5), 400, "group_id: expected an integer"),
    (_ok_base(group_id=True), 400, "group_id: expected an integer"),
    (_ok_base(group_id=[GROUP]), 400, "group_id: expected an integer"),
    (b'{"type": "wall_reply_new", "group_id": 100000000000000000000000000000}', 400, "group_id: expected an integer"),
    (_without("event_id"), 400, "event_id: missing"),
    (_ok_base(event_id=None), 400, "event_id: missing"),
    (_ok_base(event_id=12345), 400, "event_id: expected a string"),
    (_ok_base(event_id=["e"]), 400, "event_id: expected a string"),
    (_ok_base(event_id=""), 400, "is not an event id"),
    (_ok_base(event_id="e" * 200), 400, "is not an event id"),
    (_without("v"), 400, "v: missing"),
    (_ok_base(v=5.199), 400, "v: expected a version string"),
    (_ok_base(v=""), 400, "v: expected a version string"),
    (_without("object"), 400, "object: missing"),
    (_ok_base(object=None), 400, "object: missing"),
    (_ok_base(object=[]), 400, "object: expected a JSON object"),
    (_ok_base(object="text"), 400, "object: expected a JSON object"),
    (_ok_base(object=7), 400, "object: expected a JSON object"),
    (_ok_base(secret="wrong"), 403, "wrong secret"),
    (_ok_base(secret=12345), 403, "wrong secret"),
    (vk_event("e-bad", secret=None), 403, "no secret"),
    (_ok_base(secret=None), 403, "no secret"),
    (_ok_base(group_id=123), 403, "not served"),
    (orjson.dumps(vk_event("e-big")) + b" " * (1 << 20), 413, "exceeds"),
]


async def test_fifty_kinds_of_malformed_body_each_get_a_clear_4xx_and_the_gateway_keeps_serving(gw: Running):
    assert len(MALFORMED) >= 50
    async with aiohttp.ClientSession() as s:
        for index, (body, status, fragment) in enumerate(MALFORMED):
            got, text, _ = await post(s, gw.url + "/vk/callback", body)
            assert (got, fragment in text) == (status, True), f"case {index}: {got} {text[:200]!r}"

        # A body over the limit sent chunked (no Content-Length) is cut off while streaming.
        async def chunks():
            for _ in range(40):
                yield b" " * 65536

        async with s.post(gw.url + "/vk/callback", data=chunks()) as resp:
            assert resp.status == 413 and "exceeds" in await resp.text()
        # Other platforms refuse bad bodies just as clearly.
        tg = {"X-Telegram-Bot-Api-Secret-Token": TG_TOKEN}
        mx = {"X-Max-Bot-Api-Secret": MAX_SECRET}
        for url, body, headers, status, fragment in (
            ("/tg/webhook", b"{", tg, 400, "not JSON"),
            ("/tg/webhook", {"message": {}}, tg, 400, "update_id: missing"),
            ("/tg/webhook", {"update_id": "7"}, tg, 400, "update_id: expected"),
            ("/max/webhook", b"[]", mx, 400, "not an object"),
            ("/max/webhook", {"timestamp": 1}, mx, 400, "update_type: missing"),
            ("/max/webhook", {"update_type": "message_created"}, mx, 400, "timestamp: missing"),
        ):
            got, text, _ = await post(s, gw.url + url, body, headers)
            assert (got, fragment in text) == (status, True), (url, got, text)
        # Still serving: a good event afterwards is accepted.
        status, text, _ = await post(s, gw.url + "/vk/callback", vk_event("e-after"))
        assert (status, text) == (200, "ok")
        async with s.get(gw.url + "/metrics") as resp:
            metrics = await resp.text()
    records = await read_topic(gw.bootstrap, gw.topic)
    assert [orjson.loads(r.value)["body"]["event_id"] for r in records] == ["e-after"]
    reasons = set(re.findall(r'^otklik_gateway_rejected_total\{[^}]*reason="([a-z_]+)"', metrics, re.M))
    assert {
        "empty_body",
        "not_json",
        "not_object",
        "bad_envelope",
        "too_large",
        "bad_secret",
        "missing_secret",
        "unknown_community",
    } <= reasons


async def test_telegram_and_max_webhooks_check_their_headers_and_key_by_page(gw: Running):
    fixtures = Path(__file__).resolve().parent.parent / "fixtures"
    tg_comment = orjson.loads((fixtures / "tg" / "comment.json").read_bytes())
    max_update = orjson.loads((fixtures / "max" / "chat_message_created.json").read_bytes())
    async with aiohttp.ClientSession() as s:
        for headers, status in (({}, 403), ({"X-Telegram-Bot-Api-Secret-Token": "wrong"}, 403)):
            got, text, _ = await post(s, gw.url + "/tg/webhook", tg_comment, headers)
            assert got == status and TG_TOKEN not in text
        for _ in range(2):  # Telegram redelivers an update it got no 200 for: once in Kafka
            got, text, _ = await post(
                s, gw.url + "/tg/webhook", tg_comment, {"X-Telegram-Bot-Api-Secret-Token": TG_TOKEN}
            )
            assert (got, text) == (200, "ok")
        for headers in ({}, {"X-Max-Bot-Api-Secret": "wrong_secret"}):
            got, _, _ = await post(s, gw.url + "/max/webhook", max_update, headers)
            assert got == 403
        for _ in range(2):
            got, text, _ = await post(s, gw.url + "/max/webhook", max_update, {"X-Max-Bot-Api-Secret": MAX_SECRET})
            assert (got, text) == (200, "ok")
    records = await read_topic(gw.bootstrap, gw.topic)
    by_platform = {orjson.loads(r.value)["platform"]: r for r in records}
    assert len(records) == 2 and set(by_platform) == {"tg", "max"}
    assert by_platform["tg"].key == f"tg:{abs(CHANNEL)}".encode()
    assert orjson.loads(by_platform["tg"].value)["body"] == tg_comment
    assert orjson.loads(by_platform["tg"].value)["source"] == "tg-webhook"
    assert by_platform["max"].key == f"max:{max_update['message']['recipient']['chat_id']}".encode()
    assert orjson.loads(by_platform["max"].value)["source"] == "max-webhook"


async def test_broker_down_means_503_with_retry_after_and_the_redelivery_lands_once(kafka: str, tmp_path: Path):
    from otklik.streams.tools.kafka_local import LocalKafka

    broker = LocalKafka(
        port=free_port(),
        controller_port=free_port(),
        data_dir=tmp_path / "kafka" / "data",
        heap="256m",
        cache_dir=LocalKafka.from_env().cache_dir,
    )
    await asyncio.to_thread(broker.start)
    running = None
    try:
        running = await start_gateway(broker.bootstrap, "outage.", produce_timeout_s=2, retry_after_s=7)
        async with aiohttp.ClientSession() as s:
            status, text, _ = await post(s, running.url + "/vk/callback", vk_event("before"))
            assert (status, text) == (200, "ok")

            await asyncio.to_thread(broker.stop)
            started = time.monotonic()
            status, text, headers = await post(s, running.url + "/vk/callback", vk_event("during"))
            assert status == 503 and headers.get("Retry-After") == "7" and "retry later" in text
            assert text != "ok" and time.monotonic() - started < 10

            await asyncio.to_thread(broker.start)
            # VK redelivers until it gets `ok`; the gateway may need a moment to reconnect.
            deadline = time.monotonic() + 90
            attempt = 0
            while True:
                attempt += 1
                status, text, headers = await post(
                    s, running.url + "/vk/callback", vk_event("during"), {"X-Retry-Counter": str(attempt)}
                )
                if status == 200:
                    assert text == "ok"
                    break
                assert status == 503 and headers.get("Retry-After") == "7", (status, text)
                assert time.monotonic() < deadline, "the gateway never recovered after the broker came back"
                await asyncio.sleep(1)
            status, text, _ = await post(s, running.url + "/vk/callback", vk_event("after"))
            assert (status, text) == (200, "ok")
            status, text, _ = await post(s, running.url + "/vk/callback", vk_event("during"), {"X-Retry-Counter": "99"})
            assert (status, text) == (200, "ok")
            async with s.get(running.url + "/metrics") as resp:
                metrics = await resp.text()
        records = await read_topic(broker.bootstrap, running.topic)
        assert sorted(orjson.loads(r.value)["body"]["event_id"] for r in records) == ["after", "before", "during"]
        assert re.search(r'reason="kafka_unavailable",source="vk-callback"\} [1-9]', metrics)
    finally:
        if running is not None:
            await running.stop()
        await asyncio.to_thread(broker.stop)


# ---- secrets: from a file or the environment, errors name the file and entry, values never shown ----------


def test_secrets_from_yaml_json_and_environment(tmp_path: Path):
    from otklik.streams.edge.secrets import load_secrets

    yaml_file = tmp_path / "secrets.yaml"
    yaml_file.write_text(
        'vk:\n  "200100": {secret: "file-secret", confirmation: "c0nf"}\ntelegram: {secret_token: tg_tok}\n'
        "max: {secret: max_sec_1}\n"
    )
    loaded = load_secrets(
        {
            "OTKLIK_SECRETS_FILE": str(yaml_file),
            "OTKLIK_VK_200100_SECRET": "env-secret",
            "OTKLIK_VK_300300_TOKEN": "vk1.a.QWERTY",
        }
    )
    assert loaded.community(200100).secret == "env-secret"  # the environment wins
    assert loaded.community(200100).confirmation == "c0nf"
    assert loaded.community(300300).token == "vk1.a.QWERTY" and loaded.community(300300).secret is None
    assert (loaded.tg_secret_token, loaded.max_secret) == ("tg_tok", "max_sec_1")
    assert (
        "env-secret" not in repr(loaded)
        and "c0nf" not in repr(loaded.vk)
        and "QWERTY" not in repr(loaded.community(300300))
    )
    json_file = tmp_path / "secrets.json"
    json_file.write_text('{"vk": {"200100": {"secret": "j"}}}')
    assert load_secrets({"OTKLIK_SECRETS_FILE": str(json_file)}).community(200100).secret == "j"


@pytest.mark.parametrize(
    "text, fragment",
    [
        ('vk:\n  "200100": {secret: "ok", confirmaton: "typo-value"}\n', "vk.200100: unknown key(s) confirmaton"),
        ('vk:\n  "-5": {secret: "x"}\n', "vk.-5: '-5' is not a VK group id"),
        ('vk:\n  "12": {secret: ""}\n', "vk.12.secret: is blank"),
        ('vk:\n  "12": {secret: " padded-value "}\n', "vk.12.secret: has leading or trailing whitespace"),
        ('vk:\n  "12": {secret: [1]}\n', "vk.12.secret: must be a string"),
        ('vk:\n  "12": "just-a-string"\n', "vk.12: must be a mapping"),
        ("telegram: {secret_token: 'has space'}\n", "telegram.secret_token: may hold only"),
        ("max: {secret: abc}\n", "max.secret: must be 5-256 characters"),
        ("vkk: {}\n", "unknown top-level key(s) vkk"),
        ("- a list\n", "the top level must be a mapping"),
        ('vk: {"12": {secret: "open-quote-value}\n', "not valid YAML at line"),
    ],
)
def test_a_bad_secrets_file_names_the_file_the_entry_and_the_problem_not_the_value(tmp_path: Path, text, fragment):
    from otklik.streams.edge.secrets import SecretsError, load_secrets

    path = tmp_path / "secrets.yaml"
    path.write_text(text)
    with pytest.raises(SecretsError) as caught:
        load_secrets({"OTKLIK_SECRETS_FILE": str(path)})
    message = str(caught.value)
    assert str(path) in message and fragment in message, message
    assert "typo-value" not in message and "padded-value" not in message and "open-quote-value" not in message


def test_the_gateway_command_refuses_to_start_on_a_bad_secrets_file(tmp_path: Path, monkeypatch):
    from click.testing import CliRunner

    from otklik.streams.edge.gateway import gateway_command
    from otklik.streams.edge.longpoll import longpoll_command

    path = tmp_path / "secrets.yaml"
    path.write_text('vk:\n  "12": {secret: "s3cr3t-value", tokn: "x"}\n')
    monkeypatch.setenv("OTKLIK_SECRETS_FILE", str(path))
    result = CliRunner().invoke(gateway_command, ["--port", str(free_port())])
    assert result.exit_code != 0 and str(path) in result.output and "vk.12: unknown key(s) tokn" in result.output
    assert "s3cr3t-value" not in result.output
    path.write_text('vk:\n  "12": {secret: "s3cr3t-value"}\n')
    result = CliRunner().invoke(longpoll_command, ["--group", "12"])
    assert result.exit_code != 0 and "--group 12: no token" in result.output
