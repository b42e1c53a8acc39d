"""The healing producer of the edge (streams/edge/producer.py) and the gateway on top of it, without Kafka.

Fake producers stand in for aiokafka's: each send returns a future the test settles, so a failed
delivery (as aiokafka reports an ``OutOfOrderSequenceNumber``), a dead sender task, a broker that
refuses connections and a stuck stop can be played exactly.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, MessageSizeTooLargeError, OutOfOrderSequenceNumber

from otklik.streams.edge.gateway import Gateway
from otklik.streams.edge.producer import HealingProducer, ProducerAbandoned, ProducerUnavailable
from otklik.streams.edge.secrets import Secrets, VkCommunity
from otklik.streams.logs import RateLimitFilter
from otklik.streams.settings import GatewaySettings


class FakeSender:
    def __init__(self) -> None:
        self.sender_task: asyncio.Future = asyncio.get_running_loop().create_future()


class FakeClient:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    async def force_metadata_update(self) -> bool:
        return self.broker.up

    async def close(self) -> None:
        pass


class Broker:
    """What the fake producers share: whether the broker is up, and every producer made."""

    def __init__(self) -> None:
        self.up = True
        self.made: list[FakeProducer] = []
        self.stop_hangs = False

    def factory(self) -> FakeProducer:
        producer = FakeProducer(self)
        self.made.append(producer)
        return producer


class FakeProducer:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.client = FakeClient(broker)
        self._sender: FakeSender | None = None
        self.sent: list[tuple[str, bytes, asyncio.Future]] = []
        self.started = self.stopped = False
        self.send_raises: BaseException | None = None

    async def start(self) -> None:
        if not self.broker.up:
            raise KafkaConnectionError("Unable to bootstrap from 127.0.0.1:1")
        self._sender = FakeSender()
        self.started = True

    async def stop(self) -> None:
        if self.broker.stop_hangs and self.started:
            await asyncio.Event().wait()
        self.stopped = True

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> asyncio.Future:
        if self.send_raises is not None:
            raise self.send_raises
        future = asyncio.get_running_loop().create_future()
        self.sent.append((topic, value, future))
        return future


async def until(condition, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "the condition did not come true"
        await asyncio.sleep(0.005)


@pytest.fixture
async def broker():
    return Broker()


@pytest.fixture
async def healing(broker: Broker):
    producer = HealingProducer(
        broker.factory, probe_interval_s=0.02, abandon_after_s=0.3, min_backoff_s=0.01, max_backoff_s=0.05
    )
    await producer.start()
    assert await producer.wait_connected(5)
    yield producer
    await producer.stop(1)


async def test_a_failed_delivery_retires_the_producer_and_a_fresh_one_takes_the_next_record(broker, healing):
    first = broker.made[0]
    delivery = await healing.send("t", b"a")
    first.sent[0][2].set_exception(OutOfOrderSequenceNumber())
    with pytest.raises(OutOfOrderSequenceNumber):
        await delivery
    await until(lambda: healing.connected and len(broker.made) == 2)
    assert healing.replacements == 1 and healing.failures == 1
    await until(lambda: first.stopped)
    again = await healing.send("t", b"a")
    assert not first.sent[1:] and broker.made[1].sent[0][1] == b"a"
    broker.made[1].sent[0][2].set_result("metadata")
    assert await again == "metadata"


async def test_a_producer_whose_sender_task_ended_is_replaced_without_any_send(broker, healing):
    first = broker.made[0]
    first._sender.sender_task.set_exception(OutOfOrderSequenceNumber())
    await until(lambda: len(broker.made) == 2 and healing.connected)
    assert first.stopped and healing.replacements == 1


async def test_a_producer_that_refuses_sends_is_replaced_and_the_caller_hears_unavailable(broker, healing):
    broker.made[0].send_raises = OutOfOrderSequenceNumber()  # aiokafka re-raises the sender's fatal error
    with pytest.raises(ProducerUnavailable):
        await healing.send("t", b"x")
    await until(lambda: len(broker.made) == 2 and healing.connected)


async def test_while_the_broker_is_down_there_is_no_producer_and_one_comes_when_it_is_back(broker, healing):
    broker.up = False
    await until(lambda: not healing.ready)  # the probe says so before any delivery fails
    assert healing.connected  # the producer itself may still deliver once the broker returns
    pending = await healing.send("t", b"during")
    broker.made[0].sent[0][2].set_exception(KafkaTimeoutError())  # the batch expired without a leader
    with pytest.raises(KafkaTimeoutError):
        await pending
    await until(lambda: not healing.connected)
    with pytest.raises(ProducerUnavailable):
        await healing.send("t", b"refused")
    assert not await healing.wait_connected(0.1)
    made_while_down = len(broker.made)
    await asyncio.sleep(0.2)
    assert len(broker.made) > made_while_down, "it keeps trying to connect"
    assert not any(p.started for p in broker.made[1:])
    broker.up = True
    assert await healing.wait_connected(5)
    await until(lambda: healing.ready)


async def test_errors_about_one_record_or_one_moment_do_not_retire_the_producer(broker, healing):
    for error in (MessageSizeTooLargeError(), KafkaTimeoutError()):
        broker.made[0].send_raises = error
        with pytest.raises(type(error)):
            await healing.send("t", b"x")
    await asyncio.sleep(0.1)
    assert len(broker.made) == 1 and healing.connected and healing.replacements == 0


async def test_a_retired_producers_batches_still_settle_and_unsettled_ones_fail_after_the_limit(broker, healing):
    broker.stop_hangs = True  # the old producer keeps retrying its batches
    first = broker.made[0]
    late_success = await healing.send("t", b"lands-later")
    never = await healing.send("t", b"never-settles")
    failing = await healing.send("t", b"fails")
    first.sent[2][2].set_exception(OutOfOrderSequenceNumber())
    await until(lambda: len(broker.made) == 2)
    first.sent[0][2].set_result("md")  # after retirement: still a success for the caller
    assert await late_success == "md"
    with pytest.raises(ProducerAbandoned):
        await asyncio.wait_for(never, 5)
    with pytest.raises(OutOfOrderSequenceNumber):
        await failing


async def test_a_producer_that_fails_soon_after_it_started_is_replaced_after_growing_pauses(broker):
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)
        await asyncio.sleep(0)

    healing = HealingProducer(broker.factory, probe_interval_s=30, min_backoff_s=1, max_backoff_s=4, sleep=sleep)
    await healing.start()
    assert await healing.wait_connected(5)
    for n in range(4):  # a record the broker refuses each time: no churn of producers
        delivery = await healing.send("t", b"x")
        broker.made[-1].sent[0][2].set_exception(MessageSizeTooLargeError())
        with pytest.raises(MessageSizeTooLargeError):
            await delivery
        await until(lambda n=n: len(broker.made) == n + 2 and healing.connected)
    assert pauses == [1, 2, 4, 4]
    await healing.stop(1)


async def test_a_producer_that_served_a_while_is_replaced_at_once(broker):
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)
        await asyncio.sleep(0)

    healing = HealingProducer(broker.factory, probe_interval_s=30, stable_after_s=0, sleep=sleep)
    await healing.start()
    assert await healing.wait_connected(5)
    delivery = await healing.send("t", b"x")
    broker.made[0].sent[0][2].set_exception(OutOfOrderSequenceNumber())
    with pytest.raises(OutOfOrderSequenceNumber):
        await delivery
    await until(lambda: len(broker.made) == 2 and healing.connected)
    assert pauses == []
    await healing.stop(1)


async def test_no_producer_is_made_twice_at_once_and_stop_ends_everything(broker):
    healing = HealingProducer(broker.factory, probe_interval_s=0.01)
    await healing.start()
    assert await healing.wait_connected(5)
    await asyncio.sleep(0.1)
    assert len(broker.made) == 1
    await healing.stop(1)
    assert broker.made[0].stopped and not healing.connected


# ---- bounded logs ----------------------------------------------------------------------------------


def test_the_log_filter_lets_one_line_per_message_through_per_interval_and_counts_the_rest():
    now = [0.0]
    limiter = RateLimitFilter(interval_s=30, clock=lambda: now[0])
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    handlers = [Keep(), Keep()]  # one filter on two handlers decides once per record
    logger = logging.getLogger("aiokafka.test_limiter")
    other = logging.getLogger("otklik.test_limiter_other")
    for item in (logger, other):
        item.propagate = False
        item.setLevel(logging.DEBUG)
        for handler in handlers:
            handler.addFilter(limiter)
            item.addHandler(handler)
    try:
        for n in range(1000):
            logger.error("Unable connect to node with id %s: %s", 1, f"refused {n}")
            other.warning("not a Kafka line %s", n)
        logger.warning("Got error produce response: %s", "NodeNotReady")
        now[0] = 31.0
        logger.error("Unable connect to node with id %s: %s", 1, "refused again")
    finally:
        for item in (logger, other):
            for handler in handlers:
                item.removeHandler(handler)
    kafka_lines = [line for line in seen if "not a Kafka line" not in line]
    assert len(seen) - len(kafka_lines) == 2000  # other loggers untouched (twice: two handlers)
    assert kafka_lines[0::2] == kafka_lines[1::2]
    distinct = kafka_lines[0::2]
    assert distinct[0] == "Unable connect to node with id 1: refused 0"
    assert distinct[1] == "Got error produce response: NodeNotReady"
    assert (
        distinct[2] == "Unable connect to node with id 1: refused again [999 more like this in the last 31s not logged]"
    )
    assert len(distinct) == 3 and limiter.held_back == 999


# ---- the gateway on a healing producer ---------------------------------------------------------------

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
GROUP = 424242
SECRET = "unit-secret"


def vk_body(event_id: str, depth: int = 0) -> bytes:
    """A valid VK event whose object holds ``depth`` nested arrays (written by hand: orjson cannot)."""
    return b'{"type":"wall_reply_new","group_id":%d,"event_id":"%s","v":"5.199","secret":"%s","object":{"a":%s}}' % (
        GROUP,
        event_id.encode(),
        SECRET.encode(),
        b"[" * depth + b"1" + b"]" * depth,
    )


@pytest.fixture
async def gateway_client(broker: Broker):
    config = GatewaySettings(broker="kafka://127.0.0.1:1", produce_timeout_s=1)
    gateway = Gateway(config, Secrets(vk={GROUP: VkCommunity(GROUP, secret=SECRET)}), lambda _c: broker.factory())
    gateway.kafka.probe_interval_s = 0.02
    gateway.kafka.min_backoff_s = 0.01
    gateway.kafka.max_backoff_s = 0.05
    async with TestClient(TestServer(gateway.app())) as client:
        assert await gateway.wait_ready(5)
        yield gateway, client


async def settle_all(broker: Broker, *, fail_with: BaseException | None = None) -> None:
    for producer in broker.made:
        for _topic, _value, future in producer.sent:
            if not future.done():
                future.set_exception(fail_with) if fail_with else future.set_result("md")


async def post_settled(client, broker: Broker, body: bytes, fail_with: BaseException | None = None):
    answer = asyncio.ensure_future(client.post("/vk/callback", data=body))
    await until(lambda: answer.done() or any(not f.done() for p in broker.made for *_, f in p.sent))
    await settle_all(broker, fail_with=fail_with)
    resp = await answer
    return resp.status, await resp.text()


async def test_the_gateway_answers_ok_again_after_its_producer_failed_without_a_restart(broker, gateway_client):
    gateway, client = gateway_client
    assert await post_settled(client, broker, vk_body("e1")) == (200, "ok")
    status, text = await post_settled(client, broker, vk_body("e2"), OutOfOrderSequenceNumber())
    assert status == 503 and "retry later" in text
    await until(lambda: gateway.kafka.connected and len(broker.made) == 2)
    assert await post_settled(client, broker, vk_body("e2")) == (200, "ok")  # VK's redelivery
    health = await client.get("/health")
    assert health.status == 200 and (await health.json())["producer_replacements"] == 1
    metrics = await (await client.get("/metrics")).text()
    assert "otklik_gateway_kafka_ready 1.0" in metrics


async def test_health_and_the_ready_gauge_say_unavailable_while_the_broker_is_down(broker, gateway_client):
    gateway, client = gateway_client
    broker.up = False
    await until(lambda: not gateway.kafka.ready)
    health = await client.get("/health")
    assert health.status == 503 and (await health.json())["kafka"] is False
    assert "otklik_gateway_kafka_ready 0.0" in await (await client.get("/metrics")).text()
    broker.up = True
    await until(lambda: gateway.kafka.ready)
    assert (await client.get("/health")).status == 200


@pytest.mark.parametrize("depth", [240, 251, 252, 253, 254, 255, 300, 1000, 1021])
async def test_json_nested_deeper_than_can_be_stored_gets_400_too_deep_never_500(broker, gateway_client, depth):
    _gateway, client = gateway_client
    status, text = await post_settled(client, broker, vk_body(f"deep-{depth}", depth))
    # The body's own object and "object" add two levels, the stored envelope one more.
    if depth + 3 <= 254:
        assert (status, text) == (200, "ok")
    else:
        assert status == 400 and "nested deeper than 253 levels" in text, (depth, status, text)
        metrics = await (await client.get("/metrics")).text()
        assert 'reason="too_deep",source="vk-callback"} 1.0' in metrics


async def test_a_body_larger_than_a_kafka_record_gets_413_not_503(broker, gateway_client):
    _gateway, client = gateway_client
    broker.made[0].send_raises = MessageSizeTooLargeError()  # aiokafka's own check, before sending
    resp = await client.post("/vk/callback", data=vk_body("big"))
    assert resp.status == 413 and "largest record" in await resp.text()
    assert len(broker.made) == 1
    broker.made[0].send_raises = None
    # The broker's limit may be lower than aiokafka's: its refusal is a 413 too.
    assert await post_settled(client, broker, vk_body("big2"), MessageSizeTooLargeError()) == (
        413,
        "payload too large: the event exceeds the largest record Kafka accepts",
    )


async def test_a_body_dated_far_ahead_of_its_receipt_gets_400_out_of_bounds(broker, gateway_client):
    _gateway, client = gateway_client
    body = orjson.loads((FIXTURES / "vk" / "wall_reply_new.json").read_bytes())
    body.update(group_id=GROUP, secret=SECRET, event_id="ahead")
    body["object"]["date"] = 7_258_118_400  # 2200-01-01: a typo or milliseconds, never a real comment
    resp = await client.post("/vk/callback", data=orjson.dumps(body))
    text = await resp.text()
    assert resp.status == 400 and text.startswith("bad request: vk object.date: 7258118400 is after received_at"), text
    metrics = await (await client.get("/metrics")).text()
    assert 'reason="out_of_bounds",source="vk-callback"} 1.0' in metrics
    assert not broker.made[0].sent  # nothing produced
    body["object"]["date"] = 1_764_000_000
    body["event_id"] = "in-range"
    assert await post_settled(client, broker, orjson.dumps(body)) == (200, "ok")
