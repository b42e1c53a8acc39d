"""Photo, video and market comments of one VK community in a time window, read with the VK API where the
token allows (catch-up after a gap; docs/data-flow.md, "Gaps and catch-up").

VK's methods.json accepts only a user token for ``photos.getAllComments``, ``video.get``,
``video.getComments``, ``market.get`` and ``market.getComments``: neither the app's service token nor a
community's token may read them. With ``OTKLIK_VK_USER_TOKEN`` (a user who may see the community's
photos, videos and market) :class:`MediaWindowReader` reads them beside what :class:`WindowReader`
reads; without one it says once why they are not read and reads the rest.

- **photos**: ``photos.getAllComments`` over the community's photos, newest first (as VK answers it),
  until a page reaches before the window, at most ``photo_pages`` pages;
- **videos**: ``video.get`` newest first back to ``lookback_s`` before the window, then each commented
  video's comments with up to 10 replies a thread (``video.getComments``, ``thread_items_count=10``),
  and a longer thread's replies by ``comment_id``;
- **market**: the first ``market_items`` items of ``market.get`` and each one's comments
  (``market.getComments``; VK says nothing of an item's comment count, so each is asked).

Each comment dated in ``[since, until)`` comes back as the Callback API body VK would have sent
(agents/ingest/vk_api_media.py). A part the token may not read (error 15, 203, 212) is reported in
:attr:`Collected.errors` and the rest is read.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from otklik.agents.ingest.vk_api_bodies import in_window
from otklik.agents.ingest.vk_api_media import MediaKind, media_comment_body, photo_of
from otklik.streams.edge.vk_api import Call, MediaObject, Page, VkToken, WallComment, WallComments
from otklik.streams.edge.vk_collect import PAGE, THREAD_ITEMS, Collected, WindowReader

log = logging.getLogger("otklik.catchup")

LIST_PAGE = 200  # video.get and market.get give at most 200 a page
_told_no_user = False  # the reason is logged once a process


@dataclass
class MediaWindowReader(WindowReader):
    """:class:`WindowReader` with photo, video and market comments read by ``user`` (when given)."""

    user: VkToken | None = None
    lookback_s: int = 7 * 86400
    photo_pages: int = 10
    market_items: int = 50

    def _parts(self) -> tuple[Callable[[int, int, int, Collected], Awaitable[None]], ...]:
        parts = super()._parts()
        if self.user is not None:
            return (*parts, self._media_photos, self._media_videos, self._media_market)
        global _told_no_user
        if not _told_no_user:
            _told_no_user = True
            log.info(
                "photo, video and market comments are not read: VK gives them to a user token only "
                "(OTKLIK_VK_USER_TOKEN is not set)"
            )
        return parts

    async def _media_get(self, method: str, params: dict[str, Any], group_id: int) -> Any:
        assert self.user is not None
        return await self.client.call(method, self.user, params, group=group_id)

    def _media_keep(
        self, kind: MediaKind, group_id: int, object_id: int, c: WallComment, since: int, until: int, out: Collected
    ) -> None:
        if not c.deleted and in_window(c.date, since, until):
            out.bodies.append(media_comment_body(kind, group_id, object_id, c.model_dump(exclude_none=True)))

    async def _media_photos(self, group_id: int, since: int, until: int, out: Collected) -> None:
        offset = 0
        for _ in range(self.photo_pages):
            page: WallComments = await self._media_get(
                "photos.getAllComments", {"owner_id": -group_id, "offset": offset, "count": PAGE}, group_id
            )
            for c in page.items:
                photo = photo_of(c.model_extra or {})  # pid or photo_id: fields VK adds beyond the model
                if photo is not None:
                    self._media_keep("photo", group_id, photo, c, since, until, out)
            offset += len(page.items)
            if not page.items or offset >= page.count or min(c.date for c in page.items) < since:
                return

    async def _media_objects(
        self, method: str, group_id: int, limit: int | None, oldest: int | None
    ) -> list[MediaObject]:
        objects: list[MediaObject] = []
        offset = 0
        while True:
            page: Page[MediaObject] = await self._media_get(
                method, {"owner_id": -group_id, "offset": offset, "count": LIST_PAGE}, group_id
            )
            objects += page.items
            offset += len(page.items)
            last = page.items[-1] if page.items else None
            added = (last.adding_date or last.date or 0) if last else 0
            if (
                not page.items
                or offset >= page.count
                or (limit is not None and len(objects) >= limit)
                or (oldest is not None and added < oldest)
            ):
                return objects[:limit] if limit is not None else objects

    async def _media_comments_of(
        self, kind: MediaKind, group_id: int, ids: list[int], out: Collected
    ) -> list[tuple[int, list[WallComment]]]:
        """Every comment of each object, threads included (videos); an object the token may not read is
        reported in ``out.errors``."""
        method = "video.getComments" if kind == "video" else "market.getComments"
        key = "video_id" if kind == "video" else "item_id"

        def params(object_id: int, offset: int) -> dict[str, Any]:
            p: dict[str, Any] = {"owner_id": -group_id, key: object_id, "offset": offset, "count": PAGE, "sort": "asc"}
            if kind == "video":
                p["thread_items_count"] = THREAD_ITEMS
            return p

        assert self.user is not None
        firsts = await self.client.batch([Call(method, params(i, 0)) for i in ids], self.user, group_id)
        found = []
        for object_id, first in zip(ids, firsts, strict=True):
            if not self._keep(first, out):
                continue
            page: WallComments = first
            comments = list(page.items)
            while page.items and len(comments) < page.count:
                page = await self._media_get(method, params(object_id, len(comments)), group_id)
                if not page.items:
                    break
                comments += page.items
            every: list[WallComment] = []
            for c in comments:
                every.append(c)
                thread = c.thread
                replies = list(thread.items) if thread else []
                if thread and thread.count > len(replies):
                    replies = await self._media_thread(method, group_id, key, object_id, c.id)
                every += replies
            found.append((object_id, every))
        return found

    async def _media_thread(
        self, method: str, group_id: int, key: str, object_id: int, comment_id: int
    ) -> list[WallComment]:
        replies: list[WallComment] = []
        while True:
            page: WallComments = await self._media_get(
                method,
                {
                    "owner_id": -group_id,
                    key: object_id,
                    "comment_id": comment_id,
                    "offset": len(replies),
                    "count": PAGE,
                },
                group_id,
            )
            replies += page.items
            if not page.items or len(replies) >= page.count:
                return replies

    async def _media_videos(self, group_id: int, since: int, until: int, out: Collected) -> None:
        videos = await self._media_objects("video.get", group_id, None, since - self.lookback_s)
        ids = [v.id for v in videos if v.comments and (v.adding_date or v.date or 0) >= since - self.lookback_s]
        for video_id, comments in await self._media_comments_of("video", group_id, ids, out):
            for c in comments:
                self._media_keep("video", group_id, video_id, c, since, until, out)

    async def _media_market(self, group_id: int, since: int, until: int, out: Collected) -> None:
        items = await self._media_objects("market.get", group_id, self.market_items, None)
        for item_id, comments in await self._media_comments_of("market", group_id, [i.id for i in items], out):
            for c in comments:
                self._media_keep("market", group_id, item_id, c, since, until, out)
