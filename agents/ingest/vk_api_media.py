"""Photo, video and market comments read with the VK API, as the Callback API bodies the normalizer reads
(pure; the reader is streams/edge/vk_collect_media.py).

The API gives them as ``wall_wall_comment`` objects (VK's wall/objects.json): ``photos.getAllComments``
names the photo in ``pid`` (or ``photo_id``), ``video.getComments`` and ``market.getComments`` answer
for one video or item. The bodies are VK's ``photo_comment_new``, ``video_comment_new`` and
``market_comment_new``, whose objects carry the commented object's id in ``photo_id``, ``video_id`` and
``item_id`` and its owner in ``photo_owner_id``, ``video_owner_id`` and ``market_owner_id``; the normalizer
(``normalize_vk`` in vk.py) makes them items ``vk:<group>:photo:<id>:<comment>`` and so on, the same
items the callbacks give. ``event_id`` is ``api:<group>:<kind>:<object>:<comment>``, stable across
catch-ups and never a callback's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

from otklik.agents.ingest.vk_api_bodies import api_body

MediaKind = Literal["photo", "video", "market"]

# kind -> (callback event, the object's id field, its owner field)
MEDIA_EVENTS: Final[Mapping[str, tuple[str, str, str]]] = {
    "photo": ("photo_comment_new", "photo_id", "photo_owner_id"),
    "video": ("video_comment_new", "video_id", "video_owner_id"),
    "market": ("market_comment_new", "item_id", "market_owner_id"),
}


def photo_of(comment: Mapping[str, Any]) -> int | None:
    """The photo a ``photos.getAllComments`` item comments on (``pid``, or ``photo_id``)."""
    for name in ("pid", "photo_id"):
        value = comment.get(name)
        if type(value) is int and value > 0:
            return value
    return None


def media_comment_body(kind: MediaKind, group_id: int, object_id: int, comment: Mapping[str, Any]) -> dict[str, Any]:
    """A comment on the community's photo, video or market item as the callback VK would have sent."""
    event, id_field, owner_field = MEDIA_EVENTS[kind]
    obj = dict(comment)
    obj.pop("thread", None)  # its replies come as bodies of their own
    obj.pop("pid", None)
    obj[id_field] = object_id
    obj[owner_field] = -group_id
    return api_body(event, group_id, f"{kind}:{object_id}:{obj['id']}", obj)
