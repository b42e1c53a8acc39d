"""MAX bot API updates → :class:`Interaction` records (pure, no I/O).

Update shapes follow MAX's bot API (``platform-api.max.ru``; the ``Update`` family of its official Go
client's schemes): ``{"update_type": ..., "timestamp": <unix ms>, ...}``;
``message_created`` / ``message_edited`` carry ``message = {sender, recipient: {chat_id, chat_type,
user_id}, timestamp (ms), link: {type: reply|forward, sender, chat_id, message: {mid, seq, text}},
body: {mid, seq, text}}``; ``message_removed`` carries ``{message_id, chat_id, user_id}``.
``sender`` is absent or null when a message is posted on behalf of a channel.

Identifiers (docs/data-flow.md, "Identifiers", with the ``max:`` prefix):

* a group chat or channel is the page ``max:<chat_id>`` (MAX's chat id as given, sign included);
  its messages are ``max:<chat_id>:chat:<chat_id>:<mid>`` (object kind ``wall``: a comment section);
* a citizen's dialog with the page's bot belongs to the page ``max:<bot user id>``; its messages are
  ``max:<bot>:dm:<citizen user id>:<mid>`` (object kind ``dm``). Messages from the bot are the page's
  (sent by a program: they answer only when the registry says ``bot_replies_count: true``);
* authors ``max:user:<id>`` for people, ``max:bot:<id>`` for other bots (never items).

Items use ``mid`` (unique) so that ``message_removed`` (which names only ``message_id`` = mid) finds
them; ``seq`` orders messages within one second. A reply (``link.type == "reply"``) answers the
message it links (thread root = the linked message: MAX names only the immediate parent).

Unconfirmed against MAX's documentation: that ``recipient.user_id`` of a citizen's dialog message is
the bot's id (seen in captured payloads); whether bots receive comments on channel posts at all; and
``message_removed`` in a dialog, which names no dialog partner, so it cannot be mapped and is ignored
by the response engine (it refers to no known item).
"""

from __future__ import annotations

from typing import Any

from otklik.agents.ingest.vk import NormalizeError, require_int
from otklik.schemas.records import Interaction

MEASURED = ("message_created", "message_edited", "message_removed")


def _int(obj: dict[str, Any], name: str, where: str) -> int:
    return require_int(obj, name, f"max {where}")


def _str(obj: dict[str, Any], name: str, where: str) -> str:
    value = obj.get(name)
    if type(value) is not str or not value:
        if value is None:
            raise NormalizeError(f"max {where}.{name}: missing")
        raise NormalizeError(f"max {where}.{name}: expected a non-empty string")
    return value


def _dict(obj: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    value = obj.get(name)
    if type(value) is not dict:
        raise NormalizeError(f"max {where}.{name}: {'missing' if value is None else 'expected a JSON object'}")
    return value


def _person(user: Any, where: str) -> str:
    if type(user) is not dict:
        raise NormalizeError(f"max {where}: expected a JSON object")
    uid = _int(user, "user_id", where)
    return f"max:bot:{uid}" if user.get("is_bot") is True else f"max:user:{uid}"


def page_of_update(update: Any) -> str | None:
    """The page an update belongs to (the gateway's Kafka key), or None when it names none."""
    if type(update) is not dict:
        return None
    try:
        kind = update.get("update_type")
        if kind == "message_removed":
            return f"max:{_int(update, 'chat_id', 'update')}"
        message = update.get("message")
        if type(message) is dict:
            return _where(message, "update.message")[0]
        if type(update.get("chat_id")) is int:
            return f"max:{update['chat_id']}"
    except NormalizeError:
        return None
    return None


def _where(message: dict[str, Any], where: str) -> tuple[str, str, str, str | None]:
    """(page, object kind, object id, author or None for "the page") of a message."""
    recipient = _dict(message, "recipient", where)
    chat_type = recipient.get("chat_type")
    sender = message.get("sender")
    if chat_type == "dialog":
        if sender is None:
            raise NormalizeError(f"max {where}.sender: missing in a dialog")
        author = _person(sender, where + ".sender")
        if author.startswith("max:bot:"):
            page = f"max:{author[len('max:bot:') :]}"
            peer = _int(recipient, "user_id", where + ".recipient")
            return page, "dm", f"{page}:dm:{peer}", None
        bot = _int(recipient, "user_id", where + ".recipient")
        page = f"max:{bot}"
        return page, "dm", f"{page}:dm:{author[len('max:user:') :]}", author
    if chat_type in ("chat", "channel"):
        chat_id = _int(recipient, "chat_id", where + ".recipient")
        page = f"max:{chat_id}"
        author = None if sender is None else _person(sender, where + ".sender")
        return page, "wall", f"{page}:chat:{chat_id}", author
    raise NormalizeError(f"max {where}.recipient.chat_type: {str(chat_type)[:20]!r} is not dialog, chat or channel")


def normalize_max(update: dict[str, Any], received_at: int) -> list[Interaction]:
    """One MAX update as interaction records; ``[]`` for updates otklik does not measure."""
    if type(update) is not dict:
        raise NormalizeError(f"max update: expected a JSON object, got {type(update).__name__}")
    kind = update.get("update_type")
    if type(kind) is not str:
        raise NormalizeError(
            "max update.update_type: missing" if kind is None else "max update.update_type: expected a string"
        )
    if kind not in MEASURED:
        return []  # bot_started, callbacks, members joining ...
    stamp = _int(update, "timestamp", "update")
    received_at = int(received_at)

    if kind == "message_removed":
        mid = _str(update, "message_id", "update")
        chat_id = _int(update, "chat_id", "update")
        page = f"max:{chat_id}"
        object_id = f"{page}:chat:{chat_id}"
        remover = update.get("user_id")
        deleted_by = f"max:user:{remover}" if type(remover) is int else None
        return [
            Interaction(
                platform="max",
                page=page,
                action="delete",
                object_kind="wall",
                object_id=object_id,
                item=f"{object_id}:{mid}",
                seq=0,
                received_at=received_at,
                event_id=f"{kind}:{mid}:{stamp}",
                deleted_by=deleted_by,
            )
        ]

    where = "update.message"
    message = _dict(update, "message", "update")
    page, object_kind, object_id, author = _where(message, where)
    body = _dict(message, "body", where)
    mid = _str(body, "mid", where + ".body")
    seq = _int(body, "seq", where + ".body")
    created_ms = _int(message, "timestamp", where)
    if created_ms < 0:
        raise NormalizeError(f"max {where}.timestamp: negative")
    text = body.get("text") or ""
    if type(text) is not str:
        raise NormalizeError(f"max {where}.body.text: expected a string, got {type(text).__name__}")
    item = f"{object_id}:{mid}"
    thread_root = item
    reply_to_item = reply_to_author = None
    link = message.get("link")
    if type(link) is dict and link.get("type") == "reply":
        linked = _dict(link, "message", where + ".link")
        reply_to_item = f"{object_id}:{_str(linked, 'mid', where + '.link.message')}"
        thread_root = reply_to_item  # MAX names only the immediate parent
        linked_sender = link.get("sender")
        reply_to_author = page if linked_sender is None else _person(linked_sender, where + ".link.sender")
    return [
        Interaction(
            platform="max",
            page=page,
            action="new" if kind == "message_created" else "edit",
            object_kind=object_kind,
            object_id=object_id,
            item=item,
            seq=seq,
            received_at=received_at,  # type: ignore[arg-type]
            event_id=f"{kind}:{mid}:{stamp}",
            created_at=created_ms // 1000,
            author=author or page,
            thread_root=None if object_kind == "dm" else thread_root,
            reply_to_item=reply_to_item,
            reply_to_author=reply_to_author,
            text=text,
        )
    ]
