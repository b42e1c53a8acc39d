"""What counts as a response, and each item's outcome: the rules as written (docs/responses.md).

An *item* is something a citizen wrote on a watched page that waits for an answer: a comment, a board
post, a direct message. A *page reply* is written by the page itself, by one of the administrators
its registry entry names, or by one of its VK managers at the reply's time. Comments by other communities are neither.

A page reply answers an item on the same object when it is later than the item and

1. it replies to the item directly, or
2. it is in the item's thread, addressed to the item's author or to nobody in particular, or
3. it is top level and addressed to the item's author;

in a board topic or a direct conversation, every page post answers every earlier item there.

An item's outcome follows from the events known about it, walked in time order: the first answer while
it is visible closes it ``answered``; a deletion hides it until a restoration; an item still deleted at
the end is ``withdrawn`` when its author deleted it, else ``moderated``. An item triage found needs no
answer is ``no_answer_needed`` from its creation. The rest of the outcomes (``expired``, ``open``) are
decided by time, not by events (engine.py).

Plain functions of their arguments: no state is kept here, nothing is saved or timed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from otklik.schemas.records import Interaction, Outcome

if TYPE_CHECKING:
    from otklik.agents.responses.state import Item, Reply
    from otklik.agents.text.triage import AddressedTo

# ---- what a page's registry entry says ------------------------------------------------------------------


class ClockLike(Protocol):
    def working_seconds(self, start: int, end: int) -> int: ...


class DeadlineLike(Protocol):
    seconds: int
    working: bool  # counted in working time (the page's schedule), else in wall time
    text: str

    def due_at(self, clock: Any, created_at: int) -> int: ...

    def elapsed(self, clock: Any, start: int, end: int) -> int: ...


class PageConfigLike(Protocol):
    """What the engine needs of the registry's ``PageConfig``."""

    id: str
    clock: ClockLike
    deadline: DeadlineLike
    administrators: frozenset[str]
    bot_replies_count: bool


# ---- names -----------------------------------------------------------------------------------------------

# An item's kind in its record, by the kind of object it is on.
KIND_OF_OBJECT = {
    "wall": "comment",
    "photo": "comment",
    "video": "comment",
    "market": "comment",
    "board": "board_post",
    "dm": "message",
}

# The events in an item's life, in the order they apply at the same second: an answer before a
# deletion, a deletion before a restoration (deleted and restored in one second: still visible).
ANSWER = 0
DELETE = 1
RESTORE = 2

# The outcomes of a closed item, with the codes a page's saved state keeps them by.
CLOSED_CODES = {
    "answered": 0,
    "moderated": 1,
    "withdrawn": 2,
    "expired": 3,
    "no_answer_needed": 4,
}
CLOSED_NAMES = {code: name for name, code in CLOSED_CODES.items()}


class Verdict(NamedTuple):
    """How an item closed, as the events known about it say."""

    outcome: Outcome
    closed_at: int
    responder: str | None  # who answered (answered)
    deleted_by: str | None  # who deleted it (withdrawn, moderated)


# ---- who wrote it ------------------------------------------------------------------------------------------


# A page's VK managers: user -> their spans as [since, until] (unix seconds; until None while the
# role lasts), in time order (docs/responses.md, "Page replies").
Managers = dict[str, list[list[Any]]]


def managed_at(managers: Managers, author: str, at: int) -> bool:
    """Was ``author`` one of the page's managers at ``at`` (from ``since`` on, before ``until``)?"""
    spans = managers.get(author)
    if not spans:
        return False
    for since, until in spans:
        if since <= at and (until is None or at < until):
            return True
    return False


def from_page(
    author: str, page: str, administrators: frozenset[str], managers: Managers | None = None, at: int | None = None
) -> bool:
    """Written by the page, one of its administrators, or one of its managers at ``at``: a page
    reply, never an item."""
    if author == page or author in administrators:
        return True
    return managers is not None and at is not None and managed_at(managers, author, at)


def is_citizen(author: str) -> bool:
    """A person (``vk:user:5``), not a community: only people's comments wait for an answer."""
    return ":user:" in author


def page_responder(
    ia: Interaction,
    page: str,
    administrators: frozenset[str],
    bot_replies_count: bool,
    managers: Managers | None = None,
) -> str | None:
    """Who answers by ``ia`` when it is a page reply (its administrator when known), else None."""
    author = ia.author
    if author == page:
        if ia.object_kind == "dm" and ia.admin_author is None:
            # Sent by a program (auto-reply, bot): answers nothing unless the registry says so.
            return page if bot_replies_count else None
        return ia.admin_author or page
    if author in administrators:
        return author
    if managers and author is not None and ia.created_at is not None and managed_at(managers, author, ia.created_at):
        return author
    return None


def addressed_to(
    reply_to_author: str | None,
    page: str,
    administrators: frozenset[str],
    managers: Managers | None = None,
    at: int | None = None,
) -> AddressedTo | None:
    """Whom a citizen's comment is addressed to, as triage weighs it."""
    if reply_to_author is None:
        return None
    if from_page(reply_to_author, page, administrators, managers, at):
        return "page"
    if is_citizen(reply_to_author):
        return "citizen"
    return None


# ---- what answers what -------------------------------------------------------------------------------------


def answers(reply: Reply, it: Item, page: str) -> bool:
    """Does page reply ``reply`` answer item ``it`` on the same object (docs/responses.md, "Matching rules")?"""
    if reply.created_at < it.created_at or (reply.created_at == it.created_at and reply.seq <= it.seq):
        return False  # only a later reply answers (same second: a higher id)
    if reply.created_at < it.reopened_at:
        return False  # a restored item: replies before its restoration do not count
    kind = it.object_kind
    if kind == "board" or kind == "dm":
        return True  # a page post answers every earlier item in the topic / from the peer
    if reply.reply_to_item == it.item:
        return True  # 1. a direct reply
    to = reply.reply_to_author
    if reply.thread_root == it.thread_root and (to is None or to == page or to == it.author):
        return True  # 2. in its thread, addressed to its author or to nobody in particular
    # 3. top level and addressed to its author
    return to == it.author and reply.thread_root == reply.item


def can_answer(object_kind: str, item: str, thread_root: str | None, reply_to_author: str | None, page: str) -> bool:
    """Can a page reply answer any item at all? Not a top-level comment addressed to nobody (or to the
    page) on a wall, photo, video or market item: by :func:`answers` it answers nothing, whatever comes."""
    if object_kind == "board" or object_kind == "dm":
        return True
    return thread_root != item or (reply_to_author is not None and reply_to_author != page)


# ---- an item's outcome -------------------------------------------------------------------------------------


def evaluate(it: Item) -> Verdict | None:
    """The item's outcome from the events known about it: None while open.

    Answers are placed at their own time (``created_at``), deletions and restorations at their arrival
    (the platform does not date them); see the module doc for the walk.
    """
    if it.excluded is not None:
        return Verdict("no_answer_needed", it.created_at, None, None)
    if not it.life:
        if not it.answers:
            return None
        created, _, responder, _ = min(it.answers)  # the first page reply answers it
        return Verdict("answered", created, responder, None)
    timeline: list[tuple[int, int, int, str]] = []
    for created, seq, responder, _ in it.answers or ():
        timeline.append((created, ANSWER, seq, responder))
    for received, code, by in it.life:
        timeline.append((received, code, 0, by))
    timeline.sort()
    deleted: tuple[int, str] | None = None
    for t, code, _, who in timeline:
        if code == ANSWER:
            if deleted is None:
                return Verdict("answered", t, who, None)
        elif code == DELETE:
            if deleted is None:
                deleted = (t, who)
        else:
            deleted = None
    if deleted is None:
        return None
    t, who = deleted
    # Deleted by its author: withdrawn; by anyone else (or by someone the platform did not name): moderated.
    return Verdict("withdrawn" if who == it.author else "moderated", t, None, who or None)


def reopens(closed_code: int, life_code: int) -> bool:
    """A closed item's restoration makes it open again, with its original creation time, when it was
    closed by its deletion; deleting an answered item (or restoring one) changes nothing."""
    return life_code == RESTORE and closed_code in (CLOSED_CODES["moderated"], CLOSED_CODES["withdrawn"])


def past_deadline(deadline: DeadlineLike, wall_s: int, business_s: int) -> bool:
    """Past the deadline, judged in the deadline's kind of time. A withdrawn item is breached only if
    its deadline had passed when it was deleted, which is this same comparison at its deletion."""
    return (business_s if deadline.working else wall_s) > deadline.seconds
