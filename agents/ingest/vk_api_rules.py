"""The VK API client's arithmetic, without I/O: token buckets, the retry policy, which errors mean what,
and how calls are packed into ``execute`` batches (docs/data-flow.md, "The VK API"; the client itself
is streams/edge/vk_api.py).

Everything here takes the time and the randomness it needs as arguments, so tests drive it with a fake
clock and fixed draws.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

TokenKind = Literal["user", "group", "service"]
TOKEN_KINDS: tuple[TokenKind, ...] = ("user", "group", "service")

# The token types each method we use accepts, as VK's methods.json states them (`access_token_type`);
# tests/unit/test_vk_api_rules.py compares this table with the schema.
METHOD_TOKEN_KINDS: Mapping[str, frozenset[TokenKind]] = {
    "wall.get": frozenset({"user", "service"}),
    "wall.getComments": frozenset({"user", "service"}),
    "board.getTopics": frozenset({"user", "service"}),
    "board.getComments": frozenset({"user", "service"}),
    "messages.getConversations": frozenset({"user", "group"}),
    "messages.getHistory": frozenset({"user", "group"}),
    "groups.getMembers": frozenset({"user", "group", "service"}),
    "groups.getAddresses": frozenset({"user", "service"}),
    "groups.getById": frozenset({"user", "group", "service"}),
    "photos.getAllComments": frozenset({"user"}),
    "video.get": frozenset({"user"}),
    "video.getComments": frozenset({"user"}),
    "market.get": frozenset({"user"}),
    "market.getComments": frozenset({"user"}),
    "execute": frozenset({"user", "group"}),
}

EXECUTE_MAX_CALLS = 25  # VK runs at most 25 API calls in one execute

# Error codes (VK's errors.json).
RETRYABLE_CODES = frozenset({6, 9, 10, 29})  # too many requests/s, flood control, internal error, rate limit
AUTH_CODES = frozenset({5, 27, 28})  # authorization failed; a community or app token where it is not accepted
ACCESS_CODES = frozenset({15, 203, 212})  # access denied; to the group; to the post's comments

ErrorClass = Literal["retry", "auth", "access", "fail"]


def classify(code: int) -> ErrorClass:
    """What the client does with a VK error: retry it, or fail as an auth, access or other error."""
    if code in RETRYABLE_CODES:
        return "retry"
    if code in AUTH_CODES:
        return "auth"
    if code in ACCESS_CODES:
        return "access"
    return "fail"


# ---- the token bucket ---------------------------------------------------------------------------------


@dataclass(slots=True)
class TokenBucket:
    """``rate`` requests per second with bursts of up to ``burst``; :meth:`reserve` books one request and
    says how long to wait before sending it (a booking is never cancelled, so concurrent callers queue
    in order without a lock)."""

    rate: float
    burst: float = 1.0
    tokens: float = field(default=-1.0)
    updated: float | None = None

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        if self.tokens < 0:
            self.tokens = self.burst

    def reserve(self, now: float) -> float:
        """Seconds from ``now`` until the booked request may go (0: at once)."""
        if self.updated is not None and now > self.updated:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        if self.updated is None or now > self.updated:
            self.updated = now
        self.tokens -= 1.0
        # A debt of d tokens is paid back after d / rate seconds.
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


# ---- retries ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter, bounded in attempts and in the longest pause."""

    attempts: int = 5  # tries in all, the first included
    base: float = 0.5  # seconds: the pause after the first failure is about this
    cap: float = 30.0  # seconds: no pause is longer

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.base <= 0 or self.cap < self.base:
            raise ValueError("a retry policy needs attempts >= 1 and 0 < base <= cap")

    def delay(self, failures: int, draw: float) -> float:
        """The pause after the ``failures``-th failure (1, 2, ...), ``draw`` uniform in [0, 1): half the
        exponential step fixed, half random, so callers that failed together do not retry together."""
        step = min(self.cap, self.base * 2 ** (failures - 1))
        return step / 2 + step / 2 * draw

    def gives_up(self, failures: int) -> bool:
        return failures >= self.attempts


# ---- execute batches ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Call:
    """One API call: the method and its parameters (Python values; :func:`wire_params` encodes them)."""

    method: str
    params: Mapping[str, Any] = field(default_factory=dict)


def wire_value(value: Any) -> str:
    """A parameter as VK reads it in a form: booleans 1/0, lists comma-joined."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, list | tuple | set | frozenset):
        return ",".join(wire_value(item) for item in value)
    return str(value)


def wire_params(params: Mapping[str, Any]) -> dict[str, str]:
    """The parameters of a direct call as form fields (``None`` values left out)."""
    return {name: wire_value(value) for name, value in params.items() if value is not None}


def script_value(value: Any) -> Any:
    """A parameter as an ``execute`` script passes it: numbers and strings as they are, booleans 1/0,
    lists comma-joined (as a form would carry them)."""
    if isinstance(value, bool):
        return 1 if value else 0
    if isinstance(value, int | float | str):
        return value
    return wire_value(value)


def plan_batches(calls: Sequence[Call], kind: TokenKind, limit: int = EXECUTE_MAX_CALLS) -> list[list[int]]:
    """The calls' indices grouped into requests: a group of two or more is one ``execute``, a group of one
    a direct call. Calls are batched only when the token may call ``execute`` and the method too (VK
    refuses ``execute`` to service tokens, so their calls all go direct); order is kept within each group."""
    if not 1 <= limit <= EXECUTE_MAX_CALLS:
        raise ValueError(f"an execute holds 1 to {EXECUTE_MAX_CALLS} calls")
    can_execute = kind in METHOD_TOKEN_KINDS["execute"]
    batchable: list[int] = []
    direct: list[list[int]] = []
    for index, call in enumerate(calls):
        if can_execute and call.method != "execute" and kind in METHOD_TOKEN_KINDS.get(call.method, frozenset()):
            batchable.append(index)
        else:
            direct.append([index])
    groups = [batchable[start : start + limit] for start in range(0, len(batchable), limit)]
    return groups + direct


def execute_code(calls: Sequence[Call]) -> str:
    """The VKScript of one ``execute``: an object (VK's schema wants the response to be one) whose key
    ``rN`` holds the Nth call's response, or ``false`` when that call failed (its error then is the next
    entry of ``execute_errors``)."""
    if not 1 <= len(calls) <= EXECUTE_MAX_CALLS:
        raise ValueError(f"an execute holds 1 to {EXECUTE_MAX_CALLS} calls")
    parts = []
    for index, call in enumerate(calls):
        args = {name: script_value(value) for name, value in call.params.items() if value is not None}
        encoded = json.dumps(args, ensure_ascii=False, separators=(",", ":"))
        parts.append(f'"r{index}":API.{call.method}({encoded})')
    return "return {" + ",".join(parts) + "};"


@dataclass(frozen=True, slots=True)
class CallError:
    """An inner call's failure as ``execute_errors`` reports it."""

    method: str
    code: int
    message: str


def split_execute(response: Any, execute_errors: Sequence[Mapping[str, Any]], count: int) -> list[Any | CallError]:
    """Each call's response, or its :class:`CallError`, from the body of an ``execute`` built by
    :func:`execute_code` for ``count`` calls. VK lists the failed calls' errors in call order, so the
    Nth ``false`` takes the Nth error."""
    if not isinstance(response, Mapping):
        raise ValueError("the execute response is not an object")
    errors = list(execute_errors)
    results: list[Any | CallError] = []
    for index in range(count):
        key = f"r{index}"
        if key not in response:
            raise ValueError(f"the execute response has no {key}")
        value = response[key]
        if value is False:
            if not errors:
                raise ValueError(f"{key} failed but execute_errors has no error left for it")
            error = errors.pop(0)
            results.append(
                CallError(
                    str(error.get("method", "")), int(error.get("error_code", 0)), str(error.get("error_msg", ""))
                )
            )
        else:
            results.append(value)
    return results
