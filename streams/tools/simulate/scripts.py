"""What happens around one citizen's initiative, planned at once, and the bodies VK's Callback API sends for it."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime
from itertools import accumulate
from typing import Any

from otklik.streams.tools.simulate.world import (
    _BOT_REPLIES,
    _CITIZEN_TALK,
    _COMMUNITY_COMMENTS,
    _COMPLAINTS,
    _EDIT_SUFFIXES,
    _FOLLOW_UPS,
    _OFFENSIVE,
    _PAGE_REPLIES,
    _PAGE_THANKS_REPLIES,
    _QUESTIONS,
    _REACTIONS,
    _SPAM,
    _THANKS,
    CITIZEN_ID_BASE,
    FOREIGN_COMMUNITY_BASE,
    WORKDAY_SECONDS,
    _Page,
    _text,
    _zone,
    add_working_seconds,
)

# ---------------------------------------------------------------------------------------------
# Scripts: what happens around one citizen's initiative, planned at once.


@dataclass(slots=True, eq=False)
class _Node:
    """One comment or message. ``id`` and ``date`` are given when it is created (popped)."""

    kind: str  # wall, photo, video, market, board, dm
    page: _Page
    obj: int  # post / photo / video / market item / topic id; the peer for a direct message
    author: int  # VK from_id
    text: str
    root: _Node | None = None  # thread root (None: top level)
    reply_to: _Node | None = None  # reply_to_comment
    reply_to_user: int | None = None
    admin_author: int | None = None  # direct messages from the community written by a person
    id: int = 0
    conversation_id: int = 0
    date: int = 0


# A happening: (time, op, node, extra). op: "new", "edit" (extra = new text), "delete" (extra =
# deleter id), "restore".
_Happening = tuple[float, str, _Node, Any]

_OBJECT_KINDS = ("wall", "photo", "video", "market", "board")
_OBJECT_WEIGHTS = list(accumulate((0.79, 0.08, 0.05, 0.03, 0.05)))
_THREADED = frozenset(("wall", "photo", "video"))
_DM_SHARE = 0.2  # share of initiatives that are direct messages

# Citizens write mostly in the day and the evening, by the page's local time (relative activity
# by hour, 0 to 23). Initiatives are thinned by it, so nights are quiet and mornings start a queue.
_HOURLY_ACTIVITY = (
    0.25,
    0.12,
    0.07,
    0.05,
    0.05,
    0.1,
    0.3,
    0.6,
    0.9,
    1.2,
    1.35,
    1.4,
    1.4,
    1.4,
    1.4,
    1.4,
    1.45,
    1.5,
    1.6,
    1.7,
    1.7,
    1.5,
    1.1,
    0.6,
)
_PEAK_ACTIVITY = max(_HOURLY_ACTIVITY)


def _activity(page: _Page, t: float) -> float:
    """The chance that a candidate initiative at ``t`` happens: the local hour's share of the peak."""
    return _HOURLY_ACTIVITY[datetime.fromtimestamp(t, _zone(page.timezone)).hour] / _PEAK_ACTIVITY


def _minutes(rng: random.Random, median: float, sigma: float = 0.8) -> float:
    """A log-normal duration in seconds with the given median in minutes."""
    return rng.lognormvariate(math.log(median * 60.0), sigma)


def _reply_time(rng: random.Random, page: _Page, t: float) -> float:
    """When the page answers something written at ``t``: minutes at any hour (a diligent admin on
    the phone), or else a log-normal working-time delay (median 3 working hours times the page's
    slowness, a long tail, capped at 15 working days). As measured (the first reply that answers an
    item, quick ones included): a median of about 2 working hours."""
    if rng.random() < page.quick_p:
        return t + 30.0 + _minutes(rng, 6.0, 0.9)
    work = min(rng.lognormvariate(math.log(3.0 * 3600 * page.slowness), 1.1), 15 * WORKDAY_SECONDS)
    return add_working_seconds(t, work, page.timezone)


def _deleter(rng: random.Random, page: _Page) -> int:
    """Who deletes on the page's behalf: an administrator, or the community itself."""
    return rng.choice(page.admins) if rng.random() < 0.6 else -page.group_id


def _page_author(rng: random.Random, page: _Page) -> int:
    return rng.choice(page.admins) if rng.random() < page.admin_reply_p else -page.group_id


def _citizen(rng: random.Random, cfg_pages: int) -> int:
    return CITIZEN_ID_BASE + rng.randrange(max(2000, cfg_pages * 400))


def _pick_object(rng: random.Random, page: _Page, kind: str) -> int:
    if kind == "wall":
        # New posts appear now and then; people comment mostly on the latest ones.
        if rng.random() < 0.08:
            page.post_id += rng.randint(1, 3)
        return max(1, page.post_id - int(rng.expovariate(0.7)))
    pool = {"photo": page.photo_ids, "video": page.video_ids, "market": page.market_ids, "board": page.topic_ids}[kind]
    return rng.choice(pool)


def _plan_comments(rng: random.Random, page: _Page, pages: list[_Page], t0: float) -> list[_Happening]:
    kind = rng.choices(_OBJECT_KINDS, cum_weights=_OBJECT_WEIGHTS)[0]
    obj = _pick_object(rng, page, kind)
    threaded = kind in _THREADED
    script: list[_Happening] = []

    if rng.random() < 0.04:
        # Another community (a neighbouring page, or one we do not watch) comments: not an item.
        other = rng.choice(pages).group_id if rng.random() < 0.6 else FOREIGN_COMMUNITY_BASE + rng.randrange(40)
        if other == page.group_id:
            other = FOREIGN_COMMUNITY_BASE + rng.randrange(40)
        script.append((t0, "new", _Node(kind, page, obj, -other, _text(rng, _COMMUNITY_COMMENTS)), None))
        return script

    citizen = _citizen(rng, len(pages))
    roll = rng.random()
    if roll < 0.45:
        category, templates = "question", _QUESTIONS
    elif roll < 0.70:
        category, templates = "complaint", _COMPLAINTS
    elif roll < 0.82:
        category, templates = "thanks", _THANKS
    elif roll < 0.94:
        category, templates = "reaction", _REACTIONS
    elif roll < 0.97:
        category, templates = "spam", _SPAM
    else:
        category, templates = "offensive", _OFFENSIVE
    first = _Node(kind, page, obj, citizen, _text(rng, templates))
    script.append((t0, "new", first, None))

    def reply_node(author: int, text: str, to: _Node | None, to_user: int | None) -> _Node:
        if kind == "board":  # board topics have no threads: a flat post
            return _Node(kind, page, obj, author, text)
        if not threaded:  # market items: a reply refers to the comment, no thread
            return _Node(kind, page, obj, author, text, reply_to=to, reply_to_user=to_user)
        root = first
        return _Node(kind, page, obj, author, text, root=root, reply_to=to, reply_to_user=to_user)

    # The citizen's own texts, in time order: the page's reply answers the latest before it.
    own: list[tuple[float, _Node]] = [(t0, first)]

    # Other citizens chime in, and the first citizen sometimes answers them.
    t = t0
    if rng.random() < 0.22:
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            t += _minutes(rng, 20.0, 1.2)
            other = _citizen(rng, len(pages))
            talk = reply_node(other, _text(rng, _CITIZEN_TALK), first, citizen)
            script.append((t, "new", talk, None))
            if rng.random() < 0.4:
                t += _minutes(rng, 10.0, 1.0)
                back = reply_node(citizen, _text(rng, _CITIZEN_TALK), talk, other)
                script.append((t, "new", back, None))
                own.append((t, back))

    # Edits come soon after writing.
    edited_at = t0 + _minutes(rng, 3.0) if rng.random() < 0.04 else None

    # Deletions: the author changes their mind, or the page removes spam and insults (and now and
    # then a fair comment, which the monitor must flag).
    deleted_at: float | None = None
    restored_at: float | None = None
    if rng.random() < 0.03:
        deleted_at = t0 + _minutes(rng, 20.0, 1.2)
        script.append((deleted_at, "delete", first, citizen))
    elif rng.random() < (0.7 if category in ("spam", "offensive") else 0.01):
        deleted_at = _reply_time(rng, page, t0) if rng.random() < 0.5 else t0 + _minutes(rng, 30.0, 1.2)
        script.append((deleted_at, "delete", first, _deleter(rng, page)))
    if deleted_at is not None and rng.random() < 0.12:
        restored_at = deleted_at + _minutes(rng, 8.0, 1.0)
        script.append((restored_at, "restore", first, None))

    def visible_at(moment: float) -> bool:
        return deleted_at is None or moment < deleted_at or (restored_at is not None and moment >= restored_at)

    if edited_at is not None and visible_at(edited_at):  # nobody edits a deleted comment
        script.append((edited_at, "edit", first, first.text + rng.choice(_EDIT_SUFFIXES)))

    # The page's answer, or silence.
    if category in ("question", "complaint"):
        answer_p = 1.0 - page.ignore_p
    elif category == "thanks":
        answer_p = 0.15
    else:
        answer_p = 0.0
    answered_at: float | None = None
    if rng.random() < answer_p:
        answered_at = _reply_time(rng, page, t0)
    if answered_at is None or answered_at - t0 > 4 * 3600:
        # An unanswered citizen asks again, in the thread.
        if category in ("question", "complaint") and rng.random() < 0.3:
            t_again = t0 + _minutes(rng, 240.0, 1.0)
            if answered_at is None or t_again < answered_at:
                again = reply_node(citizen, _text(rng, _FOLLOW_UPS), first, citizen)
                script.append((t_again, "new", again, None))
                own.append((t_again, again))
    if answered_at is not None and visible_at(answered_at):
        target = max((entry for entry in own if entry[0] < answered_at), key=lambda entry: entry[0])[1]
        responder = _page_author(rng, page)
        text = rng.choice(_PAGE_THANKS_REPLIES if category == "thanks" else _PAGE_REPLIES)
        form = rng.random()
        if kind == "board" or form < 0.72:
            reply = reply_node(responder, text, target, citizen)  # rule 1: replies to the comment
        elif threaded and form < 0.86:
            reply = reply_node(responder, text, first, citizen)  # rule 2: in the thread, to the author
        else:
            # rule 3: top level, addressed to the author
            reply = _Node(kind, page, obj, responder, text, reply_to_user=citizen)
        script.append((answered_at, "new", reply, None))
        if category != "thanks" and rng.random() < 0.25:
            t_thanks = answered_at + _minutes(rng, 30.0, 1.2)
            thanks = reply_node(citizen, _text(rng, _THANKS), reply, responder)
            if threaded and reply.root is None:
                thanks.root = reply  # the page answered at top level: the thanks goes into that thread
            script.append((t_thanks, "new", thanks, None))
    return script


def _plan_messages(rng: random.Random, page: _Page, pages: list[_Page], t0: float) -> list[_Happening]:
    citizen = _citizen(rng, len(pages))
    script: list[_Happening] = []
    t = t0
    for k in range(rng.choice((1, 1, 1, 2, 2, 3))):
        if k:
            t += _minutes(rng, 0.7, 1.0)
        text = _text(rng, _QUESTIONS if rng.random() < 0.6 else _COMPLAINTS) if k == 0 else _text(rng, _FOLLOW_UPS)
        script.append((t, "new", _Node("dm", page, citizen, citizen, text), None))
    if page.has_bot:
        # The auto-reply bot answers at once; no admin_author_id, so it answers nothing by itself.
        script.append(
            (
                t0 + rng.uniform(1.0, 6.0),
                "new",
                _Node("dm", page, citizen, -page.group_id, rng.choice(_BOT_REPLIES)),
                None,
            )
        )
    if rng.random() < 1.0 - 0.7 * page.ignore_p:
        answered_at = max(_reply_time(rng, page, t0), t + 1.0)
        reply = _Node(
            "dm", page, citizen, -page.group_id, rng.choice(_PAGE_REPLIES), admin_author=rng.choice(page.admins)
        )
        script.append((answered_at, "new", reply, None))
        if rng.random() < 0.3:
            script.append(
                (
                    answered_at + _minutes(rng, 15.0),
                    "new",
                    _Node("dm", page, citizen, citizen, _text(rng, _THANKS)),
                    None,
                )
            )
    return script


def _plan(rng: random.Random, page: _Page, pages: list[_Page], t0: float) -> list[_Happening]:
    if rng.random() < _DM_SHARE:
        return _plan_messages(rng, page, pages, t0)
    return _plan_comments(rng, page, pages, t0)


# ---------------------------------------------------------------------------------------------
# Bodies exactly as VK's Callback API sends them.

_CLIENT_INFO = {
    "button_actions": [
        "text",
        "vkpay",
        "open_app",
        "location",
        "open_link",
        "callback",
        "intent_subscribe",
        "intent_unsubscribe",
    ],
    "keyboard": True,
    "inline_keyboard": True,
    "carousel": True,
    "lang_id": 0,
}


def _comment_object(node: _Node, text: str) -> dict[str, Any]:
    owner = -node.page.group_id
    obj: dict[str, Any] = {"id": node.id, "from_id": node.author, "date": node.date, "text": text}
    if node.kind == "board":
        obj["topic_owner_id"] = owner
        obj["topic_id"] = node.obj
        return obj
    if node.kind == "market":
        obj["market_owner_id"] = owner
        obj["item_id"] = node.obj
    else:
        obj["parents_stack"] = [node.root.id] if node.root is not None else []
        if node.root is None:
            obj["thread"] = {"count": 0}
        if node.kind == "wall":
            obj["post_id"] = node.obj
            obj["owner_id"] = owner
            obj["post_owner_id"] = owner
        elif node.kind == "photo":
            obj["photo_id"] = node.obj
            obj["photo_owner_id"] = owner
        else:
            obj["video_id"] = node.obj
            obj["video_owner_id"] = owner
    if node.reply_to is not None:
        obj["reply_to_comment"] = node.reply_to.id
    if node.reply_to_user is not None:
        obj["reply_to_user"] = node.reply_to_user
    return obj


_EVENT_PREFIX = {
    "wall": "wall_reply",
    "photo": "photo_comment",
    "video": "video_comment",
    "market": "market_comment",
    "board": "board_post",
}
_OBJECT_FIELD = {"wall": "post_id", "photo": "photo_id", "video": "video_id", "market": "item_id"}


def _delete_object(rng: random.Random, node: _Node, deleter: int) -> dict[str, Any]:
    owner = -node.page.group_id
    if node.kind == "board":
        return {"topic_owner_id": owner, "topic_id": node.obj, "id": node.id, "deleter_id": deleter}
    obj: dict[str, Any] = {"owner_id": owner, "id": node.id}
    if node.kind == "wall":
        # VK's docs list deleter_id, its schema user_id; real bodies carry either or both.
        roll = rng.random()
        if roll < 0.85:
            obj["deleter_id"] = deleter
            obj["user_id"] = deleter
        elif roll < 0.95:
            obj["deleter_id"] = deleter
        else:
            obj["user_id"] = deleter
    else:
        obj["user_id"] = deleter
        obj["deleter_id"] = deleter
    obj[_OBJECT_FIELD[node.kind]] = node.obj
    return obj


def _message_object(node: _Node, page: _Page) -> dict[str, Any]:
    incoming = node.author > 0
    message: dict[str, Any] = {
        "date": node.date,
        "from_id": node.author,
        "id": node.id,
        "out": 0 if incoming else 1,
        "version": 10_000_000 + node.id * 3,
        "attachments": [],
        "conversation_message_id": node.conversation_id,
        "fwd_messages": [],
        "important": False,
        "is_hidden": False,
        "peer_id": node.obj,
        "random_id": 0 if incoming else (node.id * 7919) % 2_000_000_000 + 1,
        "text": node.text,
    }
    if node.admin_author is not None:
        message["admin_author_id"] = node.admin_author
    return message
