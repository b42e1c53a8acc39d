"""A cheaper hand-over of fetched records from faust's consumer to its streams.

faust's consumer (``Consumer._drain_messages``, faust-streaming 0.15) delivers every record with
``await self.wait_first(callback(message), self.suspend_flow.wait())``: mode's ``wait_first`` wraps
both coroutines, and the service's ``stopped`` and ``crashed`` events, in four asyncio tasks and then
cancels the three that did not finish, so that a rebalance (``suspend_flow``) can abandon a delivery
stuck on a full stream buffer. That costs ~65 µs of CPU per record here, 60 % of what a no-op faust
agent spends per record (``python -m bench live`` prints that floor).

Almost always the delivery does not wait at all: flow is not suspended and the stream's queue has
room. So we first run the delivery coroutine by hand, as a task's first step would; when it finishes
in that step (the common case) no task is made. When it has to wait, the rest of it goes the original
way, through ``wait_first``, and a suspended flow abandons it exactly as before (the pending delivery
gets ``CancelledError`` where it waits). Any other ``wait_first`` call of the consumer is untouched.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from mode.services import WaitResults

__all__ = ["install_fast_delivery"]


def _waits_on(coro: object, event: object) -> bool:
    """Is ``coro`` an unstarted ``event.wait()``?"""
    frame = getattr(coro, "cr_frame", None)
    return (
        frame is not None and getattr(coro, "__qualname__", "") == "Event.wait" and frame.f_locals.get("self") is event
    )


async def _carry_on(coro: Coroutine[Any, Any, Any], awaiting: Any) -> Any:
    """Drive ``coro``, already started by hand and now waiting on ``awaiting``, to its end, as a task would.

    ``awaiting`` is what the coroutine yielded: a future it waits for, or None (a bare yield, as
    ``asyncio.sleep(0)`` does). If this is cancelled while waiting, the cancellation is thrown into the
    coroutine at the point where it waits, so its own clean-up runs (a queue drops its waiting putter).
    """
    while True:
        try:
            if awaiting is None:
                await asyncio.sleep(0)
            else:
                awaiting._asyncio_future_blocking = False  # what a task does with a future it is given
                await asyncio.wait([awaiting])
        except BaseException as exc:
            try:
                awaiting = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
            continue
        try:
            awaiting = coro.send(None)
        except StopIteration as stop:
            return stop.value


def install_fast_delivery(consumer: Any) -> None:
    """Give ``consumer`` (a faust consumer) the fast path above for its record deliveries."""
    original = consumer.wait_first

    async def wait_first(*coros: Any, timeout: Any = None) -> WaitResults:
        if (
            len(coros) != 2
            or timeout is not None
            or not asyncio.iscoroutine(coros[0])
            or not _waits_on(coros[1], consumer.suspend_flow)
            or consumer.suspend_flow.is_set()
            or consumer.should_stop
        ):
            return await original(*coros, timeout=timeout)
        delivery, suspended = coros
        try:
            awaiting = delivery.send(None)
        except StopIteration as done:  # delivered without waiting
            suspended.close()
            return WaitResults([delivery], [done.value], False)
        except BaseException:
            suspended.close()
            raise
        return await original(_carry_on(delivery, awaiting), suspended)

    consumer.wait_first = wait_first
