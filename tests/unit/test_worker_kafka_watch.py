"""The worker's view of the broker (streams/worker/kafka_watch.py): what /health and
otklik_worker_kafka_ready report, and the pause after a failed metadata update."""

from __future__ import annotations

import asyncio

import pytest

from otklik.streams import kafka_pacing
from otklik.streams.kafka_pacing import install_metadata_backoff
from otklik.streams.worker.kafka_watch import KafkaWatch


class FakeClient:
    def __init__(self, answers: list) -> None:
        self.answers = answers  # True, False, or an exception to raise, one per update
        self.updates = 0

    async def force_metadata_update(self) -> bool:
        answer = self.answers[min(self.updates, len(self.answers) - 1)]
        self.updates += 1
        if isinstance(answer, BaseException):
            raise answer
        return answer

    async def _metadata_update(self, cluster_metadata, topics) -> bool:  # type: ignore[no-untyped-def]
        return await self.force_metadata_update()


class FakeSender:
    def __init__(self, task: asyncio.Future) -> None:
        self.sender_task = task


class FakeProducer:
    def __init__(self, client: FakeClient, sender_task: asyncio.Future | None = None) -> None:
        self.client = client
        if sender_task is not None:
            self._sender = FakeSender(sender_task)


async def test_ready_follows_the_brokers_answers():
    client = FakeClient([True, False, ConnectionError("refused"), True])
    watch = KafkaWatch(lambda: FakeProducer(client))
    assert not watch.ready  # nothing asked yet
    assert [await watch.probe() for _ in range(4)] == [True, False, False, True]
    assert watch.ready


async def test_a_probe_that_hangs_counts_as_unreachable():
    class Hanging(FakeClient):
        async def force_metadata_update(self) -> bool:
            await asyncio.Event().wait()
            return True

    watch = KafkaWatch(lambda: FakeProducer(Hanging([True])), timeout_s=0.01)
    assert await watch.probe() is False


async def test_no_producer_yet_is_not_ready():
    def not_started():  # type: ignore[no-untyped-def]
        raise RuntimeError("Producer service not yet started")

    assert await KafkaWatch(not_started).probe() is False
    assert await KafkaWatch(lambda: None).probe() is False


async def test_a_producer_whose_sender_ended_is_not_ready_though_the_broker_answers():
    ended = asyncio.get_running_loop().create_future()
    ended.set_result(None)
    client = FakeClient([True])
    assert await KafkaWatch(lambda: FakeProducer(client, ended)).probe() is False
    running = asyncio.get_running_loop().create_future()
    assert await KafkaWatch(lambda: FakeProducer(client, running)).probe() is True
    running.cancel()


async def test_a_failed_metadata_update_reports_only_after_the_pause(monkeypatch: pytest.MonkeyPatch):
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)

    monkeypatch.setattr(kafka_pacing.asyncio, "sleep", sleep)
    client = FakeClient([False, True, False])
    install_metadata_backoff(client, backoff_s=0.7)
    assert await client._metadata_update(None, set()) is False
    assert pauses == [0.7]
    assert await client._metadata_update(None, set()) is True
    assert pauses == [0.7]  # a successful update is not delayed
    assert await client._metadata_update(None, set()) is False
    assert pauses == [0.7, 0.7]
