"""The response engine: which citizen items a page answered, when, and within its deadline (pure core).

It implements DESIGN.md "What counts as a response". Inputs are :class:`Interaction` records, outputs
:class:`ResponseRecord` s. No faust, no I/O: the live worker and ``otklik replay`` share it.

How order independence is achieved
----------------------------------
Events may arrive late by up to ``late_window_s`` of arrival time (``received_at``). So that results do
not depend on the order of arrival within that window:

* Every item's outcome is a *pure function of the events known about it*: the matching page replies
  (placed at their own ``created_at``) and its deletions/restorations (placed at their ``received_at``),
  walked in time order (:func:`_evaluate`). Processing them in any order gives the same outcome.
* Page replies are kept for the window after they were received, so an item that arrives after a reply
  which answers it (by ``created_at``) is still answered; a reply never answers an item created after it.
  Deletions and restorations of an item not seen yet are held for the window likewise.
* A closure is *tentative* until the window has passed since the last event that concerned the item;
  only then is its record emitted (``settle``). An earlier reply or a deletion that arrives late but
  within the window therefore revises the outcome instead of contradicting an emitted record. Metrics
  see a tentatively closed item as closed at once.

State is partitioned by page (:class:`PageState`), so the live worker can keep one page per key of a
faust table (:meth:`ResponseEngine.dump_page` / :meth:`ResponseEngine.load_page`). Timers (settling,
deadlines, expiry) live in engine-wide heaps with lazy invalidation and are rebuilt from page state.

Cost of persistence
-------------------
The worker writes every changed page after each batch, so :meth:`ResponseEngine.dump_page` costs what
changed, not the page's size: open items are encoded in blocks of :data:`_BLOCK` whose JSON is cached
until one of their items changes, and the dedupe memory and the closed items (which grow at one end
and are pruned from the other) keep their encoding in sealed chunks plus the entries added since the
last dump (:class:`_Log`). What remains proportional to size is joining the cached bytes (a memcpy).
The output stays one self-contained value: :meth:`ResponseEngine.load_page` restores the page from it.

Redeliveries are recognised by a 60-bit digest of the event id (:func:`event_key`), not the id itself:
VK's ids are 40 hex characters (~90 bytes as a str, kept for a day). Among n distinct ids of one page
within the dedupe horizon (a day) some two collide with probability about n²/2⁶¹ (n = 10⁴, a very busy
page: 4·10⁻¹¹; n = 10⁶: 4·10⁻⁷), and a collision would drop one event as a duplicate. The dedupe
memory is per page, so the page is part of the key. A replay, which never persists its engine and
holds every id anyway, dedupes by the ids themselves (``keep_event_ids``).
"""

from __future__ import annotations

import hashlib
import heapq
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import TYPE_CHECKING, Any, Final, NamedTuple, Protocol, cast

import orjson
from msgspec.structs import astuple
from mypy_extensions import mypyc_attr

from otklik.schemas.records import Interaction, Outcome, ResponseRecord

if TYPE_CHECKING:
    from otklik.agents.text.triage import AddressedTo, Triage

__all__ = [
    "DeadlineLike",
    "OpenItemView",
    "PageConfigLike",
    "PageSummary",
    "ResponseEngine",
]


class ClockLike(Protocol):
    def working_seconds(self, start: int, end: int) -> int: ...


class DeadlineLike(Protocol):
    seconds: int
    working: bool
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


KIND_OF_OBJECT: Final = {
    "wall": "comment",
    "photo": "comment",
    "video": "comment",
    "market": "comment",
    "board": "board_post",
    "dm": "message",
}

# Codes of lifecycle events; at the same second an answer comes before a deletion, a deletion before
# a restoration (a deletion and restoration in one second leave the item visible).
_ANSWER: Final = 0
_DELETE: Final = 1
_RESTORE: Final = 2
_CLOSED_CODES: Final[dict[str, int]] = {
    "answered": 0,
    "moderated": 1,
    "withdrawn": 2,
    "expired": 3,
    "no_answer_needed": 4,
}
_CLOSED_NAMES: Final = {v: k for k, v in _CLOSED_CODES.items()}


class OpenItemView(NamedTuple):
    """An open item as the read API and the notifier see it."""

    item: str
    page: str
    kind: str
    author: str
    created_at: int
    due_at: int


@dataclass(frozen=True, slots=True)
class PageSummary:
    """One page's backlog for metrics: computed when Prometheus scrapes."""

    page: str
    open_count: int
    oldest_created_at: int | None
    oldest_age_s: int | None
    oldest_business_age_s: int | None
    # The oldest open item's age in the deadline's kind, as a fraction of the deadline (1.0 = due).
    oldest_fraction: float | None
    deadline: str


class _Item:
    """An open (or tentatively closed) item: slotted, a few hundred bytes with its strings."""

    __slots__ = (
        "answers",
        "author",
        "block",
        "created_at",
        "due",
        "excluded",
        "item",
        "life",
        "object_id",
        "object_kind",
        "received_at",
        "reopened_at",
        "reported",
        "seq",
        "settle_at",
        "tentative",
        "thread_root",
    )

    def __init__(
        self,
        item: str,
        object_id: str,
        object_kind: str,
        author: str,
        created_at: int,
        seq: int,
        thread_root: str | None,
        received_at: int,
        due: int,
        reopened_at: int = 0,
        reported: bool = False,
    ) -> None:
        self.item = item
        self.object_id = object_id
        self.object_kind = object_kind
        self.author = author
        self.created_at = created_at
        self.seq = seq
        self.thread_root = thread_root
        self.received_at = received_at
        self.due = due  # -1 until first needed: most items are answered before anyone asks
        self.reopened_at = reopened_at  # a restored item: replies before its restoration do not count
        self.reported = reported  # its open-and-breached record was emitted
        # (created_at, seq, responder, received_at) of every matching page reply; None when none.
        self.answers: list[tuple[int, int, str, int]] | None = None
        # (received_at, _DELETE or _RESTORE, deleted_by or "") of its deletions / restorations.
        self.life: list[tuple[int, int, str]] | None = None
        # (outcome, closed_at, responder, deleted_by) while tentatively closed, else None.
        self.tentative: tuple[str, int, str | None, str | None] | None = None
        self.settle_at = 0
        self.block: _Block = _NO_BLOCK  # the page-dump block holding its encoded row
        # Triage found nothing to answer (the reason), or None. Such an item is closed at once as
        # no_answer_needed, not judged; it stays held, dormant, until the retention horizon, with the
        # page replies that answer it, so that a correction can re-judge it from its original times.
        # Once its record is out, ``reported`` is set.
        self.excluded: str | None = None


class _Block:
    """Up to :data:`_BLOCK` consecutive open items of a page and their cached JSON rows (None: stale)."""

    __slots__ = ("blob", "items")

    def __init__(self) -> None:
        self.items: list[_Item] = []
        self.blob: bytes | None = None


# Items per cached block of a page dump: a change re-encodes its block (~0.3 µs per item), a dump joins
# the page's blocks. Small enough that one change is cheap, large enough that a block costs little.
_BLOCK: Final = 16
_NO_BLOCK: Final = _Block()  # placeholder until the item joins its page


def _row(it: _Item) -> list[Any]:
    """An open item as stored in a page dump (version 2): version 1's row with what is implied left
    out, since the table holds a copy of every row and so does the dump cache. ``0`` for the object
    id when the item id is ``<object id>:<something>``; ``0`` for the thread root when it is the item
    itself; ``received_at`` as its delay after ``created_at``; ``reported`` as 0 or 1; the deadline
    instant, a cache, as -1 (not known)."""
    item = it.item
    object_id = it.object_id
    if item.rpartition(":")[0] == object_id:
        object_id = 0  # type: ignore[assignment]
    thread_root = it.thread_root
    if thread_root == item:
        thread_root = 0  # type: ignore[assignment]
    row = [
        item,
        object_id,
        it.object_kind,
        it.author,
        it.created_at,
        it.seq,
        thread_root,
        it.received_at - it.created_at,
        -1,
        it.reopened_at,
        1 if it.reported else 0,
        it.answers,
        it.life,
    ]
    if it.excluded is not None:
        row.append(it.excluded)
    return row


def _unrow(row: list[Any]) -> _Item:
    """The inverse of :func:`_row` (version 2)."""
    item = row[0]
    if row[1] == 0:
        row[1] = item.rpartition(":")[0]
    if row[6] == 0:
        row[6] = item
    created = row[4]
    row[7] = created if row[7] == 0 else created + row[7]
    row[10] = bool(row[10])
    it = _Item(*row[:11])
    if len(row) > 13:
        it.excluded = row[13]
    return it


def _block_blob(block: _Block) -> bytes:
    blob = block.blob
    if blob is None:
        blob = block.blob = orjson.dumps([_row(it) for it in block.items])[1:-1]
    return blob


# Entries per sealed chunk of a _Log's cached encoding.
_CHUNK: Final = 256


def _encode_entries(entries: dict[Any, Any]) -> bytes:
    """``"key":value,...`` without the braces (int keys as JSON strings)."""
    return orjson.dumps(entries, option=orjson.OPT_NON_STR_KEYS)[1:-1]


class _Log(dict):  # type: ignore[type-arg]
    """A mapping that grows at its end and is pruned from its front (the dedupe memory, closed items),
    with a cached JSON encoding: sealed chunks of consecutive entries plus the entries added since the
    last :meth:`encode`. Reads are plain dict reads; writes go through :meth:`add`, :meth:`discard`
    and :meth:`drop_front`, which keep the invariant *entries in order = chunks' entries + tail*.

    Nothing is cached until the first :meth:`encode`: a replay never dumps and pays nothing for it.
    """

    __slots__ = ("_chunks", "_tail")

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._chunks: list[list[Any]] | None = None  # [entry count, bytes or None when re-encoding is due]
        self._tail: dict[Any, Any] | None = None

    def add(self, key: Any, value: Any) -> None:
        if key in self:
            self.discard(key)
        dict.__setitem__(self, key, value)
        if self._tail is not None:
            self._tail[key] = value

    def discard(self, key: Any) -> None:
        if key not in self:
            return
        dict.__delitem__(self, key)
        tail = self._tail
        if tail is not None:
            if key in tail:
                del tail[key]
            else:  # inside a sealed chunk (a restored item: rare): re-encode everything at the next dump
                self._chunks = self._tail = None

    def drop_front(self, keys: list[Any]) -> None:
        """Remove ``keys``, which must be the mapping's first ``len(keys)`` entries in order."""
        for key in keys:
            dict.__delitem__(self, key)
        chunks = self._chunks
        if chunks is None:
            return
        n = len(keys)
        while n and chunks:
            first = chunks[0]
            if first[0] <= n:
                n -= first[0]
                del chunks[0]
            else:
                first[0] -= n
                first[1] = None  # its remaining entries are re-encoded at the next dump
                n = 0
        if n:
            tail = self._tail
            for key in keys[len(keys) - n :]:
                del tail[key]  # type: ignore[index,union-attr]

    def encode(self) -> bytes:
        """The mapping as a JSON object; costs the entries added or pruned since the last call."""
        parts: list[bytes] = []
        self.encode_into(parts)
        return b"".join(parts)

    def encode_into(self, parts: list[bytes]) -> None:
        """Append the pieces of :meth:`encode` to ``parts`` (one join for the whole dump, not one each)."""
        chunks = self._chunks
        if chunks is None:
            chunks = self._chunks = []
            self._tail = dict(self)
        if chunks and chunks[0][1] is None:
            chunks[0][1] = _encode_entries(dict(islice(self.items(), chunks[0][0])))
        tail = self._tail
        if tail:
            blob = _encode_entries(tail)
            if chunks and chunks[-1][0] + len(tail) <= _CHUNK:
                last = chunks[-1]
                last[0] += len(tail)
                last[1] = last[1] + b"," + blob
            else:
                chunks.append([len(tail), blob])
            self._tail = {}
        parts.append(b"{")
        _interleave(parts, [chunk[1] for chunk in chunks])
        parts.append(b"}")


def _interleave(parts: list[bytes], pieces: list[bytes]) -> None:
    """Append ``pieces`` to ``parts`` with commas between them."""
    if pieces:
        parts.append(pieces[0])
        for piece in islice(pieces, 1, None):
            parts.append(b",")
            parts.append(piece)


def event_key(event_id: str) -> int:
    """A stable 60-bit digest of a platform event id (see the module doc for why this is enough).

    BLAKE2s over the whole id (~0.7 µs), not a cheaper prefix or fold: ids that share a structure
    (counters, prefixes) must stay apart as well as random-looking ones. Stable across processes,
    unlike ``hash``, because page dumps keep it.
    """
    return int.from_bytes(hashlib.blake2s(event_id.encode(), digest_size=8).digest(), "little") & _KEY_MASK


# 60 bits: a Python int of two 30-bit digits (32 bytes, a 64-bit one takes 40).
_KEY_MASK: Final = (1 << 60) - 1


class _Reply(NamedTuple):
    """A page reply, kept for the late window so that a late item can still be matched."""

    created_at: int
    seq: int
    received_at: int
    item: str
    object_id: str
    thread_root: str | None
    reply_to_item: str | None
    reply_to_author: str | None
    responder: str


# Compiled (build_native.py), reading a field of a msgspec Struct such as Interaction is a generic
# attribute lookup (~15 ns), and the engine reads ~50 per event; one copy into a native object (a
# single astuple call, then a native constructor) costs less than ten of them. As plain Python the
# copy would cost more than it saves: the engine reads the Interaction itself (see process).
_NATIVE: Final = not __file__.endswith(".py")

# Interaction's fields in declaration order, as astuple gives them (checked by a unit test).
_InteractionTuple = tuple[
    str,
    str,
    str,
    str,
    str,
    str,
    int,
    int,
    str | None,
    int | None,
    str | None,
    str | None,
    str | None,
    str | None,
    str | None,
    str | None,
    str,
    int,
]


class _Event:
    """The fields of an Interaction the engine reads (all but ``platform``), as a native object (only
    ever built compiled: its layout is mypyc's)."""

    def __init__(
        self,
        page: str,
        action: str,
        object_kind: str,
        object_id: str,
        item: str,
        seq: int,
        received_at: int,
        event_id: str | None,
        created_at: int | None,
        author: str | None,
        thread_root: str | None,
        reply_to_item: str | None,
        reply_to_author: str | None,
        deleted_by: str | None,
        admin_author: str | None,
        text: str,
        attachments: int,
    ) -> None:
        self.page = page
        self.action = action
        self.object_kind = object_kind
        self.object_id = object_id
        self.item = item
        self.seq = seq
        self.received_at = received_at
        self.event_id = event_id
        self.created_at = created_at
        self.author = author
        self.thread_root = thread_root
        self.reply_to_item = reply_to_item
        self.reply_to_author = reply_to_author
        self.deleted_by = deleted_by
        self.admin_author = admin_author
        self.text = text
        self.attachments = attachments


def _event(ia: Interaction) -> _Event:
    """``ia`` as the engine reads it: a native copy when compiled, else the Interaction itself."""
    if not _NATIVE:
        return ia  # type: ignore[return-value]  # the same field names, read as attributes
    (
        _,
        page,
        action,
        object_kind,
        object_id,
        item,
        seq,
        received_at,
        event_id,
        created_at,
        author,
        thread_root,
        reply_to_item,
        reply_to_author,
        deleted_by,
        admin_author,
        text,
        attachments,
    ) = cast(_InteractionTuple, astuple(ia))
    return _Event(
        page,
        action,
        object_kind,
        object_id,
        item,
        seq,
        received_at,
        event_id,
        created_at,
        author,
        thread_root,
        reply_to_item,
        reply_to_author,
        deleted_by,
        admin_author,
        text,
        attachments,
    )


def _answers(reply: _Reply, it: _Item, page: str) -> bool:
    """DESIGN "What counts as a response": does page reply ``reply`` answer item ``it`` (same object)?"""
    if reply.created_at < it.created_at or (reply.created_at == it.created_at and reply.seq <= it.seq):
        return False  # only a later reply answers (same second: a higher id)
    if reply.created_at < it.reopened_at:
        return False
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


def _evaluate(it: _Item) -> tuple[str, int, str | None, str | None] | None:
    """The item's outcome from the events known about it: None while open.

    Answers are placed at their own time, deletions and restorations at their arrival; walked in time
    order, the first answer while visible closes it; a deletion hides it until a restoration. An item
    triage excluded is closed at its creation, whatever happens to it.
    """
    if it.excluded is not None:
        return ("no_answer_needed", it.created_at, None, None)
    if not it.life:
        if not it.answers:
            return None
        created, _, responder, _ = min(it.answers)  # the first page reply answers it
        return ("answered", created, responder, None)
    timeline: list[tuple[int, int, int, str]] = []
    if it.answers:
        for created, seq, responder, _ in it.answers:
            timeline.append((created, _ANSWER, seq, responder))
    if it.life:
        for received, code, by in it.life:
            timeline.append((received, code, 0, by))
    timeline.sort()
    deleted: tuple[int, str] | None = None
    for t, code, _, who in timeline:
        if code == _ANSWER:
            if deleted is None:
                return ("answered", t, who, None)
        elif code == _DELETE:
            if deleted is None:
                deleted = (t, who)
        elif deleted is not None:
            deleted = None
    if deleted is not None:
        t, who = deleted
        # Deleted by its author: withdrawn; by anyone else (or by someone VK did not name): moderated.
        return ("withdrawn" if who == it.author else "moderated", t, None, who or None)
    return None


@mypyc_attr(native_class=False)  # compiled (see build_native.py), a list subclass stays a Python class
class _Siblings(list):  # type: ignore[type-arg]
    """The open items on one object, with the object's id: the one string they all share, at hand
    without reaching into another item (a cache miss on the path of every new item)."""

    __slots__ = ("object_id",)

    object_id: str  # set by PageState.add_item: no __init__ of its own, so building one is list's own


@dataclass(slots=True)
class PageState:
    """Everything the engine knows about one page; (de)serialised on its own."""

    page: str
    items: dict[str, _Item] = field(default_factory=dict)
    by_object: dict[str, _Siblings] = field(default_factory=dict)
    # item id -> (outcome code, forget_at): closed items remembered for the retention horizon.
    closed: _Log = field(default_factory=_Log)
    # item id not seen yet -> held deletions / restorations (received_at, code, deleted_by).
    held: dict[str, list[tuple[int, int, str]]] = field(default_factory=dict)
    # object id -> page replies received within the late window.
    replies: dict[str, list[_Reply]] = field(default_factory=dict)
    replies_blob: bytes | None = None  # their encoding; None when they changed since the last dump
    reply_ids: set[str] = field(default_factory=set)
    # event_key(event_id) -> received_at, for dedupe of redeliveries.
    events: _Log = field(default_factory=_Log)
    # The open items in dump order, in blocks whose encoding is cached (see "Cost of persistence");
    # None until the page is first dumped (a replay never dumps and pays nothing for them).
    blocks: list[_Block] | None = None
    config: Any = None
    # From config, looked up once per event otherwise.
    administrators: frozenset[str] = frozenset()
    bot_replies_count: bool = False
    triage: bool = False
    # item id -> [needs_answer, by, at, note, previous decision]: corrections of triage, kept for the
    # retention horizon (an item that arrives after its correction, as in a replay, obeys it too).
    overrides: dict[str, list[Any]] = field(default_factory=dict)

    def add_item(self, it: _Item, siblings: _Siblings | None) -> None:
        """Add an open item; ``siblings`` is ``by_object.get(it.object_id)`` (the caller has it)."""
        self.items[it.item] = it
        if siblings is None:
            siblings = self.by_object[it.object_id] = _Siblings((it,))
            siblings.object_id = it.object_id
        else:
            siblings.append(it)
        if self.blocks is not None:
            self._place(it)

    def _place(self, it: _Item) -> None:
        blocks = self.blocks
        assert blocks is not None
        if blocks and len(blocks[-1].items) < _BLOCK:
            block = blocks[-1]
        else:
            block = _Block()
            blocks.append(block)
        block.items.append(it)
        block.blob = None
        it.block = block

    def encoded_replies(self) -> bytes:
        blob = self.replies_blob
        if blob is None:
            blob = self.replies_blob = orjson.dumps([list(r) for rs in self.replies.values() for r in rs])
        return blob

    def encoded_items(self) -> list[bytes]:
        """The open items' rows by block (each comma-separated inside), from the cached encodings."""
        if self.blocks is None:
            self.blocks = []
            for it in self.items.values():
                self._place(it)
        return [_block_blob(block) for block in self.blocks]

    def forget_encodings(self) -> None:
        """Drop every cached encoding (the next dump encodes the page whole): for tests."""
        for block in self.blocks or ():
            block.blob = None
        self.replies_blob = None
        self.closed = _Log(self.closed)
        self.events = _Log(self.events)

    def remove_item(self, it: _Item) -> None:
        del self.items[it.item]
        siblings = self.by_object.get(it.object_id)
        if siblings is not None:
            siblings.remove(it)
            if not siblings:
                del self.by_object[it.object_id]
        block = it.block
        if block is not _NO_BLOCK:
            block.items.remove(it)
            block.blob = None
            if not block.items:
                self.blocks.remove(block)  # type: ignore[union-attr]


def _override_extra(correction: list[Any]) -> dict[str, Any]:
    needs_answer, by, at, note, previous = correction
    return {"needs_answer": needs_answer, "by": by, "at": at, "note": note, "previous": previous}


_RECORD_FIELDS = (
    "item",
    "page",
    "kind",
    "author",
    "created_at",
    "outcome",
    "closed_at",
    "latency_s",
    "business_latency_s",
    "deadline",
    "breached",
    "responder",
    "reason",
    "extra",
)
if ResponseRecord.__slots__ != _RECORD_FIELDS:  # pragma: no cover
    raise ImportError("otklik.agents.responses.engine: ResponseRecord's fields changed; update ResponseEngine._record")


class ResponseEngine:
    """Matches page replies to citizen items, page by page.

    ``page_config(page_id)`` returns the registry's PageConfig (raise ``LookupError`` or return None for
    a page that is not watched: its events are ignored and counted in :attr:`unknown_page_events`).

    * :meth:`process` takes one interaction; returns the records of items whose outcome became final.
    * :meth:`tick` advances time: settles, expires, and reports open items past their deadline once.
    * :meth:`open_items`, :meth:`summary`, :meth:`snapshot` read the backlog for metrics and the read API.
    * :meth:`dump_page` / :meth:`load_page` (de)serialise one page's state.

    Two options serve ``otklik replay``, which never persists the engine and reads records only to
    print them: ``keep_event_ids`` dedupes redeliveries by the event id itself instead of its digest
    (:func:`event_key`, ~0.7 µs an event; a replay holds every id anyway), and ``record`` replaces
    :class:`ResponseRecord` by anything built from the same fields, in the same order, positionally.
    Neither changes which records are emitted nor their content.
    """

    def __init__(
        self,
        page_config: Callable[[str], PageConfigLike | None],
        late_window_s: int = 600,
        retention_s: int = 30 * 86400,
        dedupe_s: int = 86400,
        *,
        watch_deadlines: bool = True,
        triage: Triage | None = None,
        keep_event_ids: bool = False,
        record: Callable[..., Any] = ResponseRecord,
    ) -> None:
        self._page_config = page_config
        # triage(text, addressed_to, has_attachments) -> (needs_answer, reason), for pages whose
        # registry entry keeps `triage: true`; None judges every item (see agents/text/triage.py).
        self._triage = triage
        self.late_window_s = late_window_s
        self.retention_s = retention_s
        self.dedupe_s = dedupe_s
        # False: tick never reports open items past their deadline (a replay judges them at its end),
        # so no deadline timers are kept at all, only expiry.
        self.watch_deadlines = watch_deadlines
        self.pages: dict[str, PageState] = {}
        self.watermark = 0  # the latest received_at / tick time seen
        self.unknown_page_events = 0
        # Timers: (time, page, item); entries are checked against the item when they fire. An open
        # item has one deadline-or-expiry timer at a time: first in the due heap (keyed by its creation,
        # a lower bound of its deadline), then, once its deadline is settled, in the expiry heap.
        self._settle_heap: list[tuple[int, str, str]] = []
        self._due_heap: list[tuple[int, str, str]] = []
        self._expiry_heap: list[tuple[int, str, str]] = []
        self._next_prune = 0
        self._dirty: set[str] = set()
        self.keep_event_ids = keep_event_ids
        self._make_record = record

    # ---- configuration ------------------------------------------------------------------------------

    def _state(self, page: str) -> PageState | None:
        state = self.pages.get(page)
        if state is not None and state.config is not None:
            return state
        try:
            cfg = self._page_config(page)
        except LookupError:
            cfg = None
        if cfg is None:
            return None
        if state is None:
            state = self.pages[page] = PageState(sys.intern(page))
        state.config = cfg
        state.administrators = cfg.administrators
        state.bot_replies_count = cfg.bot_replies_count
        state.triage = self._triage is not None and getattr(cfg, "triage", True)
        return state

    def _config(self, state: PageState) -> PageConfigLike:
        """The page's config: cached on its state, fetched again after :meth:`reload_config`."""
        cfg = state.config
        if cfg is None:
            cfg = self._state(state.page).config  # type: ignore[union-attr]
        return cfg  # type: ignore[no-any-return]

    def reload_config(self) -> None:
        """Forget cached page configs (the registry was reloaded).

        An item's deadline instant is computed when first needed and then kept; records are judged
        by the page's rules current when they are written.
        """
        for state in self.pages.values():
            state.config = None

    # ---- input ------------------------------------------------------------------------------------

    def process(self, ia: Interaction) -> list[ResponseRecord]:
        """Apply one interaction; returns the records of items whose outcome became final.

        Time first advances to the event's ``received_at`` (outcomes whose late window has passed are
        settled, items past the retention horizon expire), then the event takes effect. Records of
        closures therefore come ``late_window_s`` after the closing event, from a later ``process`` or
        :meth:`tick` call: the live worker must tick regularly.
        """
        out: list[ResponseRecord] = []
        ev = _event(ia)
        now = ev.received_at
        if now > self.watermark:
            self.watermark = now
        else:
            now = self.watermark
        settle = self._settle_heap
        if settle and settle[0][0] < now:
            self._advance(now, out)
        else:
            expiry = self._expiry_heap
            due = self._due_heap
            if (expiry and expiry[0][0] <= now) or (due and due[0][0] + self.retention_s <= now):
                self._advance(now, out)
        state = self.pages.get(ev.page)
        if state is None or state.config is None:
            state = self._state(ev.page)
            if state is None:
                self.unknown_page_events += 1
                return out
        eid = ev.event_id
        if eid is not None:
            key = eid if self.keep_event_ids else event_key(eid)
            events = state.events
            if key in events:
                return out  # a redelivery
            received = ev.received_at
            if received == ev.created_at:
                received = ev.created_at  # the int object the open item keeps too
            # _Log.add inlined for a new key (this runs once per event); _Log leaves __setitem__ as dict's.
            events[key] = received
            if events._tail is not None:
                events._tail[key] = received
        self._dirty.add(state.page)
        action = ev.action
        if action == "new":
            self._on_new(state, ev)
        elif action == "delete":
            self._on_life(state, ev, _DELETE)
        elif action == "restore":
            self._on_life(state, ev, _RESTORE)
        # Edits change no times.
        return out

    def _is_page_reply(self, state: PageState, ia: _Event) -> str | None:
        """The responder when ``ia`` is a page reply, else None."""
        author = ia.author
        page = state.page
        if author == page:
            if ia.object_kind == "dm" and ia.admin_author is None:
                # Sent by a program (auto-reply, bot): answers nothing unless the registry says so.
                return page if state.bot_replies_count else None
            return ia.admin_author or page
        if author in state.administrators:
            return author
        return None

    def _on_new(self, state: PageState, ia: _Event) -> None:
        author = ia.author
        created = ia.created_at
        if author is None or created is None:
            return
        if author == state.page or author in state.administrators:
            responder = self._is_page_reply(state, ia)
            if responder is not None and ia.item not in state.reply_ids:
                self._on_reply(state, ia, responder)
            return
        if ":user:" not in author:
            return  # comments by other communities are interactions, not items
        item = ia.item
        if item in state.items or item in state.closed:
            return  # the same item announced twice
        if created + self.retention_s <= ia.received_at:
            return  # older than the retention horizon: nothing to track
        # Most pages have no corrections and many no triage: skip the call then.
        self._open(state, ia, 0, self._exclusion(state, ia) if state.triage or state.overrides else None)

    def _exclusion(self, state: PageState, ia: _Event) -> str | None:
        """Why the item needs no answer (triage, or a person's correction), or None: it does."""
        correction = state.overrides.get(ia.item)
        if correction is not None:
            return None if correction[0] else "override"
        triage = self._triage
        if not state.triage or triage is None:
            return None
        to = ia.reply_to_author
        addressed: AddressedTo | None
        if to is None:
            addressed = None
        elif to == state.page or to in state.administrators:
            addressed = "page"
        elif ":user:" in to:
            addressed = "citizen"
        else:
            addressed = None
        # Typed (not Optional) here, so that compiled the pair is unpacked directly, not iterated.
        needs_answer, reason = triage(ia.text, addressed, ia.attachments > 0)
        return None if needs_answer else reason

    def _open(self, state: PageState, ia: _Event, reopened_at: int, excluded: str | None = None) -> _Item:
        created = ia.created_at
        assert created is not None and ia.author is not None
        received = ia.received_at
        if received == created:
            received = created  # one int object for both: most items are received the second they are written
        object_id = ia.object_id
        siblings = state.by_object.get(object_id)
        if siblings:
            object_id = siblings.object_id  # one string for every item on the object
        item = ia.item
        thread_root = ia.thread_root
        if thread_root == item:
            thread_root = item  # one string for both (a top-level comment is its own thread's root)
        it = _Item(
            item,
            object_id,
            ia.object_kind,
            ia.author,
            created,
            ia.seq,
            thread_root,
            received,
            -1,
            reopened_at,
        )
        it.excluded = excluded
        state.add_item(it, siblings)
        window = self.late_window_s
        replies = state.replies.get(object_id) if state.replies else None
        if replies:
            # Page replies received within the window (either side) that answer it, by their own time.
            for reply in replies:
                # Cheap tests first: most kept replies are older than a new item.
                if reply.created_at < created or abs(reply.received_at - received) > window:
                    continue
                if _answers(reply, it, state.page):
                    if it.answers is None:
                        it.answers = []
                    it.answers.append((reply.created_at, reply.seq, reply.responder, reply.received_at))
        if state.held:
            held = state.held.pop(it.item, None)
            if held:
                it.life = [h for h in held if abs(h[0] - received) <= window] or None
        if self.watch_deadlines:
            # The deadline is computed when first needed; created_at is a lower bound of it.
            heapq.heappush(self._due_heap, (created, state.page, item))
        else:
            heapq.heappush(self._expiry_heap, (created + self.retention_s, state.page, item))
        if it.answers is not None or it.life is not None or excluded is not None:
            self._reevaluate(state, it)
        return it

    def _on_reply(self, state: PageState, ia: _Event, responder: str) -> None:
        created = ia.created_at
        assert created is not None
        reply = _Reply(
            created,
            ia.seq,
            ia.received_at,
            ia.item,
            ia.object_id,
            ia.thread_root,
            ia.reply_to_item,
            ia.reply_to_author,
            responder,
        )
        state.reply_ids.add(reply.item)
        state.replies.setdefault(reply.object_id, []).append(reply)
        state.replies_blob = None
        candidates = state.by_object.get(reply.object_id)
        if not candidates:
            return
        page = state.page
        for it in candidates:
            if it.created_at <= created and _answers(reply, it, page):
                if it.answers is None:
                    it.answers = []
                it.answers.append((created, reply.seq, responder, reply.received_at))
                it.block.blob = None
                self._reevaluate(state, it)

    def _on_life(self, state: PageState, ia: _Event, code: int) -> None:
        item = ia.item
        by = ia.deleted_by or ""
        it = state.items.get(item)
        if it is not None:
            if it.life is None:
                it.life = []
            it.life.append((ia.received_at, code, by))
            it.block.blob = None
            self._reevaluate(state, it)
            return
        closed = state.closed.get(item)
        if closed is not None:
            # A restored item becomes open again with its original creation time; deleting an
            # answered item (or the page's reply) changes nothing.
            if code == _RESTORE and closed[0] in (_CLOSED_CODES["moderated"], _CLOSED_CODES["withdrawn"]):
                if ia.created_at is not None and ia.author is not None:
                    state.closed.discard(item)
                    self._open(state, ia, reopened_at=ia.received_at)
            return
        if item in state.reply_ids:
            return  # the page's own reply: deleting it does not reopen anything
        state.held.setdefault(item, []).append((ia.received_at, code, by))

    def _reevaluate(self, state: PageState, it: _Item, rejudged: bool = False) -> None:
        if it.excluded is not None and it.reported:
            # Dormant: its record is out; replies are kept on it for a correction.
            it.tentative = ("no_answer_needed", it.created_at, None, None)
            return
        was = it.tentative
        it.tentative = _evaluate(it)
        if it.tentative is not None:
            last = it.received_at
            for a in it.answers or ():
                if a[3] > last:
                    last = a[3]
            for life in it.life or ():
                if life[0] > last:
                    last = life[0]
            settle_at = last + self.late_window_s
            # An item re-judged by a correction settles anew; otherwise a timer for this time is waiting.
            if was is None or rejudged or settle_at != it.settle_at:
                it.settle_at = settle_at
                heapq.heappush(self._settle_heap, (settle_at, state.page, it.item))
        elif was is not None:
            # Open again: watch its deadline (or, once reported, its expiry) anew.
            if it.reported or not self.watch_deadlines:
                heapq.heappush(self._expiry_heap, (it.created_at + self.retention_s, state.page, it.item))
            else:
                heapq.heappush(self._due_heap, (it.created_at, state.page, it.item))

    def override(self, page: str, item: str, needs_answer: bool, by: str, at: int, note: str) -> bool:
        """A person's correction of triage: re-judge ``item`` from its original times.

        Applies to an item the engine still holds (open, closing, or excluded and dormant); returns
        False when the item is not held (unknown yet: the correction waits for it; or closed and
        forgotten). The new judgement goes out as a record with ``extra.override`` (who, when, why,
        the previous decision), once the late window has passed, like any closure.
        """
        state = self._state(page)
        if state is None:
            return False
        it = state.items.get(item)
        if it is None:
            previous = "unknown"
        elif it.excluded is not None:
            previous = f"no_answer_needed:{it.excluded}"
        else:
            previous = "needs_answer"
        state.overrides[item] = [needs_answer, by, at, note, previous]
        self._dirty.add(page)
        if at > self.watermark:
            self.watermark = at
        if it is None:
            return False
        excluded = None if needs_answer else "override"
        if excluded == it.excluded:
            return True  # nothing changes; the correction is still recorded
        it.excluded = excluded
        it.reported = False  # a new judgement, a new record (open past its deadline, or closed)
        it.block.blob = None
        # Re-judged from its original times: its answers, deletions and restorations are all kept.
        self._reevaluate(state, it, rejudged=True)
        return True

    # ---- time -------------------------------------------------------------------------------------

    def tick(self, now: int, *, report_breaches: bool = True) -> list[ResponseRecord]:
        """Advance to ``now``: settle, expire, and report open items past their deadline (once each).

        ``report_breaches=False`` skips the deadline notices (a replay judges open items at its end):
        items whose deadline may have passed by ``now`` are then not reported by a later tick either.
        """
        if now > self.watermark:
            self.watermark = now
        out: list[ResponseRecord] = []
        heap = self._due_heap
        retention = self.retention_s
        if not report_breaches:
            # Deadlines are not watched: hand the items straight to the expiry timer.
            expiry = self._expiry_heap
            while heap and heap[0][0] < now:
                _, page, item = heapq.heappop(heap)
                state = self.pages.get(page)
                it = state.items.get(item) if state is not None else None
                if it is not None:
                    heapq.heappush(expiry, (it.created_at + retention, page, item))
        self._advance(now, out)
        while heap and heap[0][0] < now:
            _, page, item = heapq.heappop(heap)
            state = self.pages.get(page)
            it = state.items.get(item) if state is not None else None
            if it is None or it.reported:
                continue
            cfg = self._config(state)  # type: ignore[arg-type]
            due = self._due(it, cfg)
            expires_at = it.created_at + retention
            if due >= expires_at:
                heapq.heappush(self._expiry_heap, (expires_at, page, item))  # it expires first
                continue
            if due >= now:
                heapq.heappush(heap, (due, page, item))
                continue
            if it.tentative is not None:
                if it.tentative[1] <= due:
                    continue  # closed in time; if it reopens, _reevaluate re-arms the timer
                # Closed (tentatively) after its deadline: at the deadline it was still open.
            deadline = cfg.deadline
            if deadline.elapsed(cfg.clock, it.created_at, now) <= deadline.seconds:
                # Due exactly at the end of a working period: breached from the next working second.
                heapq.heappush(heap, (now + 60, page, item))
                continue
            it.reported = True
            it.block.blob = None
            self._dirty.add(page)
            heapq.heappush(self._expiry_heap, (expires_at, page, item))
            correction = state.overrides.get(item)  # type: ignore[union-attr]
            extra = {"override": _override_extra(correction)} if correction is not None else None
            out.append(self._record(page, it, "open", None, cfg, breached=True, extra=extra))
        if now >= self._next_prune:
            self._prune(now)
            self._next_prune = now + 60
        return out

    def _record(
        self,
        page: str,
        it: _Item,
        outcome: Outcome,
        closed_at: int | None,
        cfg: PageConfigLike,
        responder: str | None = None,
        breached: bool | None = None,
        extra: dict[str, Any] | None = None,
        reason: str | None = None,
    ) -> ResponseRecord:
        """The record of ``it``, built by the engine's ``record`` (:class:`ResponseRecord` unless a replay's)."""
        deadline = cfg.deadline
        latency = business = None
        if closed_at is not None:
            latency = closed_at - it.created_at
            if latency < 0:
                latency = 0
            # An item closed at its creation (no_answer_needed: two thirds of the simulator's) takes
            # the clock's own answer for an empty interval, 0, without the call through the page's config.
            business = 0 if closed_at == it.created_at else cfg.clock.working_seconds(it.created_at, closed_at)
            if breached is None:
                # Judged on the deadline's kind; a withdrawn item is breached only if its deadline had
                # already passed when it was deleted, which is this same comparison.
                breached = (business if deadline.working else latency) > deadline.seconds
        return self._make_record(  # type: ignore[no-any-return]
            it.item,
            page,
            KIND_OF_OBJECT[it.object_kind],
            it.author,
            it.created_at,
            outcome,
            closed_at,
            latency,
            business,
            deadline.text,
            bool(breached),
            responder,
            reason,
            extra or {},
        )

    @staticmethod
    def _due(it: _Item, cfg: PageConfigLike) -> int:
        if it.due < 0:
            # Kept once known, in memory only: a cache, not state (a dump says -1; computed again
            # after a restart), so computing it changes no saved state and dirties no page.
            it.due = cfg.deadline.due_at(cfg.clock, it.created_at)
        return it.due

    def _advance(self, now: int, out: list[ResponseRecord]) -> list[ResponseRecord]:
        heap = self._settle_heap
        while heap and heap[0][0] < now:  # events received up to settle_at are within the window
            settle_at, page, item = heapq.heappop(heap)
            state = self.pages.get(page)
            it = state.items.get(item) if state is not None else None
            if it is None or it.tentative is None or it.settle_at != settle_at:
                continue
            self._settle(state, it, out)  # type: ignore[arg-type]
        retention = self.retention_s
        heap = self._expiry_heap
        due = self._due_heap
        # An item still waiting for its deadline timer (no tick has run since) can be past the horizon too.
        while due and due[0][0] + retention <= now:
            _, page, item = heapq.heappop(due)
            state = self.pages.get(page)
            it = state.items.get(item) if state is not None else None
            if it is not None:
                heapq.heappush(heap, (it.created_at + retention, page, item))
        while heap and heap[0][0] <= now:
            expires_at, page, item = heapq.heappop(heap)
            state = self.pages.get(page)
            it = state.items.get(item) if state is not None else None
            horizon = it.created_at + retention if it is not None else 0
            if it is None or horizon > expires_at:
                continue
            if it.excluded is not None and it.reported:
                self._close(state, it, "no_answer_needed", it.created_at)  # type: ignore[arg-type]
                continue
            if it.tentative is not None:
                # Its tentative outcome decides; should it reopen, it expires once that settles.
                heapq.heappush(heap, (max(it.settle_at, expires_at) + 1, page, item))
                continue
            self._close(state, it, "expired", horizon)  # type: ignore[arg-type]
            cfg = self._config(state)  # type: ignore[arg-type]
            out.append(self._record(page, it, "expired", horizon, cfg, breached=True))
        return out

    def _settle(self, state: PageState, it: _Item, out: list[ResponseRecord]) -> None:
        outcome, closed_at, responder, deleted_by = it.tentative  # type: ignore[misc]
        cfg = self._config(state)
        extra: dict[str, Any] = {}
        correction = state.overrides.get(it.item)
        if correction is not None:
            extra["override"] = _override_extra(correction)
        if outcome == "no_answer_needed":
            # Not judged; it stays held, dormant (see _Item.excluded). A page reply to it is recorded.
            if it.answers:
                first = min(it.answers)
                extra["replied_at"], extra["replied_by"] = first[0], first[2]
            out.append(
                self._record(
                    state.page,
                    it,
                    outcome,
                    closed_at,
                    cfg,
                    breached=False,
                    extra=extra,  # type: ignore[arg-type]
                    reason=it.excluded,
                )
            )
            it.reported = True
            it.block.blob = None
            self._dirty.add(state.page)
            heapq.heappush(self._expiry_heap, (it.created_at + self.retention_s, state.page, it.item))
            return
        if outcome != "answered":
            extra["deleted_by"] = deleted_by
            if outcome == "moderated":
                extra["review"] = True  # deleting a fair complaint is not an answer
        out.append(self._record(state.page, it, outcome, closed_at, cfg, responder=responder, extra=extra))  # type: ignore[arg-type]
        self._close(state, it, outcome, closed_at)

    def _close(self, state: PageState, it: _Item, outcome: str, closed_at: int) -> None:
        self._dirty.add(state.page)
        state.remove_item(it)
        state.closed.add(it.item, (_CLOSED_CODES[outcome], max(closed_at, it.received_at) + self.retention_s))

    def settle_all(self) -> list[ResponseRecord]:
        """Make every tentative outcome final now (end of a replay: no more events will come).

        Each tentative item has its settling timer (the timer of its latest ``settle_at``), so the
        timers name them all, in the order they would have settled, without a walk over every item.
        """
        out: list[ResponseRecord] = []
        heap = self._settle_heap
        while heap:
            settle_at, page, item = heapq.heappop(heap)
            state = self.pages.get(page)
            it = state.items.get(item) if state is not None else None
            if it is None or it.tentative is None or it.settle_at != settle_at:
                continue  # closed since, or re-timed
            if not (it.excluded is not None and it.reported):  # a dormant item's record is out
                self._settle(state, it, out)  # type: ignore[arg-type]
        return out

    def _prune(self, now: int) -> None:
        """Drop what the windows no longer need: held events, kept replies, event ids, closed ids.

        A page that loses anything is dirty: its saved state changed.
        """
        window = self.late_window_s
        dirty = self._dirty
        for state in self.pages.values():
            if state.held:
                for item in list(state.held):
                    kept = [h for h in state.held[item] if h[0] + window >= now]
                    if len(kept) == len(state.held[item]):
                        continue
                    dirty.add(state.page)
                    if kept:
                        state.held[item] = kept
                    else:
                        del state.held[item]
            if state.replies:
                for object_id in list(state.replies):
                    replies = state.replies[object_id]
                    kept_replies = [r for r in replies if r.received_at + window >= now]
                    if len(kept_replies) == len(replies):
                        continue
                    dirty.add(state.page)
                    state.replies_blob = None
                    for r in replies:
                        if r.received_at + window < now:
                            state.reply_ids.discard(r.item)
                    if kept_replies:
                        state.replies[object_id] = kept_replies
                    else:
                        del state.replies[object_id]
            # Both logs are in (roughly) arrival order: drop from the front until a live entry, so a
            # prune costs what it removes, not the size of the state.
            if state.events:
                horizon = now - self.dedupe_s
                stale = []
                for e, t in state.events.items():
                    if t >= horizon:
                        break
                    stale.append(e)
                if stale:
                    state.events.drop_front(stale)
                    dirty.add(state.page)
            if state.closed:
                stale = []
                for i, (_, forget_at) in state.closed.items():
                    if forget_at >= now:
                        break
                    stale.append(i)
                if stale:
                    state.closed.drop_front(stale)
                    dirty.add(state.page)

    # ---- reading ----------------------------------------------------------------------------------

    def open_items(self, page: str) -> list[OpenItemView]:
        """The page's open items, oldest first (tentatively closed ones are not open)."""
        state = self.pages.get(page)
        if state is None:
            return []
        cfg = self._config(state)
        items = sorted(
            (it for it in state.items.values() if it.tentative is None), key=lambda i: (i.created_at, i.seq, i.item)
        )
        return [
            OpenItemView(it.item, page, KIND_OF_OBJECT[it.object_kind], it.author, it.created_at, self._due(it, cfg))
            for it in items
        ]

    def summary(self, page: str, now: int) -> PageSummary | None:
        state = self._state(page)
        if state is None:
            return None
        cfg = state.config
        oldest: _Item | None = None
        count = 0
        for it in state.items.values():
            if it.tentative is None:
                count += 1
                if oldest is None or (it.created_at, it.seq) < (oldest.created_at, oldest.seq):
                    oldest = it
        if oldest is None:
            return PageSummary(page, 0, None, None, None, None, cfg.deadline.text)
        age = max(0, now - oldest.created_at)
        business = cfg.clock.working_seconds(oldest.created_at, now)
        judged = business if cfg.deadline.working else age
        return PageSummary(
            page, count, oldest.created_at, age, business, judged / cfg.deadline.seconds, cfg.deadline.text
        )

    def snapshot(self, now: int) -> list[PageSummary]:
        """Summaries of the pages that hold open items (page-level series only where there is a backlog)."""
        out = []
        for page, state in self.pages.items():
            if any(it.tentative is None for it in state.items.values()):
                summary = self.summary(page, now)
                if summary is not None:
                    out.append(summary)
        return out

    def item_state(self, page: str, item: str) -> str | None:
        """``open``, ``closing`` (tentatively closed), a closed outcome, or None when unknown."""
        state = self.pages.get(page)
        if state is None:
            return None
        it = state.items.get(item)
        if it is not None:
            return "open" if it.tentative is None else "closing"
        closed = state.closed.get(item)
        return _CLOSED_NAMES[closed[0]] if closed else None

    def open_records(self, now: int) -> Iterable[tuple[ResponseRecord, int, int]]:
        """Each open item as an ``open`` record with its wall and business age at ``now`` (replay output)."""
        for page, state in self.pages.items():
            cfg = self._config(state)
            deadline = cfg.deadline
            for it in state.items.values():
                if it.tentative is not None:
                    continue
                age = max(0, now - it.created_at)
                business = cfg.clock.working_seconds(it.created_at, now)
                breached = (business if deadline.working else age) > deadline.seconds
                yield self._record(page, it, "open", None, cfg, breached=breached), age, business

    def open_ages(self, now: int) -> Iterator[tuple[str, str, str, str, int, int, int, str, bool]]:
        """Each open item at ``now`` as ``(item, page, kind, author, created_at, age_s, business_age_s,
        deadline, breached)``: what :meth:`open_records` says, without building records (replay output)."""
        # Pages share clocks (the registry builds one per distinct setting) and items share seconds:
        # the working time from a creation second to now is computed once per clock.
        memos: dict[int, dict[int, int]] = {}
        for page, state in self.pages.items():
            if not state.items:
                continue
            cfg = self._config(state)
            deadline = cfg.deadline
            working_seconds = cfg.clock.working_seconds
            memo = memos.setdefault(id(cfg.clock), {})
            limit, working, text = deadline.seconds, deadline.working, deadline.text
            for it in state.items.values():
                if it.tentative is not None:
                    continue
                created = it.created_at
                age = now - created
                if age < 0:
                    age = 0
                business = memo.get(created)
                if business is None:
                    business = memo[created] = working_seconds(created, now)
                breached = (business if working else age) > limit
                yield it.item, page, KIND_OF_OBJECT[it.object_kind], it.author, created, age, business, text, breached

    # ---- persistence --------------------------------------------------------------------------------

    def take_dirty(self) -> set[str]:
        """Pages whose saved state (:meth:`dump_page`) changed since the last call, by events or by
        :meth:`tick` (settling, expiry, deadline notices, pruning): write exactly those to the table."""
        dirty, self._dirty = self._dirty, set()
        return dirty

    def drop_page(self, page: str) -> None:
        """Forget a page (its partition moved to another worker); its timers lapse lazily."""
        self.pages.pop(page, None)

    def dump_page(self, page: str) -> bytes:
        """One page's state as compact JSON (the live worker stores it in a faust table keyed by page).

        Self-contained (:meth:`load_page` restores the page from it alone) and cheap to repeat: only
        the blocks of items and the log entries that changed since the last dump are encoded anew.
        """
        if self.keep_event_ids:
            raise ValueError("an engine that keeps event ids verbatim (a replay's) cannot be persisted")
        state = self.pages.get(page)
        if state is None:
            return b"null"
        # The cached pieces are joined once, into the value itself: a big page is copied once.
        parts = [b'{"v":2,"items":[']
        _interleave(parts, state.encoded_items())
        parts.append(b'],"closed":')
        state.closed.encode_into(parts)
        parts.append(b',"held":')
        parts.append(orjson.dumps(state.held) if state.held else b"{}")
        parts.append(b',"replies":')
        parts.append(state.encoded_replies())
        parts.append(b',"events":')
        state.events.encode_into(parts)
        if state.overrides:
            parts.append(b',"overrides":')
            parts.append(orjson.dumps(state.overrides))
        parts.append(b"}")
        return b"".join(parts)

    def load_page(self, page: str, data: bytes) -> None:
        """Restore one page's state from :meth:`dump_page` output, re-arming its timers.

        Reads version 2 and the version 1 of earlier releases (event ids kept verbatim).
        """
        if self.keep_event_ids:
            raise ValueError("an engine that keeps event ids verbatim (a replay's) cannot be persisted")
        raw = orjson.loads(data)
        self.pages.pop(page, None)
        if raw is None:
            return
        version = raw.get("v")
        if version not in (1, 2):
            raise ValueError(f"page state of {page}: unknown version {version!r}")
        page = sys.intern(page)
        state = PageState(page)
        self.pages[page] = state
        retention = self.retention_s
        for row in raw["items"]:
            it = _Item(*row[:11]) if version == 1 else _unrow(row)
            siblings = state.by_object.get(it.object_id)
            if siblings:
                it.object_id = siblings.object_id  # one string for every item on the object
            it.answers = [tuple(a) for a in row[11]] if row[11] else None  # type: ignore[misc]
            it.life = [tuple(x) for x in row[12]] if row[12] else None  # type: ignore[misc]
            state.add_item(it, siblings)
            if it.reported or not self.watch_deadlines:
                heapq.heappush(self._expiry_heap, (it.created_at + retention, page, it.item))
            else:
                heapq.heappush(self._due_heap, (it.created_at, page, it.item))
            self._reevaluate(state, it)
        state.closed = _Log({k: (v[0], v[1]) for k, v in raw["closed"].items()})
        state.held = {k: [tuple(h) for h in v] for k, v in raw["held"].items()}  # type: ignore[misc]
        for row in raw["replies"]:
            reply = _Reply(*row)
            state.replies.setdefault(reply.object_id, []).append(reply)
            state.reply_ids.add(reply.item)
        state.overrides = raw.get("overrides", {})
        if version == 1:
            state.events = _Log({event_key(k): t for k, t in raw["events"].items()})
        else:
            state.events = _Log({int(k): t for k, t in raw["events"].items()})
