"""What happened on one VK community in a time window, read with the VK API (the reading half of
catch-up after a gap; docs/data-flow.md, "The VK API").

VK has no "comments since T" method, so the window is found from what the methods do sort by:

- **wall**: posts newest first (``wall.get``) back to ``post_lookback`` before the window (older posts
  can get comments in it too); each such post's comments with up to 10 replies of each thread
  (``wall.getComments``, ``thread_items_count=10``), and a longer thread's replies by ``comment_id``;
- **board**: topics by last update (``board.getTopics``, ``order=1``) until one was last updated
  before the window; each topic's comments newest first (``board.getComments``, ``sort=desc``) until
  one is older than the window;
- **dialogs** (with the community's token): conversations by last message (``messages.getConversations``)
  until one's last message is older than the window; each one's history newest first
  (``messages.getHistory``) until a message is older than the window.

Every comment and message dated in ``[since, until)`` comes back as the Callback API body VK would have
sent (agents/ingest/vk_api_bodies.py). Each post and topic whose comments were read whole, in one
answer per list (no second page, no error), also gives a listing of the comment ids VK returned
(agents/ingest/vk_listing.py): the response engine closes our open items missing from it as deleted
(docs/responses.md, "A comment the API no longer returns"). A post VK says has no comments gives an
empty one. First pages of many posts, topics or dialogs go through
:meth:`VkApiClient.batch`, so a token that may ``execute`` reads 25 of them per request. A part the
token may not read (error 15, 203, 212) is reported in :attr:`Collected.errors` and the rest is read;
an authorization error (5) stops the collection.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from otklik.agents.ingest.vk_api_bodies import board_post_body, in_window, message_body, wall_reply_body
from otklik.agents.ingest.vk_listing import listing_body
from otklik.streams.edge.vk_api import (
    BoardComment,
    Call,
    Message,
    Page,
    VkAccessError,
    VkApiClient,
    VkApiError,
    VkAuthError,
    VkToken,
    WallComment,
    WallComments,
    history_params,
)

PAGE = 100  # wall.getComments, board.*, wall.get and the media comments give at most 100 a page
DIALOG_PAGE = 200  # messages.* give at most 200
THREAD_ITEMS = 10  # the most replies wall.getComments (and video.getComments) embeds per thread


@dataclass
class Collected:
    """The bodies found (oldest first), the listings of the objects read whole, and what could not be read."""

    bodies: list[dict[str, Any]] = field(default_factory=list)
    errors: list[VkApiError] = field(default_factory=list)
    listings: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class WindowReader:
    client: VkApiClient
    service: VkToken  # walls and boards (VK wants a user or service token there)
    community: VkToken | None = None  # dialogs; without it, no dialogs are read
    post_lookback: int = 7 * 86400  # seconds: posts this much older than the window are still read
    # Seconds before the read began that a listing stops at: a comment written just before a read may
    # not be in VK's answer yet, and VK's clock and ours may differ a little.
    listing_lag_s: int = 60
    clock: Callable[[], float] = time.time

    async def collect(self, group_id: int, since: int, until: int) -> Collected:
        out = Collected()
        # Listings cover the comments created up to here; their deletions may have gone unseen from `since`.
        self._listed_until = min(until - 1, int(self.clock()) - self.listing_lag_s)
        for part in self._parts():  # one the token may not read is an error of the window, not its end
            try:
                await part(group_id, since, until, out)
            except VkAuthError:
                raise
            except VkAccessError as exc:
                out.errors.append(exc)
        out.bodies.sort(key=_order)
        return out

    def _parts(self) -> tuple[Callable[[int, int, int, Collected], Awaitable[None]], ...]:
        """What a window's read reads, in turn: each part adds its bodies to the ``Collected`` given."""
        return (self._wall, self._board, self._dialogs)

    def _keep(self, result: Any, out: Collected) -> bool:
        """True for an answer; an error of one call is kept (access) or raised (anything else)."""
        if isinstance(result, VkAccessError):
            out.errors.append(result)
            return False
        if isinstance(result, VkApiError):
            raise result
        return True

    # -- wall -----------------------------------------------------------------------------------------

    async def _wall(self, group_id: int, since: int, until: int, out: Collected) -> None:
        oldest = since - self.post_lookback
        posts = []
        offset = 0
        while True:
            page = await self.client.wall_get(self.service, group_id, offset=offset, count=PAGE)
            for post in page.items:
                if post.date is not None and oldest <= post.date < until and post.comments:
                    if post.comments.count:
                        posts.append(post.id)
                    else:  # VK says it has no comments: any we hold open were deleted
                        self._listing(group_id, "wall", post.id, since, [], out)
            offset += len(page.items)
            # Newest first: stop at the first page that reaches past the lookback (a pinned post can
            # be old at the top, so the page's last post decides).
            if not page.items or offset >= page.count or (page.items[-1].date or 0) < oldest:
                break
        firsts = await self.client.batch(
            [Call("wall.getComments", _comments_params(group_id, post, 0)) for post in posts],
            self.service,
            group_id,
        )
        for post_id, first in zip(posts, firsts, strict=True):
            if not self._keep(first, out):
                continue
            top_level = first.current_level_count if first.current_level_count is not None else first.count
            whole = len(first.items) >= top_level  # every comment in this one answer
            ids = []
            for comment in await self._all_comments(group_id, post_id, first):
                self._wall_comment(group_id, post_id, comment, since, until, out)
                if not comment.deleted:
                    ids.append(comment.id)
                thread = comment.thread
                replies = list(thread.items) if thread else []
                if thread and thread.count > len(replies):
                    replies = await self._thread(group_id, post_id, comment.id)
                    whole = whole and len(replies) <= PAGE  # the thread's replies in one answer
                for reply in replies:
                    self._wall_comment(group_id, post_id, reply, since, until, out)
                    if not reply.deleted:
                        ids.append(reply.id)
            if whole:
                self._listing(group_id, "wall", post_id, since, ids, out)

    async def _all_comments(self, group_id: int, post_id: int, first: WallComments) -> list[WallComment]:
        comments = list(first.items)
        while first.items and len(comments) < first.count:
            page = await self.client.call(
                "wall.getComments", self.service, _comments_params(group_id, post_id, len(comments)), group=group_id
            )
            if not page.items:
                break
            comments += page.items
        return comments

    async def _thread(self, group_id: int, post_id: int, comment_id: int) -> list[WallComment]:
        replies: list[WallComment] = []
        while True:
            page = await self.client.wall_get_comments(
                self.service, group_id, post_id, comment_id=comment_id, offset=len(replies), count=PAGE
            )
            replies += page.items
            if not page.items or len(replies) >= page.count:
                return replies

    def _listing(self, group_id: int, kind: str, object_id: int, since: int, ids: list[int], out: Collected) -> None:
        """The listing of an object read whole: all its comments up to the listing's end, deletions
        unseen from ``since`` (the window's start)."""
        until = self._listed_until
        if until >= 0:
            out.listings.append(listing_body(group_id, kind, object_id, 0, until, min(since, until), ids))

    @staticmethod
    def _wall_comment(
        group_id: int, post_id: int, comment: WallComment, since: int, until: int, out: Collected
    ) -> None:
        if in_window(comment.date, since, until) and not comment.deleted:
            out.bodies.append(wall_reply_body(group_id, post_id, comment.model_dump(exclude_none=True)))

    # -- board ----------------------------------------------------------------------------------------

    async def _board(self, group_id: int, since: int, until: int, out: Collected) -> None:
        topics = []
        offset = 0
        while True:
            page = await self.client.board_get_topics(self.service, group_id, offset=offset, count=PAGE, order=1)
            recent = [t for t in page.items if (t.updated or 0) >= since]
            topics += [t.id for t in recent if t.comments]
            offset += len(page.items)
            if not page.items or offset >= page.count or len(recent) < len(page.items):
                break
        firsts = await self.client.batch(
            [Call("board.getComments", _board_params(group_id, topic, 0)) for topic in topics], self.service, group_id
        )
        for topic_id, first in zip(topics, firsts, strict=True):
            if not self._keep(first, out):
                continue
            page: Page[BoardComment] = first
            if len(first.items) >= first.count:  # every comment of the topic in this one answer
                self._listing(group_id, "board", topic_id, since, [c.id for c in first.items], out)
            read = 0
            while True:
                for comment in page.items:
                    if in_window(comment.date, since, until):
                        out.bodies.append(board_post_body(group_id, topic_id, comment.model_dump(exclude_none=True)))
                read += len(page.items)
                if not page.items or read >= page.count or page.items[-1].date < since:
                    break
                page = await self.client.call(
                    "board.getComments", self.service, _board_params(group_id, topic_id, read), group=group_id
                )

    # -- dialogs --------------------------------------------------------------------------------------

    async def _dialogs(self, group_id: int, since: int, until: int, out: Collected) -> None:
        if self.community is None:
            return
        peers = []
        offset = 0
        while True:
            page = await self.client.messages_get_conversations(
                self.community, group_id, offset=offset, count=DIALOG_PAGE
            )
            recent = [c for c in page.items if c.last_message is not None and c.last_message.date >= since]
            peers += [c.conversation.peer.id for c in recent if c.conversation.peer.type == "user"]
            offset += len(page.items)
            if not page.items or offset >= page.count or len(recent) < len(page.items):
                break
        firsts = await self.client.batch(
            [Call("messages.getHistory", history_params(group_id, peer, count=DIALOG_PAGE)) for peer in peers],
            self.community,
            group_id,
        )
        for peer, first in zip(peers, firsts, strict=True):
            if not self._keep(first, out):
                continue
            page: Page[Message] = first
            read = 0
            while True:
                for message in page.items:
                    if in_window(message.date, since, until):
                        out.bodies.append(message_body(group_id, message.model_dump(exclude_none=True)))
                read += len(page.items)
                if not page.items or read >= page.count or page.items[-1].date < since:
                    break
                page = await self.client.messages_get_history(
                    self.community, group_id, peer, offset=read, count=DIALOG_PAGE
                )


def _comments_params(group_id: int, post_id: int, offset: int) -> dict[str, Any]:
    return {
        "owner_id": -group_id,
        "post_id": post_id,
        "offset": offset,
        "count": PAGE,
        "thread_items_count": THREAD_ITEMS,
        "sort": "asc",
    }


def _board_params(group_id: int, topic_id: int, offset: int) -> dict[str, Any]:
    return {"group_id": group_id, "topic_id": topic_id, "offset": offset, "count": PAGE, "sort": "desc"}


def _order(body: dict[str, Any]) -> tuple[int, str]:
    obj = body["object"]
    date = obj["message"]["date"] if "message" in obj else obj["date"]
    return date, body["event_id"]


__all__: Sequence[str] = ("Collected", "WindowReader")
