"""A core's pages saved as pieces, each under its own key of one table, only what changed.

A core (the response engine, the moderation watch) cuts each page's state into pieces (a block of
open items, a chunk of a log, the replies kept on one object, ...), each named by a *slot*, and says
after each batch which pieces changed and which went (``page_pieces``). What a batch writes therefore
follows what it changed, not the page's size: a neglected page with 100,000 open items costs what a
quiet one does, and no value grows past a bound. Layout of the table (docs/data-flow.md, "How state
survives"):

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


class PieceCore(Protocol):
    """What a core offers to be saved in pieces."""

    def take_dirty(self) -> Iterable[str]: ...

    def page_pieces(self, page: str) -> tuple[list[tuple[str, bytes]], list[str]] | None: ...

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

    def __init__(self, table: MutableMapping[bytes, Any], unpack_legacy: Any = None) -> None:
        self.table = table
        self.unpack_legacy = unpack_legacy or (lambda value: value)  # a whole-page value's decoding
        self.slots: dict[str, dict[str, list[int]]] = {}  # page -> slot -> [serial, side, parts a, parts b]
        self.serials: dict[str, int] = {}  # page -> last serial used

    # ---- saving ---------------------------------------------------------------------------------

    def save(self, core: PieceCore) -> None:
        """Write what changed in each page the core says changed."""
        for page in core.take_dirty():
            self.save_page(core, page)

    def save_page(self, core: PieceCore, page: str) -> None:
        changes = core.page_pieces(page)
        if changes is None:
            self._remove_page(page)
            return
        pieces, dropped = changes
        live = self.slots.setdefault(page, {})
        serial = self.serials.get(page, 0)
        stale: list[tuple[str, int, int, int]] = []  # (slot, side, from part, to part) to remove
        for slot, value in pieces:
            serial += 1
            known = live.get(slot)
            if known is None:
                known = live[slot] = [0, 1, 0, 0]
            side = 1 - known[1]
            parts = self._put(page, slot, side, serial, value)
            if known[2 + side] > parts:  # parts of an earlier, bigger value on this side
                stale.append((slot, side, parts, known[2 + side]))
            known[0], known[1], known[2 + side] = serial, side, parts
        gone: list[str] = []
        for slot in dropped:
            known = live.pop(slot, None)
            if known is not None:
                gone.append(slot)
                stale.append((slot, 0, 0, known[2]))
                stale.append((slot, 1, 0, known[3]))
        if not pieces and not gone:
            return
        serial += 1
        self.serials[page] = serial
        self.table[head_key(page)] = orjson.dumps({"v": FORMAT, "serial": serial, "dropped": gone})
        for slot, side, first, end in stale:
            for part in range(first, end):
                self._delete(piece_key(page, slot, side, part))

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
        """The core holds the page no more: its head goes first (a page without one is garbage)."""
        live = self.slots.pop(page, None)
        self.serials.pop(page, None)
        self._delete(head_key(page))
        for slot, known in (live or {}).items():
            for side in (0, 1):
                for part in range(known[2 + side]):
                    self._delete(piece_key(page, slot, side, part))

    # ---- loading --------------------------------------------------------------------------------

    def load(self, core: PieceCore, keep: Callable[[bytes], bool] | None = None) -> int:
        """Load every page the table holds into ``core`` (a fresh one) and forget what this object
        knew. Removes what no page uses (a save cut short by a crash); pages saved whole by an earlier
        release are loaded, written again as pieces and their whole value removed. Returns the number
        of pages loaded. Costs the table's size: the live pieces, and at most one older value each."""
        self.slots, self.serials = {}, {}
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
            loaded += 1
            if page_b in legacy:  # written again as pieces before a crash: the pieces are newer
                garbage.append(page_b)
                del legacy[page_b]
        for rows in found.values():  # pieces of a page whose first save never reached its head
            garbage.extend(row[3] for row in rows)
        for page_b, value in legacy.items():
            core.load_page(page_b.decode(), self.unpack_legacy(value))
            loaded += 1
        for key in garbage:
            self._delete(key)
        for page_b in legacy:
            self.save_page(core, page_b.decode())  # every piece: the core has none saved yet
            del self.table[page_b]
        if legacy:
            log.info("%d pages saved whole by an earlier release were written again as pieces", len(legacy))
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
        for slot, both in sides.items():
            known = [0, 1, 0, 0]
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
            pieces.append((slot, b"".join(got[p][2] for p in range(got[0][1]))))
            live[slot] = known
        self.slots[page] = live
        self.serials[page] = top  # past any leftover's serial: a new value never repeats one
        return pieces
