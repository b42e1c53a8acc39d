"""Bounded logs: during a Kafka outage aiokafka logs a line per failed connection attempt and per
retried request, enough to fill a disk in a long outage. :func:`limit_kafka_logs` lets one line per
logger, level and message through per interval and counts the rest; every command that talks to Kafka
installs it once its logging is configured."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable


class RateLimitFilter(logging.Filter):
    """Lets one record per (logger, level, message template) through per ``interval_s`` from loggers
    under ``prefixes``; the next one let through says how many were held back meanwhile."""

    def __init__(
        self,
        prefixes: tuple[str, ...] = ("aiokafka", "otklik.kafka"),
        interval_s: float = 30.0,
        max_keys: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.prefixes = prefixes
        self.interval_s = interval_s
        self.max_keys = max_keys
        self._clock = clock
        self._windows: OrderedDict[tuple[str, int, str], list[float]] = OrderedDict()  # [start, held back]
        self.held_back = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefixes):
            return True
        decided = getattr(record, "_otklik_rate_limited", None)
        if decided is not None:  # one filter on several handlers: decide once per record
            return decided
        decided = self._decide(record)
        record._otklik_rate_limited = decided
        return decided

    def _decide(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, str(record.msg)[:200])
        now = self._clock()
        window = self._windows.get(key)
        if window is not None and now - window[0] < self.interval_s:
            window[1] += 1
            self.held_back += 1
            return False
        if window is not None and window[1]:
            held, seconds = int(window[1]), now - window[0]
            record.msg = f"{record.msg} [{held} more like this in the last {seconds:.0f}s not logged]"
        self._windows[key] = [now, 0]
        self._windows.move_to_end(key)
        while len(self._windows) > self.max_keys:
            self._windows.popitem(last=False)
        return True


def limit_kafka_logs(interval_s: float = 30.0) -> RateLimitFilter:
    """Put a :class:`RateLimitFilter` on every handler of the root logger (once); return it."""
    root = logging.getLogger()
    for handler in root.handlers:
        for existing in handler.filters:
            if isinstance(existing, RateLimitFilter):
                return existing
    limiter = RateLimitFilter(interval_s=interval_s)
    for handler in root.handlers:
        handler.addFilter(limiter)
    return limiter
