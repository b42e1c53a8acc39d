"""VK Callback API bodies → :class:`Interaction` records (pure, no I/O).

Identifiers follow docs/data-flow.md, "Identifiers". The parser is lenient about fields otklik does not use
and strict about those it does: a missing or ill-typed field we rely on raises :class:`NormalizeError`
whose reason names the event type and the field, e.g. ``wall_reply_new: object.date: missing``.

Speed matters (replay targets 100k events/s end to end), so this is plain dict access and ``type(x)
is int`` checks; no pydantic on this path. JSON decoders (orjson, json) give exact ``int``/``str``
types, and ``type(True) is int`` is false, so booleans are rejected where integers are required.
"""

from __future__ import annotations

import sys
from typing import Any, Final

from otklik.schemas.managers import ManagerChange
from otklik.schemas.records import INTERACTION_FIELDS, Interaction

# VK peer ids of group chats start here; messages in chats are not direct messages to the community.
CHAT_PEER_BASE: Final = 2_000_000_000


class NormalizeError(ValueError):
    """A body otklik cannot turn into interactions; ``reason`` names the event type and the field."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# event type -> (object kind, name of the field holding the commented object's id, action)
_COMMENT_EVENTS: Final[dict[str, tuple[str, str, str]]] = {}
for _kind, _field, _prefix in (
    ("wall", "post_id", "wall_reply"),
    ("photo", "photo_id", "photo_comment"),
    ("video", "video_id", "video_comment"),
    ("market", "item_id", "market_comment"),
):
    for _action in ("new", "edit", "restore", "delete"):
        _COMMENT_EVENTS[f"{_prefix}_{_action}"] = (_kind, _field, _action)
for _action in ("new", "edit", "restore", "delete"):
    _COMMENT_EVENTS[f"board_post_{_action}"] = ("board", "topic_id", _action)

_MESSAGE_EVENTS: Final = {"message_new": "new", "message_reply": "new", "message_edit": "edit"}


def require_int(obj: dict[str, Any], name: str, where: str) -> int:
    """``obj[name]`` as an integer; NormalizeError names ``where.name`` and what is wrong."""
    value = obj.get(name)
    if type(value) is not int:
        if value is None:
            raise NormalizeError(f"{where}.{name}: missing")
        if type(value) is float and value.is_integer() and abs(value) >= 2**63:
            # JSON's integers beyond 64 bits reach us as floats (docs/data-flow.md, "Bounded input").
            raise NormalizeError(f"{where}.{name}: expected an integer within 64 bits, got {value!r}")
        raise NormalizeError(f"{where}.{name}: expected an integer, got {type(value).__name__}")
    return value


def author_id(vk_id: int) -> str:
    """A VK owner id as an otklik author: persons ``vk:user:<id>``, communities ``vk:<id>`` (positive)."""
    return f"vk:user:{vk_id}" if vk_id > 0 else f"vk:{-vk_id}"


def _decimal(number: int) -> str:
    """An id already checked to be an int, as text: typed, so that compiled it is formatted directly
    (an f-string of a JSON value of unknown type goes through a generic str() call)."""
    return str(number)


# Every event names its page: one interned string per page, kept in a bounded cache, costs a lookup
# instead of formatting, and the engine then hashes and compares the same object. The key is checked
# to be an ``int`` first (True == 1 and 1.0 == 1 as dict keys). (Authors are mostly new: no cache.)
_PAGES_KEPT = 100_000
_PAGE_IDS: Final[dict[int, str]] = {}


def _page_id(group_id: int) -> str:
    """``vk:<group_id>``, one interned string per page."""
    page = _PAGE_IDS.get(group_id)
    if page is None:
        if len(_PAGE_IDS) >= _PAGES_KEPT:
            _PAGE_IDS.clear()
        page = _PAGE_IDS[group_id] = sys.intern(f"vk:{group_id}")
    return page


def _int(obj: dict[str, Any], name: str, event: str, where: str = "object") -> int:
    return require_int(obj, name, f"{event}: {where}")


def _opt_int(obj: dict[str, Any], name: str, event: str, where: str = "object") -> int | None:
    value = obj.get(name)
    if value is None or type(value) is int:
        return value
    raise NormalizeError(f"{event}: {where}.{name}: expected an integer, got {type(value).__name__}")


def _text(obj: dict[str, Any], event: str, where: str = "object") -> str:
    value = obj.get("text", "")
    if type(value) is not str:
        raise NormalizeError(f"{event}: {where}.text: expected a string, got {type(value).__name__}")
    return value


def normalize_vk(body: Any, received_at: int | float) -> list[Interaction]:  # JSON, checked here
    """One VK callback body as interaction records; ``[]`` for events otklik does not measure.

    ``received_at`` is when otklik received the body (unix seconds): deletions and restorations carry
    no time of their own and take effect then.
    """
    if type(body) is not dict:
        raise NormalizeError(f"body: expected a JSON object, got {type(body).__name__}")
    event = body.get("type")
    if type(event) is not str:
        raise NormalizeError("body.type: missing" if event is None else "body.type: expected a string")
    comment = _COMMENT_EVENTS.get(event)
    message_action = _MESSAGE_EVENTS.get(event) if comment is None else None
    if comment is None and message_action is None:
        return []  # confirmation, likes, wall_post_new, group_join ...: nothing to measure

    group_id = body.get("group_id")
    if type(group_id) is not int or group_id <= 0:
        if group_id is None:
            raise NormalizeError(f"{event}: group_id: missing")
        raise NormalizeError(f"{event}: group_id: expected a positive integer, got {group_id!r}")
    event_id = body.get("event_id")
    if event_id is not None and type(event_id) is not str:
        raise NormalizeError(f"{event}: event_id: expected a string, got {type(event_id).__name__}")
    obj = body.get("object")
    if type(obj) is not dict:
        raise NormalizeError(f"{event}: object: missing" if obj is None else f"{event}: object: expected a JSON object")
    if type(received_at) is not int:
        received_at = int(received_at)

    page = _page_id(group_id)
    if comment is not None:
        return [_comment(event, comment, obj, page, event_id, received_at)]
    return _message(event, message_action, obj, page, group_id, event_id, received_at)  # type: ignore[arg-type]


# Records are built positionally (about twice as fast as keywords on the replay path); this guard
# fails at import, not silently, should the field order of Interaction ever change.
_FIELDS = (
    "platform",
    "page",
    "action",
    "object_kind",
    "object_id",
    "item",
    "seq",
    "received_at",
    "event_id",
    "created_at",
    "author",
    "thread_root",
    "reply_to_item",
    "reply_to_author",
    "deleted_by",
    "admin_author",
    "text",
    "attachments",
)
if INTERACTION_FIELDS != _FIELDS:  # pragma: no cover
    raise ImportError("otklik.agents.ingest.vk: Interaction's fields changed; update the positional calls")


def _comment(
    event: str, spec: tuple[str, str, str], obj: dict[str, Any], page: str, event_id: str | None, received_at: int
) -> Interaction:
    kind, object_field, action = spec
    comment_id: Any = obj.get("id")  # JSON: checked below, then an int
    if type(comment_id) is not int or comment_id <= 0:
        if type(_int(obj, "id", event)) is int:
            raise NormalizeError(f"{event}: object.id: expected a positive integer, got {comment_id}")
    on: Any = obj.get(object_field)
    if type(on) is not int:
        _int(obj, object_field, event)
    object_id = f"{page}:{kind}:{_decimal(on)}"
    item = f"{object_id}:{_decimal(comment_id)}"

    if action == "delete":
        # VK's schema knows only user_id for some deletions, its docs deleter_id: take deleter_id, else user_id.
        deleter = _opt_int(obj, "deleter_id", event)
        if deleter is None:
            deleter = _opt_int(obj, "user_id", event)
        if deleter is None and kind != "board":
            # board_post_delete may name nobody (VK's schema marks deleter_id optional there).
            raise NormalizeError(f"{event}: object.deleter_id: missing (and no object.user_id)")
        deleted_by = author_id(deleter) if deleter else None
        return Interaction(
            "vk",
            page,
            "delete",
            kind,  # type: ignore[arg-type]
            object_id,
            item,
            comment_id,
            received_at,
            event_id,  # type: ignore[arg-type]
            None,
            None,
            None,
            None,
            None,
            deleted_by,
            None,
            "",
        )

    from_id: Any = obj.get("from_id")  # JSON: checked below, then an int
    if type(from_id) is not int or from_id == 0:
        if type(_int(obj, "from_id", event)) is int:
            raise NormalizeError(f"{event}: object.from_id: 0 is no author")
    date = obj.get("date")
    if type(date) is not int or date < 0:
        if type(_int(obj, "date", event)) is int:
            raise NormalizeError(f"{event}: object.date: negative")
    text = obj.get("text", "")
    if type(text) is not str:
        text = _text(obj, event)
    attachments = obj.get("attachments")
    attached = len(attachments) if type(attachments) is list else 0

    thread_root: str | None = None
    reply_to_item: str | None = None
    reply_to_author: str | None = None
    if kind != "board":  # board topics have no threads
        parents = obj.get("parents_stack")
        if parents:
            if type(parents) is not list or type(parents[0]) is not int:
                raise NormalizeError(f"{event}: object.parents_stack: expected a list of integers")
            thread_root = f"{object_id}:{_decimal(parents[0])}"
        elif parents is not None and type(parents) is not list:
            raise NormalizeError(f"{event}: object.parents_stack: expected a list of integers")
        else:
            thread_root = item
        to_comment = obj.get("reply_to_comment")
        if to_comment:
            if type(to_comment) is not int:
                _opt_int(obj, "reply_to_comment", event)
            reply_to_item = f"{object_id}:{_decimal(to_comment)}"
        to_user = obj.get("reply_to_user")
        if to_user:
            if type(to_user) is not int:
                _opt_int(obj, "reply_to_user", event)
            reply_to_author = author_id(to_user)
    author = author_id(from_id)
    # A restore or edit carries the item's original time (edits change no times).
    return Interaction(
        "vk",
        page,
        action,  # type: ignore[arg-type]
        kind,  # type: ignore[arg-type]
        object_id,
        item,
        comment_id,
        received_at,
        event_id,  # type: ignore[arg-type]
        date,
        author,
        thread_root,
        reply_to_item,
        reply_to_author,
        None,
        None,
        text,
        attached,
    )


def _message(
    event: str,
    action: str,
    obj: dict[str, Any],
    page: str,
    group_id: int,
    event_id: str | None,
    received_at: int,
) -> list[Interaction]:
    where = "object"
    if event == "message_new":
        inner = obj.get("message")
        if inner is not None:  # API >= 5.103: {message, client_info}; older versions send the message flat
            if type(inner) is not dict:
                raise NormalizeError(f"{event}: object.message: expected a JSON object")
            obj, where = inner, "object.message"
    # Each field is read once; _int is called only to raise its error (as in _comment).
    peer_id: Any = obj.get("peer_id")  # JSON values: each checked below, then an int
    if type(peer_id) is not int:
        _int(obj, "peer_id", event, where)
    if peer_id >= CHAT_PEER_BASE:
        return []  # a group chat, not a direct message to the community
    if peer_id <= 0:
        raise NormalizeError(f"{event}: {where}.peer_id: expected a positive integer, got {peer_id}")
    cmid: Any = obj.get("conversation_message_id")
    if type(cmid) is not int:
        _int(obj, "conversation_message_id", event, where)
    if cmid <= 0:
        raise NormalizeError(f"{event}: {where}.conversation_message_id: expected a positive integer, got {cmid}")
    date: Any = obj.get("date")
    if type(date) is not int:
        _int(obj, "date", event, where)
    if date < 0:
        raise NormalizeError(f"{event}: {where}.date: negative")
    text = obj.get("text", "")
    if type(text) is not str:
        text = _text(obj, event, where)
    attachments = obj.get("attachments")
    attached = len(attachments) if type(attachments) is list else 0

    admin_author: str | None = None
    if event == "message_new":
        from_id: Any = obj.get("from_id")
        if type(from_id) is not int:
            _int(obj, "from_id", event, where)
        if from_id == 0:
            raise NormalizeError(f"{event}: {where}.from_id: 0 is no author")
        author = author_id(from_id)
    else:
        # message_reply / message_edit: the community's own outgoing message.
        author = page
        admin = _opt_int(obj, "admin_author_id", event, where)
        if admin is not None and admin > 0:
            admin_author = author_id(admin)
    object_id = f"{page}:dm:{_decimal(peer_id)}"
    return [
        Interaction(
            "vk",
            page,
            action,  # type: ignore[arg-type]
            "dm",
            object_id,
            f"{object_id}:{_decimal(cmid)}",
            cmid,
            received_at,
            event_id,  # type: ignore[arg-type]
            date,
            author,
            None,
            None,
            None,
            None,
            admin_author,
            text,
            attached,
        )
    ]


def officers_edit(body: Any, received_at: int | float) -> ManagerChange | None:
    """A ``group_officers_edit`` callback as the change of a page's managers it says, else None (any
    other body, or a level changed between two manager roles: the person stays a manager).

    VK gives the event no time of its own: the role changes when otklik received it. Its items and
    replies are :func:`normalize_vk`'s; this event yields no interaction (docs/responses.md, "Page replies").
    """
    if type(body) is not dict or body.get("type") != "group_officers_edit":
        return None
    event = "group_officers_edit"
    group_id = body.get("group_id")
    if type(group_id) is not int or group_id <= 0:
        raise NormalizeError(f"{event}: group_id: expected a positive integer, got {group_id!r}")
    obj = body.get("object")
    if type(obj) is not dict:
        raise NormalizeError(f"{event}: object: missing" if obj is None else f"{event}: object: expected a JSON object")
    user = _int(obj, "user_id", event)
    old = _int(obj, "level_old", event)
    new = _int(obj, "level_new", event)
    for name, level in (("level_old", old), ("level_new", new)):
        if level not in (0, 1, 2, 3):
            raise NormalizeError(f"{event}: object.{name}: expected 0 to 3, got {level}")
    if user <= 0:
        raise NormalizeError(f"{event}: object.user_id: expected a person's id, got {user}")
    if (old > 0) == (new > 0):
        return None
    event_id = body.get("event_id")
    if event_id is not None and type(event_id) is not str:
        raise NormalizeError(f"{event}: event_id: expected a string, got {type(event_id).__name__}")
    return ManagerChange(_page_id(group_id), author_id(user), new > 0, int(received_at), "callback", new, event_id)
