"""Bounded input (pure): the times and values the worker and the gateway accept (docs/data-flow.md,
"Bounded input").

One rule for both edges. Each check returns ``None`` when the value is acceptable, or the reason it is
not, phrased to follow the field's name in a dead letter or a 4xx answer
(``envelope.received_at: 1764230400000 is … milliseconds?``).

* A time is unix seconds, not before :data:`EARLIEST_S` (2006, before any platform otklik reads
  existed) and not after :data:`LATEST_S` (2100): within what the working-hours clock can compute.
* ``received_at`` is also not more than :data:`MAX_AHEAD_S` ahead of the receiving clock, when there is
  one (the worker's wall clock at processing; a replay has none). Old records are fine: a backlog and a
  replayed archive are old.
* A body's own time (VK's and Telegram's ``date``, MAX's ``timestamp``) is not more than
  :data:`MAX_AHEAD_S` after its ``received_at``: a platform cannot write a comment after we received it.
* A body can be written back as JSON by the encoder (orjson) inside its envelope: integers within 64
  bits, nesting within :data:`MAX_BODY_DEPTH`.
"""

from __future__ import annotations

import math
import time
from typing import Any, Final

import orjson

__all__ = [
    "EARLIEST_S",
    "LATEST_S",
    "MAX_AHEAD_S",
    "MAX_BODY_DEPTH",
    "body_problem",
    "created_at_problem",
    "received_at_problem",
]

# 2006-01-01T00:00:00Z: VK, the oldest platform otklik reads, opened in October 2006.
EARLIEST_S: Final = 1_136_073_600
# 2100-01-01T00:00:00Z: the ceiling when no receiving clock is given; far inside the calendar the
# working-hours clock can compute (it fails past the year 9999).
LATEST_S: Final = 4_102_444_800
# How far a time may be ahead of the clock it is compared with: the clocks of machines kept by NTP
# agree within a second, and a time minutes ahead is a bad one (milliseconds, a typo, a wrong zone).
# The stream clock ignores times beyond the same skew (agents/wiring/stream_clock.py).
MAX_AHEAD_S: Final = 300
# orjson writes at most 254 levels of arrays and objects; the envelope around the body takes one.
MAX_BODY_DEPTH: Final = 253

_INT_MIN: Final = -(2**63)  # orjson writes integers from -2**63 to 2**64 - 1
_INT_MAX: Final = 2**64 - 1
_PATH_CHARS: Final = 60  # a culprit's path is cut here


def _show(value: Any) -> str:
    """A value for a reason, short: huge integers by their size (their digits cannot even be printed)."""
    if type(value) is int and not _INT_MIN <= value <= _INT_MAX:
        return f"an integer of {value.bit_length()} bits"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _time_problem(value: Any, latest: float, what: str) -> str | None:
    """Why ``value`` is no unix time in seconds in [EARLIEST_S, latest] (``what`` names ``latest``)."""
    if type(value) is not int and type(value) is not float:
        return f"{_show(value)} is not a unix time (a number of seconds)"
    if type(value) is float and not math.isfinite(value):
        return f"{_show(value)} is not a unix time"
    if value < EARLIEST_S:
        return f"{_show(value)} is before {_iso(EARLIEST_S)}"
    if value > latest:
        seconds = value // 1000 if type(value) is int else value / 1000  # an int too big for a float too
        hint = "; milliseconds?" if EARLIEST_S <= seconds <= latest else ""
        return f"{_show(value)} is after {what}{hint}"
    return None


def received_at_problem(value: Any, now: float | None = None) -> str | None:
    """Why ``value`` cannot be a ``received_at`` at wall time ``now`` (None: no receiving clock, as in a
    replay, which only the absolute bounds apply to), or None when it can."""
    latest = LATEST_S if now is None else min(LATEST_S, now + MAX_AHEAD_S)
    if (type(value) is int or type(value) is float) and EARLIEST_S <= value <= latest:
        return None  # the usual case, before any reason is written (NaN fails the comparisons)
    if now is None:
        return _time_problem(value, LATEST_S, _iso(LATEST_S))
    return _time_problem(value, latest, f"the receiving clock ({_iso(now)}) by more than {MAX_AHEAD_S} s")


def created_at_problem(value: Any, received_at: int) -> str | None:
    """Why ``value`` cannot be the own time of a body received at ``received_at`` (already checked), or
    None when it can: not before EARLIEST_S and not more than MAX_AHEAD_S after ``received_at``."""
    latest = received_at + MAX_AHEAD_S
    if (type(value) is int or type(value) is float) and EARLIEST_S <= value <= latest:
        return None
    return _time_problem(value, latest, f"received_at ({_iso(received_at)}) by more than {MAX_AHEAD_S} s")


def body_problem(body: Any, where: str = "body") -> str | None:
    """Why the encoder cannot write ``body`` back inside its envelope (an integer beyond 64 bits,
    nesting deeper than MAX_BODY_DEPTH, text that is not Unicode), or None when it can. The reason
    starts with the culprit's path from ``where`` (``envelope.body.object.id: ...``).

    Encoding is the check (about half a microsecond for a usual body); the walk that names the
    culprit runs only when it fails."""
    try:
        orjson.dumps((body,))  # the tuple stands for the envelope's level
        return None
    except orjson.JSONEncodeError as exc:
        return _find_unencodable(body, where) or f"{where}: cannot be written as JSON: {exc}"


def _find_unencodable(body: Any, where: str) -> str | None:
    """The first integer out of range or level too deep, by its path (``.object.id``), iteratively:
    a deep body must not exhaust Python's recursion either."""
    stack: list[tuple[Any, str, int]] = [(body, where, 1)]
    while stack:
        value, path, depth = stack.pop()
        if type(value) is dict or type(value) is list:
            if depth > MAX_BODY_DEPTH:
                return f"{path}...: nested deeper than {MAX_BODY_DEPTH} levels"
            if len(path) > _PATH_CHARS:  # deep down, the path says enough: stop growing it
                stack.extend((v, path, depth + 1) for v in reversed(value.values() if type(value) is dict else value))
            elif type(value) is dict:
                stack.extend((v, f"{path}.{k}", depth + 1) for k, v in reversed(value.items()))
            else:
                stack.extend((v, f"{path}[{i}]", depth + 1) for i, v in reversed(list(enumerate(value))))
        elif type(value) is int and not _INT_MIN <= value <= _INT_MAX:
            return f"{path}: {_show(value)}, beyond the 64 bits of an integer the encoder writes"
    return None
