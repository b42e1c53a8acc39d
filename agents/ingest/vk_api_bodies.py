"""What the VK API returns about a community, as the Callback API bodies the normalizer reads (pure).

Catch-up after a gap (docs/data-flow.md, "The VK API") reads comments and messages with the API and hands them
on as the events VK would have sent, so the normalizer (``normalize_vk`` in vk.py) and everything after
it treat them like late events. The bodies carry ``event_id`` ``api:<group>:<object>:<id>``: stable for
one comment or message (a second catch-up of the same window gives the same ids) and never equal to a
callback's own event id.

Objects are VK's as the API returns them (``wall.getComments`` items, ``board.getComments`` items,
``messages.getHistory`` items: objects.json's ``wall_wall_comment``, ``board_topic_comment``,
``messages_message``), as plain mappings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

API_VERSION = "5.199"


def in_window(date: int, since: int, until: int) -> bool:
    """A time (unix seconds) within the gap ``[since, until)``."""
    return since <= date < until


def wall_reply_body(group_id: int, post_id: int, comment: Mapping[str, Any]) -> dict[str, Any]:
    """A wall comment (or a reply in a thread) as ``wall_reply_new``."""
    obj = dict(comment)
    obj.pop("thread", None)  # its replies come as bodies of their own
    obj["post_id"] = post_id
    obj["owner_id"] = -group_id
    obj["post_owner_id"] = -group_id
    obj.setdefault("parents_stack", [])
    return api_body("wall_reply_new", group_id, f"wall:{post_id}:{obj['id']}", obj)


def board_post_body(group_id: int, topic_id: int, comment: Mapping[str, Any]) -> dict[str, Any]:
    """A board comment as ``board_post_new``."""
    obj = dict(comment)
    obj["topic_id"] = topic_id
    obj["topic_owner_id"] = -group_id
    return api_body("board_post_new", group_id, f"board:{topic_id}:{obj['id']}", obj)


def message_body(group_id: int, message: Mapping[str, Any]) -> dict[str, Any]:
    """A direct message: from the person as ``message_new`` (API ≥ 5.103 shape), from the community
    (``out`` = 1) as ``message_reply``."""
    obj = dict(message)
    key = f"dm:{obj['peer_id']}:{obj['conversation_message_id']}"
    if obj.get("out") == 1:
        return api_body("message_reply", group_id, key, obj)
    return api_body("message_new", group_id, key, {"message": obj, "client_info": {}})


def api_body(event: str, group_id: int, key: str, obj: dict[str, Any]) -> dict[str, Any]:
    """The Callback API body ``event`` of ``obj``, its event id ``api:<group>:<key>``."""
    return {"type": event, "group_id": group_id, "event_id": f"api:{group_id}:{key}", "v": API_VERSION, "object": obj}
