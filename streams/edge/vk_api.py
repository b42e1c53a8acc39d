"""The VK API client (docs/data-flow.md, "The VK API"): typed answers for the methods otklik reads, a pace per
token, ``execute`` batches, retries, and errors that say what failed without ever showing a token.

- Every token has its own token bucket (``OTKLIK_VK_API_USER_RATE``, ``_SERVICE_RATE``, ``_GROUP_RATE``;
  VK's limits are 3 requests per second for user and service tokens and 20 for community tokens).
- VK errors 6, 9, 10 and 29, HTTP 5xx and lost connections are retried with exponential backoff and
  jitter, at most ``OTKLIK_VK_API_ATTEMPTS`` tries; then :class:`VkRetriesExhausted`.
- Error 5 (and 27, 28: a token of a type the method refuses) raises :class:`VkAuthError`; 15, 203 and 212
  raise :class:`VkAccessError`; both name the method and the group.
- Tokens travel in the POST body only (never in a URL an aiohttp error could quote), and a
  :class:`VkToken`'s ``repr`` and ``str`` hide the value.

The arithmetic (buckets, backoff, batching, the ``execute`` script) is pure, in
agents/ingest/vk_api_rules.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import aiohttp
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from otklik.agents.ingest.vk_api_rules import (
    Call,
    CallError,
    RetryPolicy,
    TokenBucket,
    TokenKind,
    classify,
    execute_code,
    plan_batches,
    split_execute,
    wire_params,
)
from otklik.streams.settings import VkApiSettings

log = logging.getLogger("otklik.vk_api")

__all__ = [
    "Call",
    "VkAccessError",
    "VkApiClient",
    "VkApiError",
    "VkAuthError",
    "VkRetriesExhausted",
    "VkToken",
]


# ---- tokens -------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class VkToken:
    """An access token and its type (``user``, ``group`` for a community token, ``service``). The value
    is a ``SecretStr``: ``repr``, ``str`` and logs show the type and ``name`` only."""

    kind: TokenKind
    value: SecretStr
    name: str = ""  # what logs call it, e.g. "community 123"

    @classmethod
    def of(cls, kind: TokenKind, value: str | SecretStr, name: str = "") -> VkToken:
        return cls(kind, value if isinstance(value, SecretStr) else SecretStr(value), name)

    def __repr__(self) -> str:
        return f"VkToken({self.kind}{', ' + self.name if self.name else ''})"

    __str__ = __repr__


# ---- errors -------------------------------------------------------------------------------------------


class VkApiError(Exception):
    """A VK API call failed. The message names the method, the group and VK's code and words; never a
    token (VK's own message does not carry it; the request's parameters are not quoted)."""

    def __init__(self, method: str, code: int, message: str, group_id: int | None = None) -> None:
        self.method = method
        self.code = code
        self.vk_message = message
        self.group_id = group_id
        where = f" for group {group_id}" if group_id is not None else ""
        super().__init__(f"VK API {method}{where}: error {code}: {message}")


class VkAuthError(VkApiError):
    """Error 5 (the token is invalid or expired), 27 or 28 (the token's type is refused by the method)."""


class VkAccessError(VkApiError):
    """Error 15 (access denied), 203 (access to the group denied) or 212 (access to the post's comments
    denied): the token works, but not for this."""


class VkRetriesExhausted(VkApiError):
    """A retryable failure (VK error 6, 9, 10, 29, HTTP 5xx, a lost connection) outlasted the attempts;
    ``code`` is the last VK code, or the HTTP status, or 0 for a connection error."""


def _error(method: str, code: int, message: str, group_id: int | None) -> VkApiError:
    kind = classify(code)
    if kind == "auth":
        return VkAuthError(method, code, message, group_id)
    if kind == "access":
        return VkAccessError(method, code, message, group_id)
    return VkApiError(method, code, message, group_id)


class _Retryable(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# ---- typed answers ------------------------------------------------------------------------------------
# The fields otklik reads, with VK's names (responses.json, objects.json); anything else VK sends is kept.


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class CommentsInfo(_Model):
    count: int = 0


class WallPost(_Model):
    id: int
    owner_id: int | None = None
    from_id: int | None = None
    date: int | None = None
    text: str = ""
    comments: CommentsInfo | None = None


class CommentThread(_Model):
    count: int
    items: list[WallComment] = []


class WallComment(_Model):
    id: int
    # VK's schema requires none of these: a deleted comment kept for its thread comes as a placeholder
    # (``deleted``) without them, and must not fail its whole answer.
    from_id: int = 0
    date: int = 0
    text: str = ""
    post_id: int | None = None
    owner_id: int | None = None
    parents_stack: list[int] = []
    reply_to_user: int | None = None
    reply_to_comment: int | None = None
    thread: CommentThread | None = None
    deleted: bool | None = None


CommentThread.model_rebuild()


class BoardTopic(_Model):
    id: int
    title: str = ""
    created: int | None = None
    created_by: int | None = None
    updated: int | None = None
    updated_by: int | None = None
    comments: int = 0
    is_closed: int | bool | None = None


class BoardComment(_Model):
    id: int
    from_id: int
    date: int
    text: str


class Peer(_Model):
    id: int
    type: str
    local_id: int | None = None


class Conversation(_Model):
    peer: Peer
    last_message_id: int
    in_read: int
    out_read: int
    unanswered: bool | None = None


class Message(_Model):
    id: int
    date: int
    peer_id: int
    from_id: int
    text: str
    out: int
    conversation_message_id: int


class ConversationWithMessage(_Model):
    conversation: Conversation
    last_message: Message | None = None


class ManagerRole(_Model):
    id: int
    role: str | None = None  # moderator, editor, administrator, creator, advertiser


class TimetableDay(_Model):
    open_time: int  # minutes after midnight
    close_time: int
    break_open_time: int | None = None
    break_close_time: int | None = None


class Address(_Model):
    id: int
    title: str | None = None
    address: str | None = None
    timetable: dict[str, TimetableDay] | None = None  # mon … sun
    work_info_status: str | None = None


class Group(_Model):
    id: int
    name: str | None = None
    screen_name: str | None = None
    type: str | None = None


Item = TypeVar("Item")


class Page(_Model, Generic[Item]):
    """A list answer: ``count`` in all, ``items`` of this page."""

    count: int
    items: list[Item]


class WallComments(Page[WallComment]):
    current_level_count: int | None = None


class BoardTopics(Page[BoardTopic]):
    default_order: int | None = None


class Conversations(Page[ConversationWithMessage]):
    unread_count: int | None = None


class Groups(_Model):
    groups: list[Group] = []


class MediaObject(_Model):
    """A video (``video_video_full``) or market item (``market_market_item``): the fields read here."""

    id: int
    date: int | None = None
    adding_date: int | None = None
    comments: int | None = None  # videos only


# method → the model of its answer (the answer of ``execute`` is the script's own).
RESPONSE_MODELS: Mapping[str, type[BaseModel]] = {
    "wall.get": Page[WallPost],
    "wall.getComments": WallComments,
    "board.getTopics": BoardTopics,
    "board.getComments": Page[BoardComment],
    "messages.getConversations": Conversations,
    "messages.getHistory": Page[Message],
    "groups.getMembers": Page[ManagerRole],
    "groups.getAddresses": Page[Address],
    "groups.getById": Groups,
    # Photo, video and market comments come as wall comments (VK's wall/objects.json).
    "photos.getAllComments": WallComments,
    "video.get": Page[MediaObject],
    "video.getComments": WallComments,
    "market.get": Page[MediaObject],
    "market.getComments": WallComments,
}


def parse_response(method: str, response: Any, group_id: int | None = None) -> Any:
    """A method's raw answer as its model (raw when the method has none); a shape VK's schema does not
    allow is a :class:`VkApiError` naming the method (code 0)."""
    model = RESPONSE_MODELS.get(method)
    if model is None:
        return response
    try:
        return model.model_validate(response)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])
        raise VkApiError(method, 0, f"unexpected answer: {problems}", group_id) from None


# ---- the client ---------------------------------------------------------------------------------------

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


@dataclass
class VkApiClient:
    """One client per process; it opens its own aiohttp session unless given one. ``clock``, ``sleep`` and
    ``draw`` (the jitter's randomness) are there for tests."""

    settings: VkApiSettings = field(default_factory=VkApiSettings)
    session: aiohttp.ClientSession | None = None
    clock: Clock = time.monotonic
    sleep: Sleep = asyncio.sleep
    draw: Callable[[], float] = random.random
    requests: int = 0  # HTTP requests sent, retries included
    _buckets: dict[bytes, TokenBucket] = field(default_factory=dict, repr=False)
    _own_session: bool = field(default=False, repr=False)

    @property
    def retry(self) -> RetryPolicy:
        s = self.settings
        return RetryPolicy(
            attempts=s.vk_api_attempts, base=s.vk_api_backoff, cap=max(s.vk_api_max_backoff, s.vk_api_backoff)
        )

    def rate(self, kind: TokenKind) -> float:
        s = self.settings
        return {"user": s.vk_api_user_rate, "service": s.vk_api_service_rate, "group": s.vk_api_group_rate}[kind]

    async def __aenter__(self) -> VkApiClient:
        if self.session is None:
            self.session = aiohttp.ClientSession()
            self._own_session = True
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_session and self.session is not None:
            await self.session.close()
            self.session = None
            self._own_session = False

    # -- one request ----------------------------------------------------------------------------------

    async def _pace(self, token: VkToken) -> None:
        # One bucket per token value (two VkToken objects of one token share it), keyed by a digest so
        # that the value itself is kept nowhere but in its SecretStr.
        key = hashlib.sha256(token.value.get_secret_value().encode()).digest()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(rate=self.rate(token.kind))
        wait = bucket.reserve(self.clock())
        if wait > 0:
            await self.sleep(wait)

    async def _send(self, method: str, form: dict[str, str], token: VkToken) -> Any:
        """One HTTP request; the body's ``response``/``error``. Raises :class:`_Retryable` for what may be
        retried, :class:`VkApiError` for a VK error that may not (with ``group_id`` filled by the caller)."""
        if self.session is None:
            raise RuntimeError("the VK API client is not open (use `async with VkApiClient(...)`)")
        await self._pace(token)
        body = dict(form, access_token=token.value.get_secret_value(), v=self.settings.api_version)
        self.requests += 1
        timeout = aiohttp.ClientTimeout(total=self.settings.vk_api_timeout)
        try:
            async with self.session.post(f"{self.settings.api_url}/{method}", data=body, timeout=timeout) as resp:
                if resp.status >= 500:
                    raise _Retryable(resp.status, f"HTTP {resp.status}")
                if resp.status != 200:
                    raise VkApiError(method, resp.status, f"HTTP {resp.status}")
                payload = await resp.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError) as exc:
            # aiohttp's message names the host, never the form; the type says what happened.
            raise _Retryable(0, f"connection failed: {type(exc).__name__}") from None
        except ValueError:
            raise VkApiError(method, 0, "the answer is not JSON") from None
        if not isinstance(payload, dict):
            raise VkApiError(method, 0, "the answer is not a JSON object")
        error = payload.get("error")
        if error is not None:
            code = int(error.get("error_code", 0)) if isinstance(error, dict) else 0
            message = str(error.get("error_msg", "")) if isinstance(error, dict) else str(error)
            if classify(code) == "retry":
                raise _Retryable(code, message)
            raise _error(method, code, message, None)
        if "response" not in payload:
            raise VkApiError(method, 0, "the answer has neither response nor error")
        return payload

    async def _request(self, method: str, params: Mapping[str, Any], token: VkToken, group_id: int | None) -> Any:
        """The body of one call, retried as the policy says."""
        form = wire_params(params)
        policy = self.retry
        failures = 0
        while True:
            try:
                return await self._send(method, form, token)
            except _Retryable as exc:
                failures += 1
                if policy.gives_up(failures):
                    raise VkRetriesExhausted(
                        method, exc.code, f"{exc.message} (gave up after {failures} tries)", group_id
                    ) from None
                pause = policy.delay(failures, self.draw())
                log.debug("VK API %s (%s) failed: %s; retry %d in %.2fs", method, token, exc.message, failures, pause)
                await self.sleep(pause)
            except VkApiError as exc:  # not retryable: the same error, now naming the group
                raise _error(method, exc.code, exc.vk_message, group_id) from None

    async def call(
        self, method: str, token: VkToken, params: Mapping[str, Any] | None = None, *, group: int | None = None
    ) -> Any:
        """Any method; its answer typed when the method has a model (:data:`RESPONSE_MODELS`). ``group``
        names the community in errors and logs (it is not sent: the parameters say what VK gets)."""
        log.debug("VK API %s (%s) group %s", method, token, group)
        payload = await self._request(method, params or {}, token, group)
        return parse_response(method, payload["response"], group)

    # -- batches --------------------------------------------------------------------------------------

    async def batch(self, calls: Sequence[Call], token: VkToken, group_id: int | None = None) -> list[Any | VkApiError]:
        """Each call's typed answer or its error (an exception object, not raised), in the calls' order.
        Calls go in ``execute`` batches of up to 25 where the token and the methods allow it
        (agents/ingest/vk_api_rules.py, ``plan_batches``), the rest one by one. An inner call failing with
        a retryable error is tried again in a later batch, within the same attempts. A failure of a whole
        ``execute`` request that retries did not cure (an authorization error, retries used up) is
        raised: it would be the same for every call in it."""
        results: list[Any | VkApiError | None] = [None] * len(calls)
        pending = list(range(len(calls)))
        failures: dict[int, int] = {}
        policy = self.retry
        while pending:
            again: list[int] = []
            plan = plan_batches([calls[i] for i in pending], token.kind)
            for group in plan:
                indices = [pending[j] for j in group]
                if len(indices) == 1:
                    index = indices[0]
                    call = calls[index]
                    try:
                        results[index] = await self.call(call.method, token, call.params, group=group_id)
                    except VkApiError as exc:
                        results[index] = exc
                    continue
                payload = await self._execute([calls[i] for i in indices], token, group_id)
                for index, value in zip(indices, payload, strict=True):
                    call = calls[index]
                    if isinstance(value, CallError):
                        if classify(value.code) == "retry":
                            failures[index] = failures.get(index, 0) + 1
                            if not policy.gives_up(failures[index]):
                                again.append(index)
                                continue
                            results[index] = VkRetriesExhausted(call.method, value.code, value.message, group_id)
                        else:
                            results[index] = _error(call.method, value.code, value.message, group_id)
                        continue
                    try:
                        results[index] = parse_response(call.method, value, group_id)
                    except VkApiError as exc:
                        results[index] = exc
            if again:
                worst = max(failures[i] for i in again)
                pause = policy.delay(worst, self.draw())
                log.debug("VK API execute: %d inner calls to retry in %.2fs", len(again), pause)
                await self.sleep(pause)
            pending = again
        return results  # every index has ended in an answer or an error

    async def _execute(self, calls: Sequence[Call], token: VkToken, group_id: int | None) -> list[Any | CallError]:
        log.debug("VK API execute of %d calls (%s) group %s", len(calls), token, group_id)
        payload = await self._request("execute", {"code": execute_code(calls)}, token, group_id)
        try:
            return split_execute(payload["response"], payload.get("execute_errors") or [], len(calls))
        except ValueError as exc:
            raise VkApiError("execute", 0, str(exc), group_id) from None

    # -- the methods otklik reads ---------------------------------------------------------------------

    async def wall_get(self, token: VkToken, group_id: int, *, offset: int = 0, count: int = 100) -> Page[WallPost]:
        # methods.json gives wall.get no owner_id: the community is named by its address, club<ID>.
        return await self.call(
            "wall.get", token, dict(domain=f"club{group_id}", offset=offset, count=count), group=group_id
        )

    async def wall_get_comments(
        self,
        token: VkToken,
        group_id: int,
        post_id: int,
        *,
        offset: int | None = None,
        count: int = 100,
        start_comment_id: int | None = None,
        comment_id: int | None = None,
        thread_items_count: int = 10,
        sort: str = "asc",
    ) -> WallComments:
        """A post's comments, each with up to ``thread_items_count`` (at most 10) replies of its thread;
        with ``comment_id``, the replies of that comment's thread."""
        return await self.call(
            "wall.getComments",
            token,
            dict(
                owner_id=-group_id,
                post_id=post_id,
                offset=offset,
                count=count,
                start_comment_id=start_comment_id,
                comment_id=comment_id,
                thread_items_count=thread_items_count if comment_id is None else None,
                sort=sort,
            ),
            group=group_id,
        )

    async def board_get_topics(
        self, token: VkToken, group_id: int, *, offset: int = 0, count: int = 100, order: int = 1
    ) -> BoardTopics:
        """Topics, most recently updated first (``order=1``)."""
        return await self.call(
            "board.getTopics", token, dict(group_id=group_id, offset=offset, count=count, order=order), group=group_id
        )

    async def board_get_comments(
        self,
        token: VkToken,
        group_id: int,
        topic_id: int,
        *,
        offset: int | None = None,
        count: int = 100,
        start_comment_id: int | None = None,
        sort: str = "asc",
    ) -> Page[BoardComment]:
        return await self.call(
            "board.getComments",
            token,
            dict(
                group_id=group_id,
                topic_id=topic_id,
                offset=offset,
                count=count,
                start_comment_id=start_comment_id,
                sort=sort,
            ),
            group=group_id,
        )

    async def messages_get_conversations(
        self, token: VkToken, group_id: int, *, filter: str = "all", offset: int = 0, count: int = 200
    ) -> Conversations:
        return await self.call(
            "messages.getConversations",
            token,
            dict(group_id=group_id, filter=filter, offset=offset, count=count),
            group=group_id,
        )

    async def messages_get_history(
        self,
        token: VkToken,
        group_id: int,
        peer_id: int,
        *,
        offset: int = 0,
        count: int = 200,
        start_message_id: int | None = None,
        rev: int = 0,
    ) -> Page[Message]:
        return await self.call(
            "messages.getHistory",
            token,
            history_params(group_id, peer_id, offset=offset, count=count, start_message_id=start_message_id, rev=rev),
            group=group_id,
        )

    async def groups_get_managers(
        self, token: VkToken, group_id: int, *, offset: int = 0, count: int = 1000
    ) -> Page[ManagerRole]:
        """The community's managers and their roles (``groups.getMembers`` with ``filter=managers``)."""
        return await self.call(
            "groups.getMembers",
            token,
            dict(group_id=group_id, filter="managers", offset=offset, count=count),
            group=group_id,
        )

    async def groups_get_addresses(
        self, token: VkToken, group_id: int, *, offset: int = 0, count: int = 100
    ) -> Page[Address]:
        """Addresses with their timetables (``fields=timetable,title,address,work_info_status``)."""
        return await self.call(
            "groups.getAddresses",
            token,
            dict(
                group_id=group_id,
                offset=offset,
                count=count,
                fields=["title", "address", "timetable", "work_info_status"],
            ),
            group=group_id,
        )

    async def groups_get_by_id(self, token: VkToken, group_ids: Sequence[int]) -> Groups:
        return await self.call("groups.getById", token, dict(group_ids=list(group_ids)), group=None)

    async def pages(self, fetch: Callable[[int], Awaitable[Page[Any]]]) -> AsyncIterator[Any]:
        """Every item of an offset-paged list: ``fetch(offset)`` until ``count`` items (or an empty page)."""
        offset = 0
        while True:
            page = await fetch(offset)
            for item in page.items:
                yield item
            offset += len(page.items)
            if not page.items or offset >= page.count:
                return


def history_params(
    group_id: int, peer_id: int, *, offset: int = 0, count: int = 200, start_message_id: int | None = None, rev: int = 0
) -> dict[str, Any]:
    """``messages.getHistory``'s parameters, for a direct call or a :class:`Call` in a batch."""
    return {
        "group_id": group_id,
        "peer_id": peer_id,
        "offset": offset,
        "count": count,
        "start_message_id": start_message_id,
        "rev": rev,
    }
