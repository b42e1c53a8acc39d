"""The consumer's fast hand-over (streams/worker/fast_delivery.py) behaves as mode's wait_first did.

A stand-in consumer here, to reach the cases a live run hardly provokes on demand (a rebalance while a
delivery waits, a delivery that fails); tests/integration/test_fast_delivery_live.py drives faust's real
consumer through it on Kafka.
"""

from __future__ import annotations

import asyncio

import pytest
from mode import Service

from otklik.streams.worker import fast_delivery
from otklik.streams.worker.fast_delivery import FastDeliveryStats, install_fast_delivery


class FakeConsumer(Service):
    """What the fast path looks at on faust's consumer: wait_first, suspend_flow, should_stop."""

    def __init__(self) -> None:
        super().__init__()
        self.suspend_flow = asyncio.Event()
        self.stats = install_fast_delivery(self)


def counting_tasks(loop: asyncio.AbstractEventLoop) -> list[int]:
    made = [0]

    def factory(loop, coro, **kwargs):  # type: ignore[no-untyped-def]
        made[0] += 1
        return asyncio.Task(coro, loop=loop, **kwargs)

    loop.set_task_factory(factory)
    return made


def test_a_delivery_that_does_not_wait_makes_no_task() -> None:
    async def main() -> None:
        consumer = FakeConsumer()
        made = counting_tasks(asyncio.get_running_loop())
        queue: asyncio.Queue[int] = asyncio.Queue(maxsize=2)

        async def deliver() -> str:
            queue.put_nowait(1)
            return "delivered"

        result = await consumer.wait_first(deliver(), consumer.suspend_flow.wait())
        assert result.results == ["delivered"] and not result.stopped
        assert queue.qsize() == 1
        assert made[0] == 0
        assert (consumer.stats.fast, consumer.stats.fallback) == (1, 0)

    asyncio.run(main())


def test_a_delivery_that_waits_for_room_finishes_when_there_is_room() -> None:
    async def main() -> None:
        consumer = FakeConsumer()
        queue: asyncio.Queue[int] = asyncio.Queue(maxsize=1)
        queue.put_nowait(0)

        async def deliver() -> str:
            await queue.put(1)  # full: waits until the reader below takes one
            return "delivered"

        async def reader() -> None:
            await asyncio.sleep(0.01)
            assert queue.get_nowait() == 0

        read = asyncio.ensure_future(reader())
        result = await consumer.wait_first(deliver(), consumer.suspend_flow.wait())
        await read
        assert result.results == ["delivered"]
        assert queue.get_nowait() == 1
        assert (consumer.stats.fast, consumer.stats.fallback) == (0, 1)

    asyncio.run(main())


def test_a_suspended_flow_abandons_a_waiting_delivery_as_before() -> None:
    async def main() -> None:
        consumer = FakeConsumer()
        queue: asyncio.Queue[int] = asyncio.Queue(maxsize=1)
        queue.put_nowait(0)
        seen: list[str] = []

        async def deliver() -> None:
            try:
                await queue.put(1)
            except asyncio.CancelledError:
                seen.append("cancelled")
                raise
            seen.append("delivered")

        async def rebalance() -> None:
            await asyncio.sleep(0.01)
            consumer.suspend_flow.set()

        rebalancing = asyncio.ensure_future(rebalance())
        result = await consumer.wait_first(deliver(), consumer.suspend_flow.wait())
        await asyncio.sleep(0.01)  # let the cancellation reach the delivery
        assert result.results == [True]  # the winner is the suspend event's wait()
        assert seen == ["cancelled"]
        await rebalancing
        assert queue.qsize() == 1 and queue.get_nowait() == 0  # nothing was put
        assert not queue._putters  # type: ignore[attr-defined]  # the waiting putter was removed

    asyncio.run(main())


def test_errors_of_a_delivery_propagate_whether_or_not_it_waited() -> None:
    async def main() -> None:
        consumer = FakeConsumer()

        async def fails_at_once() -> None:
            raise ValueError("bad record")

        async def fails_later() -> None:
            await asyncio.sleep(0.001)
            raise KeyError("later")

        with pytest.raises(ValueError, match="bad record"):
            await consumer.wait_first(fails_at_once(), consumer.suspend_flow.wait())
        with pytest.raises(KeyError, match="later"):
            await consumer.wait_first(fails_later(), consumer.suspend_flow.wait())

    asyncio.run(main())


def test_other_calls_and_a_suspended_flow_take_the_original_path() -> None:
    async def main() -> None:
        consumer = FakeConsumer()
        made = counting_tasks(asyncio.get_running_loop())
        other = asyncio.Event()

        async def deliver() -> str:
            return "delivered"

        result = await consumer.wait_first(deliver(), other.wait())  # not the consumer's suspend_flow
        assert result.results == ["delivered"] and made[0] >= 2
        assert (consumer.stats.fast, consumer.stats.fallback) == (0, 0)  # no record's delivery

        made[0] = 0
        consumer.suspend_flow.set()
        result = await consumer.wait_first(deliver(), consumer.suspend_flow.wait())
        assert made[0] >= 2  # tasks, as mode's wait_first makes them
        assert True in result.results
        assert (consumer.stats.fast, consumer.stats.fallback) == (0, 1)

    asyncio.run(main())


def test_otklik_app_leaves_faust_monitor_out_of_the_per_record_sensors() -> None:
    """The Monitor still exists (faust calls it for end offsets and commits) but hears no record."""
    import faust

    from otklik.streams.worker.app import FaustApp

    ours, plain = FaustApp("otklik-sensor-test", broker="kafka://127.0.0.1:1"), faust.App("plain-sensor-test")
    for app in (ours, plain):
        list(app.on_init_dependencies())
    assert plain.monitor in set(plain.sensors)
    assert ours.monitor is not None and ours.monitor not in set(ours.sensors)


def test_it_is_not_installed_when_faust_delivers_otherwise_and_says_so_once(monkeypatch, caplog) -> None:
    """A faust whose consumer no longer delivers through wait_first(callback(message), suspend_flow.wait())."""
    monkeypatch.setattr(fast_delivery, "_DELIVERY_CALL", "self.deliver_somehow(message)")
    monkeypatch.setattr(fast_delivery, "_warned", False)

    async def main() -> None:
        consumers = [FakeConsumer(), FakeConsumer()]
        for consumer in consumers:
            assert not consumer.stats.installed
            assert "no longer delivers through wait_first" in consumer.stats.reason
            assert consumer.wait_first.__func__ is Service.wait_first  # mode's own, untouched

    with caplog.at_level("WARNING", logger="otklik.fast_delivery"):
        asyncio.run(main())
    warnings = [r.getMessage() for r in caplog.records if r.name == "otklik.fast_delivery"]
    assert len(warnings) == 1 and "fast delivery not installed" in warnings[0]  # two consumers, one warning


def test_the_pinned_faust_delivers_as_the_fast_path_expects() -> None:
    assert fast_delivery.faust_delivers_through_wait_first() is None


def test_a_consumer_without_what_the_fast_path_needs_is_left_alone(monkeypatch) -> None:
    monkeypatch.setattr(fast_delivery, "_warned", True)  # the warning itself is tested above

    class Bare:
        async def wait_first(self, *coros, timeout=None):  # type: ignore[no-untyped-def]
            return None

    bare = Bare()
    stats = install_fast_delivery(bare, FastDeliveryStats())
    assert not stats.installed and "suspend_flow" in stats.reason
    assert "wait_first" not in vars(bare)


def test_the_app_installs_it_on_its_consumer_unless_switched_off() -> None:
    from otklik.streams.worker.app import FaustApp

    on = FaustApp("otklik-fast-on", broker="kafka://127.0.0.1:1")
    off = FaustApp("otklik-fast-off", broker="kafka://127.0.0.1:1", fast_delivery=False)
    assert "wait_first" in vars(on.consumer) and on.fast_delivery_stats.installed
    assert "wait_first" not in vars(off.consumer) and not off.fast_delivery_stats.installed
    assert "OTKLIK_FAST_DELIVERY" in off.fast_delivery_stats.reason
