"""A cheaper hand-over of fetched records from faust's consumer to its streams.

faust's consumer (``Consumer._drain_messages``, faust-streaming 0.15) delivers every record with
``await self.wait_first(callback(message), self.suspend_flow.wait())``: mode's ``wait_first`` wraps
both coroutines, and the service's ``stopped`` and ``crashed`` events, in four asyncio tasks and then
cancels the three that did not finish, so that a rebalance (``suspend_flow``) can abandon a delivery
stuck on a full stream buffer. That is most of what a no-op faust agent spends per record
(``python -m bench live`` measures that floor).

Almost always the delivery does not wait at all: flow is not suspended and the stream's queue has
room. So we first run the delivery coroutine by hand, as a task's first step would; when it finishes
in that step (the common case) no task is made. When it has to wait, the rest of it goes the original
way, through ``wait_first``, and a suspended flow abandons it exactly as before (the pending delivery
gets ``CancelledError`` where it waits). Any other ``wait_first`` call of the consumer is untouched.

This depends on how faust's consumer delivers records, so :func:`install_fast_delivery` first checks that
faust still does it that way (:func:`faust_delivers_through_wait_first`); if not, it leaves the consumer
as faust made it and logs a warning, once. :class:`FastDeliveryStats` counts the records of each path, for
``/health`` and ``/metrics``; ``OTKLIK_FAST_DELIVERY=false`` switches the whole thing off.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from mode.services import WaitResults

__all__ = ["FastDeliveryStats", "faust_delivers_through_wait_first", "install_fast_delivery"]

log = logging.getLogger("otklik.fast_delivery")

# What faust's Consumer._drain_messages must contain, spaces removed, for the fast path to apply.
_DELIVERY_CALL = "self.wait_first(callback(message),self.suspend_flow.wait())"


@dataclass
class FastDeliveryStats:
    """Whether the fast path is installed (``reason`` says why not) and how many records took each path:
    ``fast``, delivered in the consumer's own step; ``fallback``, through mode's ``wait_first`` (the
    stream's buffer was full or flow was suspended)."""

    installed: bool = False
    reason: str = "the consumer has not been created yet"
    fast: int = 0
    fallback: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"installed": self.installed, "reason": self.reason, "fast": self.fast, "fallback": self.fallback}


def faust_delivers_through_wait_first() -> str | None:
    """None when faust's consumer hands each record over as this module expects; else why not."""
    try:
        from faust.transport.consumer import Consumer

        source = inspect.getsource(Consumer._drain_messages)
    except (ImportError, AttributeError, OSError, TypeError) as exc:
        return f"faust's Consumer._drain_messages cannot be read ({type(exc).__name__}: {exc})"
    if _DELIVERY_CALL not in "".join(source.split()):
        return "faust's Consumer._drain_messages no longer delivers through wait_first(callback(message), suspend_flow.wait())"
    return None


_warned = False


def _warn_once(reason: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        log.warning("fast delivery not installed: %s; records go faust's own way", reason)


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


def install_fast_delivery(consumer: Any, stats: FastDeliveryStats | None = None) -> FastDeliveryStats:
    """Give ``consumer`` (a faust consumer) the fast path above for its record deliveries, when faust
    delivers records as expected; returns ``stats`` (or new ones), which say whether it was installed."""
    stats = FastDeliveryStats() if stats is None else stats
    reason = faust_delivers_through_wait_first()
    if reason is None:
        missing = [name for name in ("wait_first", "suspend_flow", "should_stop") if not hasattr(consumer, name)]
        if missing:
            reason = f"faust's consumer has no {', '.join(missing)}"
        elif not isinstance(consumer.suspend_flow, asyncio.Event):
            reason = "faust's consumer's suspend_flow is not an asyncio.Event"
    if reason is not None:
        stats.installed, stats.reason = False, reason
        _warn_once(reason)
        return stats
    original = consumer.wait_first

    async def wait_first(*coros: Any, timeout: Any = None) -> WaitResults:
        if (
            len(coros) != 2
            or timeout is not None
            or not asyncio.iscoroutine(coros[0])
            or not _waits_on(coros[1], consumer.suspend_flow)
        ):
            return await original(*coros, timeout=timeout)  # not a record's delivery
        if consumer.suspend_flow.is_set() or consumer.should_stop:
            stats.fallback += 1
            return await original(*coros, timeout=timeout)
        delivery, suspended = coros
        try:
            awaiting = delivery.send(None)
        except StopIteration as done:  # delivered without waiting
            suspended.close()
            stats.fast += 1
            return WaitResults([delivery], [done.value], False)
        except BaseException:  # failed in its first step: it took the fast path too
            suspended.close()
            stats.fast += 1
            raise
        stats.fallback += 1
        return await original(_carry_on(delivery, awaiting), suspended)

    consumer.wait_first = wait_first
    stats.installed, stats.reason = True, ""
    return stats
