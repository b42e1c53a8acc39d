"""A core's pages saved as pieces, each under its own key of one table, only what changed.

A core (the response engine, the moderation watch) cuts each page's state into pieces (a block of
open items, a chunk of a log, the replies kept on one object, ...), each named by a *slot*, and says
after each batch which pieces changed and which went (``page_pieces``). What a batch writes therefore
follows what it changed, not the page's size: a neglected page with 100,000 open items costs what a
quiet one does, and no value grows past a bound. A page is saved as one value instead while that
costs less (:meth:`PieceTable.one_value`). Layout of the table (see docs/data-flow.md,
"How state survives"):

``<page>\\0<slot>\\0a``, ``...\\0b``  a piece's value, written to the two keys in turn, as
                                ``<serial>\\0<bytes>``; a piece over :data:`PIECE_MAX` is cut into
                                parts (``a``, ``a1``, ``a2``, ... headed ``<serial>/<part>/<parts>``);
``<page>\\0``                    the page's head, written after its pieces: ``{"v": 3, "serial": E,
                                "dropped": [slots]}``, E the last serial of the save it concludes;
``<page>``                       a whole page as saved before pieces existed (loaded, then written
                                again as pieces and removed).

A save writes each changed piece under a new serial to the key its previous value is *not* under,
then the head, then tombstones for the pieces that went. All keys of a page share its partition, and
the producer keeps one partition's records in order, so a crash leaves a prefix of that sequence: a
loader keeps, for each slot, the value with the highest serial not above the head's (the head's
``dropped`` slots excepted), and that is the page as of its last complete save, never a mix of two;
a value written after it only replaced one that an earlier save had already superseded. Writing in
turn to two keys rather than to a new key each time lets compaction drop old values without a
tombstone for each.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any, Protocol

import orjson

log = logging.getLogger("otklik.agents")

SEP = b"\x00"
FORMAT = 3  # the head's "v": 1 and 2 were whole-page values
# The largest value written under one key: a bigger piece is cut into parts (none of otklik's pieces
# is meant to come near it; the cut only guarantees that no state is ever refused for its size).
PIECE_MAX = 512 * 1024
# A page is saved as one value when that costs less than its changed pieces, each a record, would: when
# it is small (entries of its state: open items, closed ones, event digests, ...), or when a batch changed
# much of it (a busy page). A value costs its bytes before compression (encoding and compressing them);
# a record's own cost (the producer's, faust's, the broker's) is counted as RECORD_COST bytes on top of
# a piece's. The bounds are not the same both ways (to pieces past WHOLE_UP_TO entries, or when the
# value would cost over twice the pieces; back below half of WHOLE_UP_TO, or when it would cost under
# half of them), so that a page does not go to and fro.
WHOLE_UP_TO = 512
RECORD_COST = 4096


class PieceCore(Protocol):
    """What a core offers to be saved in pieces."""

    def take_dirty(self) -> Iterable[str]: ...

    def page_size(self, page: str) -> int | None: ...

    def dump_page(self, page: str) -> bytes: ...

    def page_pieces(self, page: str, full: bool = False) -> tuple[list[tuple[str, bytes]], list[str]] | None: ...

    def load_pieces(self, page: str, pieces: list[tuple[str, bytes]]) -> None: ...

    def load_page(self, page: str, data: bytes) -> None: ...


def head_key(page: str) -> bytes:
    return page.encode() + SEP


def piece_key(page: str, slot: str, side: int, part: int = 0) -> bytes:
    """The key of part ``part`` of ``slot``'s value on side 0 (``a``) or 1 (``b``)."""
    tail = _SIDES[side] + (str(part) if part else "")
    return SEP.join((page.encode(), slot.encode(), tail.encode()))


_SIDES = ("a", "b")


def page_of(key: bytes) -> bytes:
    """The page part of any key of the table (its partition follows it alone)."""
    return key.partition(SEP)[0]


class PieceTable:
    """Saves and loads a core's pages in ``table`` (faust's table, or any mapping in tests).

    It remembers, per page, each live slot's serial, the side its value is on and how many parts each
    side holds (to know which key to write next and which to remove), and the page's last serial;
    :meth:`load` rebuilds that from the table.
    """

    def __init__(self, table: MutableMapping[bytes, Any], unpack: Any = None, pack: Any = None) -> None:
        self.table = table
        self.unpack_legacy = unpack or (lambda value: value)  # a whole-page value's decoding
        self.pack = pack or (lambda value: value)  # and its encoding (compressed when big)
        # page -> slot -> [serial, side, parts on side a, parts on side b, bytes of its value]
        self.slots: dict[str, dict[str, list[int]]] = {}
        self.serials: dict[str, int] = {}  # page -> last serial used
        self.in_pieces: dict[str, bool] = {}  # page -> saved as pieces (True) or whole (False)
        # page -> bytes of its last value before compression, or of its pieces together
        self.whole_bytes: dict[str, int] = {}

    # ---- saving ---------------------------------------------------------------------------------

    def save(self, core: PieceCore, keep: Callable[[str], bool] | None = None) -> None:
        """Write what changed in each page the core says changed (``keep``: only the pages it accepts)."""
        for page in core.take_dirty():
            if keep is None or keep(page):
                self.save_page(core, page)

    def save_page(self, core: PieceCore, page: str) -> None:
        """Save what changed in ``page``: as pieces, or as one value when that costs less (a small page,
        or a busy one that changed much of itself); either way about what changed, not the page's size
        (docs/data-flow.md, "How state survives")."""
        size = core.page_size(page)
        if size is None:
            self._remove_page(page)
            return
        was = self.in_pieces.get(page)
        changes = core.page_pieces(page)  # what changed since the last save, whichever way it went
        assert changes is not None
        pieces, dropped = changes
        cost = sum(len(value) for _, value in pieces) + RECORD_COST * (len(pieces) + len(dropped))
        if self.one_value(size, was, self.whole_bytes.get(page), cost):
            dump = core.dump_page(page)
            value = self.pack(dump)
            if len(value) <= PIECE_MAX:
                self._save_whole(page, value, len(dump), was)
                return
        if not was:  # every piece: none is saved yet
            changes = core.page_pieces(page, full=True)
            assert changes is not None
            pieces, dropped = changes
        self._save_pieces(page, pieces, dropped, was)

    @staticmethod
    def one_value(size: int, was: bool | None, whole: int | None, cost: int) -> bool:
        """Whether to save a page of ``size`` entries as one value (``whole``: the bytes of its last
        value, or of its pieces together; None when not known) rather than pieces costing ``cost``;
        ``was``: whether it is in pieces now (None: not saved yet)."""
        if was:
            return size <= WHOLE_UP_TO // 2 or (whole is not None and 2 * whole < cost)
        return size <= WHOLE_UP_TO or whole is None or whole <= 2 * cost

    def _save_pieces(self, page: str, pieces: list[tuple[str, bytes]], dropped: list[str], was: bool | None) -> None:
        self.in_pieces[page] = True
        live = self.slots.setdefault(page, {})
        total = self.whole_bytes.get(page, 0) if was else 0
        serial = self.serials.get(page, 0)
        stale: list[tuple[str, int, int, int]] = []  # (slot, side, from part, to part) to remove
        for slot, value in pieces:
            serial += 1
            known = live.get(slot)
            if known is None:
                known = live[slot] = [0, 1, 0, 0, 0]
            side = 1 - known[1]
            parts = self._put(page, slot, side, serial, value)
            if known[2 + side] > parts:  # parts of an earlier, bigger value on this side
                stale.append((slot, side, parts, known[2 + side]))
            total += len(value) - known[4]
            known[0], known[1], known[2 + side], known[4] = serial, side, parts, len(value)
        gone: list[str] = []
        for slot in dropped:
            known = live.pop(slot, None)
            if known is not None:
                gone.append(slot)
                total -= known[4]
                stale.append((slot, 0, 0, known[2]))
                stale.append((slot, 1, 0, known[3]))
        self.whole_bytes[page] = total
        if not pieces and not gone:
            return
        serial += 1
        self.serials[page] = serial
        self.table[head_key(page)] = orjson.dumps({"v": FORMAT, "serial": serial, "dropped": gone})
        if was is not True:
            self._delete(page.encode())  # its whole value, now older than the head
        for slot, side, first, end in stale:
            for part in range(first, end):
                self._delete(piece_key(page, slot, side, part))

    def _save_whole(self, page: str, value: bytes, size: int, was: bool | None) -> None:
        """Save a page as one value under its id (``size``: its bytes before compression); when it was
        in pieces, they go after it (the head first: a loader prefers a page's pieces while its head
        is there)."""
        self.table[page.encode()] = value
        self.in_pieces[page] = False
        self.whole_bytes[page] = size
        if was:
            self._remove_pieces(page)

    def _put(self, page: str, slot: str, side: int, serial: int, value: bytes) -> int:
        if len(value) <= PIECE_MAX:
            self.table[piece_key(page, slot, side)] = b"%d\x00" % serial + value
            return 1
        parts = -(-len(value) // PIECE_MAX)
        for part in range(parts):
            cut = value[part * PIECE_MAX : (part + 1) * PIECE_MAX]
            self.table[piece_key(page, slot, side, part)] = b"%d/%d/%d\x00" % (serial, part, parts) + cut
        return parts

    def _delete(self, key: bytes) -> None:
        if key in self.table:
            del self.table[key]

    def _remove_page(self, page: str) -> None:
        """The core holds the page no more."""
        self._delete(page.encode())
        self._remove_pieces(page)
        self.serials.pop(page, None)
        self.in_pieces.pop(page, None)
        self.whole_bytes.pop(page, None)

    def _remove_pieces(self, page: str) -> None:
        """The page's pieces, the head first (pieces without a head are garbage to a loader)."""
        live = self.slots.pop(page, None)
        self._delete(head_key(page))
        for slot, known in (live or {}).items():
            for side in (0, 1):
                for part in range(known[2 + side]):
                    self._delete(piece_key(page, slot, side, part))

    # ---- loading --------------------------------------------------------------------------------

    def load(self, core: PieceCore, keep: Callable[[bytes], bool] | None = None) -> int:
        """Load every page the table holds into ``core`` (a fresh one) and forget what this object
        knew. A page is loaded from its pieces when it has a head, else from its whole value (a small
        page's, or any page's as earlier releases saved it); what no page uses (a save cut short by a
        crash) is removed. Returns the number of pages loaded. Costs the table's size: the live
        pieces and values, and at most one older value per piece."""
        self.slots, self.serials, self.in_pieces, self.whole_bytes = {}, {}, {}, {}
        heads: dict[bytes, bytes] = {}
        legacy: dict[bytes, bytes] = {}
        found: dict[bytes, list[tuple[str, int, int, bytes, bytes]]] = {}
        for key, value in list(self.table.items()):
            # keep: the keys of the pages this worker holds (the table also has other workers' pages:
            # standby copies, and what it held before a rebalance), which it must neither load nor clean.
            if value is None or (keep is not None and not keep(key)):
                continue
            page, sep, rest = key.partition(SEP)
            if not sep:
                legacy[page] = value
            elif not rest:
                heads[page] = value
            else:
                slot, _, tail = rest.rpartition(SEP)
                side = _SIDES.index(tail[:1].decode())
                found.setdefault(page, []).append((slot.decode(), side, int(tail[1:] or 0), key, value))
        garbage: list[bytes] = []
        loaded = 0
        for page_b, head_value in heads.items():
            page = page_b.decode()
            head = orjson.loads(head_value)
            if head.get("v") != FORMAT:
                raise ValueError(f"page state of {page}: unknown format {head.get('v')!r}")
            pieces = self._choose(page, head, found.pop(page_b, []), garbage)
            core.load_pieces(page, pieces)
            self.in_pieces[page] = True
            loaded += 1
            if page_b in legacy:  # saved whole before its pieces' head (or after it, cut short): older
                garbage.append(page_b)
                del legacy[page_b]
        for rows in found.values():  # pieces of a page whose first save in pieces never reached its head
            garbage.extend(row[3] for row in rows)
        for page_b, value in legacy.items():
            page = page_b.decode()
            core.load_page(page, self.unpack_legacy(value))
            self.in_pieces[page] = False  # its next save writes it whole again, or every piece of it
            loaded += 1
        for key in garbage:
            self._delete(key)
        return loaded

    def _choose(
        self, page: str, head: dict[str, Any], rows: list[tuple[str, int, int, bytes, bytes]], garbage: list[bytes]
    ) -> list[tuple[str, bytes]]:
        """Each live slot's value as of the head, in slot order; every key of the page that holds
        nothing a later save needs into ``garbage``."""
        committed = int(head["serial"])
        dropped = set(head.get("dropped", ()))
        # slot -> side -> part -> (serial, parts, payload, key)
        sides: dict[str, list[dict[int, tuple[int, int, bytes, bytes]]]] = {}
        top = committed
        for slot, side, part, key, value in rows:
            header, _, payload = value.partition(SEP)
            serial, _, cut = header.partition(b"/")
            parts = int(cut.partition(b"/")[2]) if cut else 1
            sides.setdefault(slot, [{}, {}])[side][part] = (int(serial), parts, payload, key)
            top = max(top, int(serial))
        pieces: list[tuple[str, bytes]] = []
        live: dict[str, list[int]] = {}
        total = 0
        for slot, both in sides.items():
            known = [0, 1, 0, 0, 0]
            best = -1
            for side in (0, 1):
                got = both[side]
                first = got.get(0)
                whole = (
                    first is not None
                    and first[0] <= committed
                    and all(p in got and got[p][0] == first[0] for p in range(first[1]))
                )
                if not whole or slot in dropped:
                    garbage.extend(entry[3] for entry in got.values())
                    continue
                assert first is not None
                extra = [entry[3] for p, entry in got.items() if p >= first[1] or entry[0] != first[0]]
                garbage.extend(extra)
                known[2 + side] = first[1]
                if first[0] > best:
                    best = first[0]
                    known[0], known[1] = first[0], side
            if best < 0:
                continue
            got = both[known[1]]
            value = b"".join(got[p][2] for p in range(got[0][1]))
            pieces.append((slot, value))
            known[4] = len(value)
            total += len(value)
            live[slot] = known
        self.slots[page] = live
        self.whole_bytes[page] = total
        self.serials[page] = top  # past any leftover's serial: a new value never repeats one
        return pieces
