"""Telegram Bot API updates → :class:`Interaction` records (pure, no I/O).

What is measured: comments on a channel's posts. They live in the channel's linked discussion group:
Telegram copies each post there (``is_automatic_forward``), comments are messages in that copy's
thread, and a message sent on behalf of the channel carries ``sender_chat`` = the channel.

Identifiers (docs/data-flow.md, "Identifiers", with the ``tg:`` prefix):

* page ``tg:<channel>`` where ``<channel>`` is the channel's Bot API chat id without its minus sign
  (``-1001234567890`` → ``tg:1001234567890``), as VK pages are positive group ids;
* post ``tg:<channel>:post:<thread>`` where ``<thread>`` is the message id of the post's automatic copy in
  the discussion group (the Bot API's ``message_thread_id``). The channel's own post id is *not* used:
  a reply to a comment does not carry it (the Bot API strips nested ``reply_to_message``), while every
  message of the thread carries ``message_thread_id``; one id for all keeps items and replies on the
  same object;
* comment ``tg:<channel>:post:<thread>:<message_id>`` (message ids of the discussion group);
* authors ``tg:user:<id>`` for people, ``tg:<id>`` (no minus) for chats; the channel itself, and an
  anonymous administrator of the discussion group (``sender_chat`` = the group), write as the page.

Which channel a discussion group belongs to: taken from the update whenever it says so (a comment
replying to the post's copy carries the copy, whose ``sender_chat`` / ``forward_origin`` is the channel);
otherwise from the configured links (``OTKLIK_TG_LINKS="<group id>=<channel id>,..."`` with Bot API ids,
parsed by :func:`parse_links` and passed in by the services), because a reply to a comment names no channel at all. An update that
names none and whose group is not configured is rejected with a reason that says so.

Threads, mapped onto the response rules (docs/responses.md, "Matching rules"): a post's comment
section is one thread (Telegram shows it flat; a reply addresses the author of the message it replies
to). So a page reply to a comment answers that comment and every open comment of the same author under
the post, and no one else's.
A page message that replies to no comment is addressed to nobody and, like a top-level VK page comment,
answers nothing (it gets its own thread root). Known limit: a registered administrator writing as a
person (not as the channel) without replying to a comment is taken as addressed to the whole thread.

Not measured: channel posts themselves, private chats with the bot, general chat in the group outside
post threads, forum topics. Telegram sends no deletion updates to bots, so Telegram items are never
``moderated`` or ``withdrawn``; they are answered, or stay open and breach.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from otklik.agents.ingest.vk import NormalizeError, require_int
from otklik.schemas.records import Interaction

TG_LINKS_ENV = "OTKLIK_TG_LINKS"


def chat_page(chat_id: int) -> str:
    """A Bot API chat id as an otklik id: channels and groups are negative there, positive here."""
    return f"tg:{abs(chat_id)}"


def parse_links(text: str) -> dict[int, int]:
    """``"-100G1=-100C1, -100G2=-100C2"`` (discussion group = channel, Bot API ids) → {group: channel}."""
    links: dict[int, int] = {}
    for part in text.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        group, sep, channel = part.partition("=")
        try:
            if not sep:
                raise ValueError
            links[int(group)] = int(channel)
        except ValueError:
            raise ValueError(f"{part!r} is not '<discussion group id>=<channel id>'") from None
    return links


def _int(obj: dict[str, Any], name: str, where: str) -> int:
    return require_int(obj, name, f"tg {where}")


def _dict(obj: dict[str, Any], name: str, where: str, required: bool = True) -> dict[str, Any] | None:
    value = obj.get(name)
    if value is None and not required:
        return None
    if type(value) is not dict:
        raise NormalizeError(f"tg {where}.{name}: {'missing' if value is None else 'expected a JSON object'}")
    return value


def _channel_of_copy(copy: dict[str, Any]) -> int | None:
    """The channel that an automatic forward (the post's copy in the discussion group) came from."""
    for candidate in (
        copy.get("sender_chat"),
        (copy.get("forward_origin") or {}).get("chat") if type(copy.get("forward_origin")) is dict else None,
        copy.get("forward_from_chat"),
    ):
        if (
            type(candidate) is dict
            and type(candidate.get("id")) is int
            and candidate.get("type", "channel") == "channel"
        ):
            return candidate["id"]
    return None


def _message_of(update: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    for key, action in (("message", "new"), ("edited_message", "edit")):
        if key in update:
            message = update[key]
            if type(message) is not dict:
                raise NormalizeError(f"tg update.{key}: expected a JSON object")
            return action, message
    return None


def _thread_and_channel(message: dict[str, Any], links: Mapping[int, int], where: str) -> tuple[int, int] | None:
    """(thread id, channel chat id) of a comment; None when the message is no comment on a post."""
    chat = _dict(message, "chat", where)
    assert chat is not None
    chat_id = _int(chat, "id", where + ".chat")
    if chat.get("type") not in ("supergroup", "group"):
        return None  # private chats with the bot and channels themselves hold no comments
    if message.get("is_automatic_forward") or message.get("is_topic_message"):
        return None  # the post's own copy; forum topics are not comment threads
    reply = _dict(message, "reply_to_message", where, required=False)
    channel: int | None = None
    if reply is not None and reply.get("is_automatic_forward"):
        thread = _int(reply, "message_id", where + ".reply_to_message")
        channel = _channel_of_copy(reply)
    else:
        thread_id = message.get("message_thread_id")
        if thread_id is None:
            return None  # general talk in the group, outside any post's thread
        if type(thread_id) is not int:
            raise NormalizeError(f"tg {where}.message_thread_id: expected an integer, got {type(thread_id).__name__}")
        thread = thread_id
    if channel is None:
        channel = links.get(chat_id)
    if channel is None:
        raise NormalizeError(
            f"tg {where}.chat.id: discussion group {chat_id} is not linked to a channel in {TG_LINKS_ENV} "
            f"and the update does not name the channel"
        )
    return thread, channel


def page_of_update(update: Any, links: Mapping[int, int] | None = None) -> str | None:
    """The page an update belongs to (the gateway's Kafka key), or None when it names none / is no comment."""
    if type(update) is not dict:
        return None
    try:
        found = _message_of(update)
        if found is None:
            return None
        located = _thread_and_channel(found[1], links if links is not None else {}, "update")
    except NormalizeError:
        return None
    return chat_page(located[1]) if located else None


def _author(msg: dict[str, Any], channel: int, group: int, page: str, where: str) -> str:
    sender_chat = msg.get("sender_chat")
    if sender_chat is not None:
        if type(sender_chat) is not dict:
            raise NormalizeError(f"tg {where}.sender_chat: expected a JSON object")
        sender_id = _int(sender_chat, "id", where + ".sender_chat")
        if sender_id in (channel, group):
            return page  # the channel itself, or an anonymous administrator of its discussion group
        return chat_page(sender_id)  # another channel or group: recorded, never an item
    sender = _dict(msg, "from", where)
    assert sender is not None
    return f"tg:user:{_int(sender, 'id', where + '.from')}"


def normalize_tg(update: dict[str, Any], received_at: int, links: Mapping[int, int] | None = None) -> list[Interaction]:
    """One Telegram update as interaction records; ``[]`` for updates otklik does not measure."""
    if type(update) is not dict:
        raise NormalizeError(f"tg update: expected a JSON object, got {type(update).__name__}")
    update_id = _int(update, "update_id", "update")
    found = _message_of(update)
    if found is None:
        return []  # channel posts, reactions, member changes, callbacks ...
    action, msg = found
    where = "update.message" if action == "new" else "update.edited_message"
    located = _thread_and_channel(msg, links if links is not None else {}, where)
    if located is None:
        return []
    thread, channel = located
    group = msg["chat"]["id"]
    page = chat_page(channel)
    message_id = _int(msg, "message_id", where)
    date = _int(msg, "date", where)
    if date < 0:
        raise NormalizeError(f"tg {where}.date: negative")
    text = msg.get("text", msg.get("caption", ""))
    if type(text) is not str:
        raise NormalizeError(f"tg {where}.text: expected a string, got {type(text).__name__}")
    author = _author(msg, channel, group, page, where)

    object_id = f"{page}:post:{thread}"
    item = f"{object_id}:{message_id}"
    post_thread = f"{object_id}:{thread}"  # the whole comment section is one thread
    reply = msg.get("reply_to_message")
    reply_to_item = reply_to_author = None
    if type(reply) is dict and not reply.get("is_automatic_forward"):
        parent = _int(reply, "message_id", where + ".reply_to_message")
        if parent != thread:
            reply_to_item = f"{object_id}:{parent}"
            reply_to_author = _author(reply, channel, group, page, where + ".reply_to_message")
    if reply_to_item is None and author == page:
        thread_root = item  # the page addressing nobody: its own thread, so it answers nothing
    else:
        thread_root = post_thread
    return [
        Interaction(
            platform="tg",
            page=page,
            action=action,
            object_kind="wall",
            object_id=object_id,
            item=item,  # type: ignore[arg-type]
            seq=message_id,
            received_at=int(received_at),
            event_id=f"tg:{update_id}",
            created_at=date,
            author=author,
            thread_root=thread_root,
            reply_to_item=reply_to_item,
            reply_to_author=reply_to_author,
            text=text,
        )
    ]
