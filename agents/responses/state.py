"""What the response engine holds about a page, and how a page is saved and restored.

A page's state (:class:`PageState`) is its open (or tentatively closed) items, the closed ones it
still remembers, the page replies and the deletions it keeps for the late window, and the ids of the
events it has seen; the live worker saves it in pieces, each under its own key of a faust table
(:meth:`PageState.take_pieces`, :func:`load_pieces`; docs/data-flow.md, "How state survives").

Cost of persistence
-------------------
The worker saves what changed in each changed page after each batch, so saving costs what changed,
not the page's size: open items are kept in blocks of :data:`BLOCK` whose JSON is cached until one of
their items changes, the dedupe memory and the closed items (which grow at one end and are pruned
from the other) in chunks of :data:`CHUNK` entries (:class:`Log`), the kept replies per object.
:meth:`PageState.take_pieces` gives the blocks, chunks and objects that changed since it was last
called, and the ones that went: the live worker writes each under its own key (docs/data-flow.md,
"How state survives"), and :func:`load_pieces` restores the page from them. :func:`dump_page` joins
the same cached encodings into one self-contained value (:func:`load_page` reads it, and the values
earlier releases saved). The engine tells the page what changed through one helper
(``ResponseEngine._touched``).

Redeliveries are recognised by a 60-bit digest of the event id (:func:`event_key`), not the id itself:
VK's ids are 40 hex characters (~90 bytes as a str, kept for a day). Among n distinct ids of one page
within the dedupe horizon (a day) some two collide with probability about n²/2⁶¹ (n = 10⁴, a very busy
page: 4·10⁻¹¹; n = 10⁶: 4·10⁻⁷), and a collision would drop one event as a duplicate. The dedupe
memory is per page, so the page is part of the key. A replay, which never persists its engine and
holds every id anyway, dedupes by the ids themselves (``keep_event_ids``).
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, NamedTuple

import orjson

from otklik.agents.responses.rules import PageConfigLike, Verdict


class Item:
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
        "version",
        "written",
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
        # (received_at, DELETE or RESTORE, deleted_by or "") of its deletions / restorations.
        self.life: list[tuple[int, int, str]] | None = None
        self.tentative: Verdict | None = None  # its outcome while tentatively closed
        self.settle_at = 0
        self.block: Block = _NO_BLOCK  # the page-dump block holding its encoded row
        # Triage found nothing to answer (the reason), or None. Such an item is closed at once as
        # no_answer_needed, not judged; it stays held, dormant, until the retention horizon, with the
        # page replies that answer it, so that a correction can re-judge it from its original times.
        # Once its record is out, ``reported`` is set.
        self.excluded: str | None = None
        # Records written about it so far: its next record is version + 1 (docs/data-flow.md,
        # "Consuming otklik.responses"). Kept across a closure and a restoration that reopens it.
        self.version = 0
        # Closed by a deletion (withdrawn, moderated) and its record written: it stays held, dormant,
        # until the retention horizon, so that a page reply written before the deletion and arriving
        # late still answers it, and a restoration reopens it
        # (docs/responses.md, "Order beyond the late window"). ``tentative`` is then the written verdict.
        self.written = False


def closed_version(entry: tuple[int, ...]) -> int:
    """The version of a closed item's last record, from its entry in ``PageState.closed``:
    ``(code, forget_at)`` when it is 1 (every closed item has had a record), else
    ``(code, forget_at, version)``. States saved before versions existed say 1 too."""
    return entry[2] if len(entry) > 2 else 1


def due_at(it: Item, cfg: PageConfigLike) -> int:
    """The instant ``it`` is due by its page's deadline.

    Kept once known, in memory only: a cache, not state (a dump says -1; computed again after a
    restart), so computing it changes no saved state and dirties no page.
    """
    if it.due < 0:
        it.due = cfg.deadline.due_at(cfg.clock, it.created_at)
    return it.due


class Reply(NamedTuple):
    """A page reply, kept for the late window so that a late item can still be matched; an orphan
    (``matched`` 0: it answered no item in its window, and could answer one) is kept until the
    retention horizon (docs/responses.md, "Order beyond the late window")."""

    created_at: int
    seq: int
    received_at: int
    item: str
    object_id: str
    thread_root: str | None
    reply_to_item: str | None
    reply_to_author: str | None
    responder: str
    # 1: it answered an item within its window, or can answer none, or the comment it replies to is
    # known; forgotten after the window. 0: an orphan. Replies saved before this field: 0.
    matched: int = 0


class Siblings:
    """The open items on one object, with the object's id: the one string they all share, at hand
    without reaching into another item."""

    __slots__ = ("items", "object_id")

    def __init__(self, object_id: str, first: Item) -> None:
        self.object_id = object_id
        self.items = [first]


class Block:
    """Up to :data:`BLOCK` consecutive open items of a page and their cached JSON rows (None: stale).
    ``slot`` numbers it within its page, in order: the live worker saves it under its own key."""

    __slots__ = ("blob", "items", "slot")

    def __init__(self, slot: int = -1) -> None:
        self.items: list[Item] = []
        self.blob: bytes | None = None
        self.slot = slot


# Items per cached block of a page dump: a change re-encodes its block, and the live worker writes
# that block (its own key); a dump joins the page's blocks. Small, since a change costs a block's rows
# to encode and to write; large enough that a block's own overhead, in memory and as a key, stays small.
BLOCK = 8
_NO_BLOCK = Block()  # placeholder until the item joins its page


def _row(it: Item) -> list[Any]:
    """An open item as stored in a page dump (version 2): version 1's row with what is implied left
    out, since the table holds a copy of every row and so does the dump cache. ``0`` for the object
    id when the item id is ``<object id>:<something>``; ``0`` for the thread root when it is the item
    itself; ``received_at`` as its delay after ``created_at``; ``reported`` as flags, 1 for
    ``reported`` and 2 for ``written`` (rows saved before ``written`` say 0 or 1); the deadline
    instant, a cache, as -1 (not known). Optional tail: the triage exclusion (or None), then the
    item's version when it is not 0 (rows saved before versions existed have neither)."""
    item = it.item
    object_id: str | int = it.object_id
    if item.rpartition(":")[0] == object_id:
        object_id = 0
    thread_root: str | int | None = it.thread_root
    if thread_root == item:
        thread_root = 0
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
        (1 if it.reported else 0) | (2 if it.written else 0),
        it.answers,
        it.life,
    ]
    if it.version:
        row.append(it.excluded)
        row.append(it.version)
    elif it.excluded is not None:
        row.append(it.excluded)
    return row


def _unrow(row: list[Any]) -> Item:
    """The inverse of :func:`_row` (version 2)."""
    item = row[0]
    if row[1] == 0:
        row[1] = item.rpartition(":")[0]
    if row[6] == 0:
        row[6] = item
    created = row[4]
    row[7] = created if row[7] == 0 else created + row[7]
    flags = row[10]
    row[10] = bool(flags & 1)
    it = Item(*row[:11])
    it.written = bool(flags & 2)
    if len(row) > 13:
        it.excluded = row[13]
        if len(row) > 14:
            it.version = row[14]
    return it


def _block_blob(block: Block) -> bytes:
    blob = block.blob
    if blob is None:
        blob = block.blob = orjson.dumps([_row(it) for it in block.items])[1:-1]
    return blob


# Entries per chunk of a Log's cached encoding. The live worker saves each chunk under its own key, and
# the last one again at each save until it is full: small, so that a save writes little.
CHUNK = 64


def _encode_entries(entries: dict[Any, Any]) -> bytes:
    """``"key":value,...`` without the braces (int keys as JSON strings)."""
    return orjson.dumps(entries, option=orjson.OPT_NON_STR_KEYS)[1:-1]


class _Chunk:
    """Up to :data:`CHUNK` consecutive entries of a :class:`Log`: how many, their encoding (None: to
    encode again), and ``slot``, which numbers it within its log, in order."""

    __slots__ = ("blob", "count", "slot")

    def __init__(self, count: int, blob: bytes | None, slot: int) -> None:
        self.count = count
        self.blob = blob
        self.slot = slot


class Log(dict):  # type: ignore[type-arg]
    """A mapping that grows at its end and is pruned from its front (the dedupe memory, closed items),
    with a cached JSON encoding: chunks of consecutive entries plus the entries added since the last
    encoding. Reads are plain dict reads; writes go through :meth:`add`, :meth:`discard` and
    :meth:`drop_front`, which keep the invariant *entries in order = chunks' entries + tail*, and
    remember which chunks changed or went (:meth:`take_pieces`).

    Nothing is cached until the first encoding: a replay never dumps and pays nothing for it.
    """

    __slots__ = ("_chunks", "_dirty", "_dropped", "_next", "_tail")

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._chunks: list[_Chunk] | None = None
        self._tail: dict[Any, Any] | None = None
        self._next = 0  # slot of the next new chunk
        self._dirty: dict[_Chunk, None] = {}  # chunks encoded anew since the last take_pieces
        self._dropped: list[int] = []  # slots of the chunks gone since then

    def add(self, key: Any, value: Any) -> None:
        if key in self:
            self.discard(key)
        dict.__setitem__(self, key, value)
        if self._tail is not None:
            self._tail[key] = value

    def discard(self, key: Any) -> None:
        if key not in self:
            return
        tail = self._tail
        if tail is not None:
            if key in tail:
                del tail[key]
            else:  # inside a chunk (a restored item: rare): found by its position, a walk over the log
                position = 0
                for k in self:
                    if k == key:
                        break
                    position += 1
                self._shrink(position)
        dict.__delitem__(self, key)

    def _shrink(self, position: int) -> None:
        """The entry at ``position`` (inside a chunk) is going: its chunk is encoded again, or goes."""
        chunks = self._chunks
        assert chunks is not None
        start = 0
        for n, chunk in enumerate(chunks):
            if position < start + chunk.count:
                chunk.count -= 1
                if chunk.count:
                    self._stale(chunk)
                else:
                    del chunks[n]
                    self._drop(chunk)
                return
            start += chunk.count

    def _stale(self, chunk: _Chunk) -> None:
        chunk.blob = None
        self._dirty[chunk] = None

    def _drop(self, chunk: _Chunk) -> None:
        self._dirty.pop(chunk, None)
        self._dropped.append(chunk.slot)

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
            if first.count <= n:
                n -= first.count
                del chunks[0]
                self._drop(first)
            else:
                first.count -= n
                self._stale(first)  # its remaining entries are encoded again
                n = 0
        if n:
            tail = self._tail
            for key in keys[len(keys) - n :]:
                del tail[key]  # type: ignore[index,union-attr]

    def _fold(self) -> list[_Chunk]:
        """Encode what changed: stale chunks again, the tail into the last chunk and new ones."""
        chunks = self._chunks
        if chunks is None:
            chunks = self._chunks = []
            self._tail = dict(self)
        if any(chunk.blob is None for chunk in self._dirty):
            start = 0
            for chunk in chunks:  # a walk over the chunks only when one is stale (after a prune)
                if chunk.blob is None:
                    chunk.blob = _encode_entries(dict(islice(self.items(), start, start + chunk.count)))
                start += chunk.count
        tail = self._tail
        if tail:
            entries = list(tail.items())
            done = 0
            if chunks and chunks[-1].count < CHUNK:
                last = chunks[-1]
                room = entries[: CHUNK - last.count]
                last.blob = bytes(last.blob or b"") + b"," + _encode_entries(dict(room))
                last.count += len(room)
                self._dirty[last] = None
                done = len(room)
            while done < len(entries):
                part = entries[done : done + CHUNK]
                chunk = _Chunk(len(part), _encode_entries(dict(part)), self._next)
                self._next += 1
                chunks.append(chunk)
                self._dirty[chunk] = None
                done += len(part)
            self._tail = {}
        return chunks

    def encode(self) -> bytes:
        """The mapping as a JSON object; costs the entries added or pruned since the last call."""
        parts: list[bytes] = []
        self.encode_into(parts)
        return b"".join(parts)

    def encode_into(self, parts: list[bytes]) -> None:
        """Append the pieces of :meth:`encode` to ``parts`` (one join for the whole dump, not one each)."""
        chunks = self._fold()
        parts.append(b"{")
        _interleave(parts, [bytes(chunk.blob or b"") for chunk in chunks])
        parts.append(b"}")

    def take_pieces(self, prefix: str, out: list[tuple[str, bytes]], dropped: list[str]) -> None:
        """Append the chunks encoded anew since the last call to ``out`` as (``prefix`` + slot, entries
        without braces), and the slots of the chunks gone to ``dropped``."""
        self._fold()
        for chunk in self._dirty:
            out.append((prefix + str(chunk.slot), bytes(chunk.blob or b"")))
        self._dirty = {}
        for slot in self._dropped:
            dropped.append(prefix + str(slot))
        self._dropped = []

    def forget_pieces(self) -> None:
        """Forget the chunks: the next encoding makes new ones, with new slots, of every entry."""
        self._chunks = None
        self._tail = None
        self._dirty = {}
        self._dropped = []

    @staticmethod
    def restore(chunks: list[tuple[int, int, bytes]], entries: dict[Any, Any]) -> Log:
        """A log holding ``entries`` (in order), saved as ``chunks``: (slot, entry count, encoding) in
        slot order, together the encoding of ``entries``; nothing is to be written again."""
        log = Log(entries)
        log._chunks = [_Chunk(count, blob, slot) for slot, count, blob in chunks]
        log._tail = {}
        log._next = chunks[-1][0] + 1 if chunks else 0
        return log


def _interleave(parts: list[bytes], pieces: list[bytes]) -> None:
    """Append ``pieces`` to ``parts`` with commas between them."""
    if pieces:
        parts.append(pieces[0])
        for piece in islice(pieces, 1, None):
            parts.append(b",")
            parts.append(piece)


def event_key(event_id: str) -> int:
    """A stable 60-bit digest of a platform event id (see the module doc for why this is enough).

    BLAKE2s over the whole id, not a cheaper prefix or fold: ids that share a structure (counters,
    prefixes) must stay apart as well as random-looking ones. Stable across processes, unlike
    ``hash``, because page dumps keep it.
    """
    return int.from_bytes(hashlib.blake2s(event_id.encode(), digest_size=8).digest(), "little") & _KEY_MASK


# 60 bits: a Python int of two 30-bit digits (32 bytes, a 64-bit one takes 40).
_KEY_MASK = (1 << 60) - 1


@dataclass(slots=True)
class PageState:
    """Everything the engine knows about one page; (de)serialised on its own."""

    page: str
    items: dict[str, Item] = field(default_factory=dict)
    by_object: dict[str, Siblings] = field(default_factory=dict)
    # item id -> (outcome code, forget_at[, version]): closed items remembered for the retention horizon
    # (the version of their last record when it is not 1, see closed_version).
    closed: Log = field(default_factory=Log)
    # item id not seen yet -> held deletions / restorations (received_at, code, deleted_by).
    held: dict[str, list[tuple[int, int, str]]] = field(default_factory=dict)
    # object id -> page replies received within the late window.
    replies: dict[str, list[Reply]] = field(default_factory=dict)
    replies_blob: bytes | None = None  # their encoding; None when they changed since the last dump
    reply_ids: set[str] = field(default_factory=set)
    # event_key(event_id) -> received_at, for dedupe of redeliveries.
    events: Log = field(default_factory=Log)
    # The open items in dump order, in blocks whose encoding is cached (see "Cost of persistence"),
    # as an ordered set; None until the page is first dumped (a replay never dumps and pays nothing).
    blocks: dict[Block, None] | None = None
    next_slot: int = 0  # of the next new block
    # What changed since the last take_pieces: blocks to write, slots of pieces gone, the last "s" piece.
    dirty_blocks: dict[Block, None] = field(default_factory=dict)
    dirty_replies: set[str] = field(default_factory=set)  # objects whose kept replies changed
    dropped: list[str] = field(default_factory=list)
    saved_rest: bytes | None = None
    config: Any = None
    # From config, looked up once per event otherwise.
    administrators: frozenset[str] = frozenset()
    bot_replies_count: bool = False
    triage: bool = False
    # item id -> [needs_answer, by, at, note, previous decision]: corrections of triage, kept for the
    # retention horizon (an item that arrives after its correction, as in a replay, obeys it too).
    overrides: dict[str, list[Any]] = field(default_factory=dict)
    # VK managers: user -> [[since, until or None], ...] (docs/responses.md, "Page replies"); few, kept
    # whole (a reply is judged by the role its author held at its own time, however late it arrives).
    managers: dict[str, list[list[Any]]] = field(default_factory=dict)

    def add_item(self, it: Item, siblings: Siblings | None) -> None:
        """Add an open item; ``siblings`` is ``by_object.get(it.object_id)`` (the caller has it)."""
        self.items[it.item] = it
        if siblings is None:
            self.by_object[it.object_id] = Siblings(it.object_id, it)
        else:
            siblings.items.append(it)
        if self.blocks is not None:
            self._place(it)

    def _place(self, it: Item) -> None:
        blocks = self.blocks
        assert blocks is not None
        block = next(reversed(blocks)) if blocks else _NO_BLOCK
        if block is _NO_BLOCK or len(block.items) >= BLOCK:
            block = Block(self.next_slot)
            self.next_slot += 1
            blocks[block] = None
        block.items.append(it)
        block.blob = None
        self.dirty_blocks[block] = None
        it.block = block

    def remove_item(self, it: Item) -> None:
        del self.items[it.item]
        siblings = self.by_object.get(it.object_id)
        if siblings is not None:
            siblings.items.remove(it)
            if not siblings.items:
                del self.by_object[it.object_id]
        block = it.block
        if block is not _NO_BLOCK:
            it.block = _NO_BLOCK  # a later change to it must not mark the block it left
            block.items.remove(it)
            block.blob = None
            if block.items:
                self.dirty_blocks[block] = None
            else:
                del self.blocks[block]  # type: ignore[union-attr]
                self.dirty_blocks.pop(block, None)
                self.dropped.append("i" + str(block.slot))

    def changed(self, it: Item | None, replies: str | None) -> None:
        """Forget the cached encodings that ``it``'s row and the replies kept on the object
        ``replies`` had."""
        if it is not None:
            block = it.block
            if block is not _NO_BLOCK:
                block.blob = None
                self.dirty_blocks[block] = None
        if replies is not None:
            self.replies_blob = None
            if self.blocks is not None:  # saved at least once (a replay never is)
                self.dirty_replies.add(replies)

    def encoded_replies(self) -> bytes:
        blob = self.replies_blob
        if blob is None:
            blob = self.replies_blob = orjson.dumps([list(r) for rs in self.replies.values() for r in rs])
        return blob

    def encoded_items(self) -> list[bytes]:
        """The open items' rows by block (each comma-separated inside), from the cached encodings."""
        if self.blocks is None:
            self.blocks = {}
            for it in self.items.values():
                self._place(it)
        return [_block_blob(block) for block in self.blocks]

    def encoded_rest(self) -> bytes:
        """Held deletions, corrections and managers (few: the late window's, people's, the page's)."""
        parts = [b'{"held":', orjson.dumps(self.held) if self.held else b"{}"]
        if self.overrides:
            parts.append(b',"overrides":')
            parts.append(orjson.dumps(self.overrides))
        if self.managers:
            parts.append(b',"managers":')
            parts.append(orjson.dumps(self.managers))
        parts.append(b"}")
        return b"".join(parts)

    def forget_pieces(self) -> None:
        """Forget which pieces were saved: the next :meth:`take_pieces` gives every piece, new slots
        for the open items' blocks."""
        for it in self.items.values():
            it.block = _NO_BLOCK
        self.blocks = None
        self.dirty_blocks = {}
        self.dirty_replies = set()
        self.dropped = []
        self.saved_rest = None
        self.closed.forget_pieces()
        self.events.forget_pieces()

    def take_pieces(self) -> tuple[list[tuple[str, bytes]], list[str]]:
        """What changed since the last call, as pieces the live worker saves under their own keys
        (docs/data-flow.md, "How state survives"): (slot, bytes) to write, and the slots gone.

        Slots: ``i<n>`` a block of open items (its rows, comma-separated), ``c<n>`` and ``e<n>`` a
        chunk of the closed items and of the event digests (their entries, without braces),
        ``r<object id>`` the page replies kept on an object (a list of rows), ``s`` the rest
        (:meth:`encoded_rest`). Costs what changed, not the page's size; the first call on a page
        loaded from a whole-page value (or never saved) gives every piece.
        """
        out: list[tuple[str, bytes]] = []
        if self.blocks is None:
            self.encoded_items()
            self.dirty_replies = set(self.replies)
        for object_id in self.dirty_replies:
            kept = self.replies.get(object_id)
            if kept:
                out.append(("r" + object_id, orjson.dumps([list(r) for r in kept])))
            else:
                self.dropped.append("r" + object_id)
        self.dirty_replies = set()
        for block in self.dirty_blocks:
            out.append(("i" + str(block.slot), _block_blob(block)))
        self.dirty_blocks = {}
        dropped, self.dropped = self.dropped, []
        self.closed.take_pieces("c", out, dropped)
        self.events.take_pieces("e", out, dropped)
        rest = self.encoded_rest()
        if rest != self.saved_rest:
            out.append(("s", rest))
            self.saved_rest = rest
        return out, dropped


def dump_page(state: PageState) -> bytes:
    """One page's state as compact JSON (the live worker stores it in a faust table keyed by page).

    Self-contained (:func:`load_page` restores the page from it alone) and cheap to repeat: only the
    blocks of items and the log entries that changed since the last dump are encoded anew.
    """
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
    if state.managers:
        parts.append(b',"managers":')
        parts.append(orjson.dumps(state.managers))
    parts.append(b"}")
    return b"".join(parts)


def load_page(page: str, raw: dict[str, Any]) -> PageState:
    """The page :func:`dump_page` saved (``raw``: its output, parsed), without timers or outcomes.

    Reads version 2 and the version 1 of earlier releases (event ids kept verbatim).
    """
    version = raw.get("v")
    if version not in (1, 2):
        raise ValueError(f"page state of {page}: unknown version {version!r}")
    state = PageState(sys.intern(page))
    for row in raw["items"]:
        _load_item(state, row, version)
    state.closed = Log({k: tuple(v) for k, v in raw["closed"].items()})
    _load_rest(state, raw)
    if version == 1:
        state.events = Log({event_key(k): t for k, t in raw["events"].items()})
    else:
        state.events = Log({int(k): t for k, t in raw["events"].items()})
    return state


def _load_item(state: PageState, row: list[Any], version: int) -> Item:
    """Add the open item of a saved ``row`` (of that dump version) to ``state``."""
    it = Item(*row[:11]) if version == 1 else _unrow(row)
    siblings = state.by_object.get(it.object_id)
    if siblings is not None:
        it.object_id = siblings.object_id  # one string for every item on the object
    it.answers = [tuple(a) for a in row[11]] if row[11] else None  # type: ignore[misc]
    it.life = [tuple(x) for x in row[12]] if row[12] else None  # type: ignore[misc]
    state.add_item(it, siblings)
    return it


def _load_rest(state: PageState, raw: dict[str, Any]) -> None:
    """Held deletions, kept replies, corrections and managers from a dump or an ``s`` piece."""
    state.held = {k: [tuple(h) for h in v] for k, v in raw["held"].items()}  # type: ignore[misc]
    for row in raw["replies"]:
        reply = Reply(*row)
        state.replies.setdefault(reply.object_id, []).append(reply)
        state.reply_ids.add(reply.item)
    state.overrides = raw.get("overrides", {})
    state.managers = raw.get("managers", {})  # absent from states saved before managers were kept


def load_pieces(page: str, pieces: list[tuple[str, bytes]]) -> PageState:
    """The page whose pieces :meth:`PageState.take_pieces` gave (each slot's last value, any order),
    without timers or outcomes. The encodings stay cached as loaded: nothing is written again until
    it changes, so the first save after a restart costs what changed, as any other."""
    state = PageState(sys.intern(page))
    blocks: list[tuple[int, bytes]] = []
    logs: dict[str, list[tuple[int, bytes]]] = {"c": [], "e": []}
    rest = b'{"held":{}}'
    replies: list[Any] = []
    for slot, value in pieces:
        kind = slot[:1]
        if kind == "i":
            blocks.append((int(slot[1:]), value))
        elif kind == "r":
            replies.extend(orjson.loads(value))
        elif kind in logs and slot[1:].isdigit():
            logs[kind].append((int(slot[1:]), value))
        elif slot == "s":
            rest = value
        else:
            raise ValueError(f"page state of {page}: unknown piece {slot!r}")
    blocks.sort()
    loaded: dict[Block, None] = {}
    for number, blob in blocks:
        block = Block(number)
        for row in orjson.loads(b"[" + blob + b"]"):
            it = _load_item(state, row, 2)  # blocks are None yet: the item is not placed
            it.block = block
            block.items.append(it)
        block.blob = blob
        loaded[block] = None
    state.blocks = loaded
    state.next_slot = blocks[-1][0] + 1 if blocks else 0
    for kind, chunks in logs.items():
        chunks.sort()
        entries: dict[Any, Any] = {}
        saved: list[tuple[int, int, bytes]] = []
        for number, blob in chunks:
            part = orjson.loads(b"{" + blob + b"}")
            if kind == "c":
                entries.update((k, tuple(v)) for k, v in part.items())
            else:
                entries.update((int(k), t) for k, t in part.items())
            saved.append((number, len(part), blob))
        if kind == "c":
            state.closed = Log.restore(saved, entries)
        else:
            state.events = Log.restore(saved, entries)
    raw = orjson.loads(rest)
    raw["replies"] = replies
    _load_rest(state, raw)
    state.saved_rest = rest
    return state
