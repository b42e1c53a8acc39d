"""What needs a moderator, and how long it stayed visible (pure core of the moderation agent).

For every item and page reply on ``otklik.interactions`` the detector's labels are taken once,
at creation. Offensive content (any label but a clean text) is *visible* from its creation until
it is deleted; the page's ``moderation_deadline`` (default 1 working hour) says how long that may
last. Records for ``otklik.moderation``:

``labelled``     an item or reply with labels (``role`` says whose: citizen or page);
``removed``      a labelled text deleted: visible for ``visible_s`` / ``business_visible_s``, by whom
                 (``author``, ``page`` — the community or one of its administrators — or ``other``),
                 and whether within the deadline;
``overdue``      a labelled text still visible past the moderation deadline (once per text);
``deflection``   a page reply that only sends the citizen elsewhere ("напишите в личные
                 сообщения") without answering anything.

Deletions and restorations carry no time of their own: they take effect when received, as in
the response engine. Edits re-label the text (a text edited into мат becomes offensive from the
edit; one cleaned up by its author stops being visible-offensive at the edit).

Citizen items deleted by the page without an answer are listed for review by the response engine:
its ``moderated`` records in ``otklik.responses`` carry ``extra.review = true`` (removing fair
criticism is not an answer). Only the author or the page's administrators can delete a comment on
VK, so a deleter who is neither the community nor a registered administrator is the author.

Processing is idempotent (a redelivered creation with the same labels or a second deletion changes
nothing): the state is the offensive texts still visible, per page, and the ones removed within the
last day, so that a late redelivery of a removed text's creation does not make it visible again.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import orjson

from otklik.agents.responses.listing import deleted_at, unlisted
from otklik.agents.text.moderation import Detector
from otklik.schemas.records import Interaction, Listing

RecordKind = Literal["labelled", "removed", "overdue", "deflection"]

# A reply that only redirects: "напишите в личные сообщения", "обратитесь по телефону горячей линии".
_DEFLECTION = re.compile(
    r"^(?:(?:здравствуйте|добрый день|добрый вечер|доброе утро)\s+)?(?:[а-яё]+\s+)?(?:пожалуйста\s+)?"
    r"(?:напишите|пишите|обратитесь|направьте|отправьте|сообщите)"
    r"(?:\s+(?:нам|пожалуйста|ваш\w*|вопрос|обращение|данные|адрес|подробности))*\s+"
    r"(?:в\s+(?:лс|личк\w*|личн\w+(?:\s+сообщени\w+)?|директ|сообщени\w+\s+(?:группы|сообщества)|"
    r"при[её]мн\w+|администраци\w+|ведомств\w+|поликлиник\w+|школ\w+|управляющ\w+\s+компани\w+)|"
    r"на\s+(?:почту|горячую\s+линию|телефон\s+горячей\s+линии)|по\s+телефону(?:\s+горячей\s+линии)?)"
    r"(?:\s+\S+){0,4}$"
)
_PUNCTUATION = re.compile(r"[,!.?;:«»\"()]+")


def is_deflection(text: str) -> bool:
    """True when a page reply does nothing but send the citizen elsewhere."""
    words = " ".join(_PUNCTUATION.sub(" ", text.lower().replace("ё", "е")).split())
    return bool(_DEFLECTION.match(words))


@dataclass(frozen=True, slots=True)
class ModerationRecord:
    """A record of ``otklik.moderation``. Recognised by (``item``, ``kind``)."""

    kind: RecordKind
    item: str
    page: str
    role: Literal["citizen", "page"]
    labels: tuple[str, ...]
    created_at: int
    at: int  # when it happened (creation, deletion received, deadline passed)
    moderation_deadline: str
    visible_s: int | None = None
    business_visible_s: int | None = None
    deleted_by: Literal["author", "page", "other"] | None = None
    within_deadline: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))


@dataclass(slots=True)
class _Visible:
    page: str
    role: Literal["citizen", "page"]
    labels: tuple[str, ...]
    created_at: int  # the text's creation, or the edit that made it offensive
    due_at: int
    author: str | None
    reported: bool = False


REMEMBER_S = 86400  # VK redelivers within hours; a removed text is remembered for a day


class ModerationWatch:
    """Offensive texts currently visible, per page; emits records as they appear, go and overstay.

    ``page_config(page)`` gives ``administrators``, ``moderation_deadline`` and ``clock``
    (the registry's PageConfig)."""

    def __init__(self, page_config: Callable[[str], Any], detector: Detector) -> None:
        self._page_config = page_config
        self._detector = detector
        self.pages: dict[str, dict[str, _Visible]] = {}
        self.removed: dict[str, dict[str, int]] = {}  # page -> item -> when removed (kept REMEMBER_S)
        self._due: list[tuple[int, str, str]] = []
        # page -> slots changed since they were last saved: "v<item>" a visible text, "x<item>" a removed one
        self._changed: dict[str, set[str]] = {}

    def _touch(self, page: str, slot: str) -> None:
        self._changed.setdefault(page, set()).add(slot)

    # -- input -------------------------------------------------------------------------------

    def process(self, ia: Interaction) -> list[ModerationRecord]:
        cfg = self._page_config(ia.page)
        if ia.action in ("new", "edit") and ia.created_at is not None and ia.author is not None:
            return self._on_text(ia, cfg)
        if ia.action == "delete":
            return self._on_delete(ia, cfg)
        return []

    def _role(self, ia: Interaction, cfg: Any) -> Literal["citizen", "page"] | None:
        author = ia.author or ""
        if author == ia.page or author in cfg.administrators:
            return "page"
        if ":user:" in author:
            return "citizen"
        return None  # another community: recorded by the response engine, not moderated here

    def _on_text(self, ia: Interaction, cfg: Any) -> list[ModerationRecord]:
        role = self._role(ia, cfg)
        if role is None:
            return []
        out: list[ModerationRecord] = []
        labels = tuple(sorted(self._detector.labels(ia.text))) if ia.text else ()
        at = ia.created_at if ia.action == "new" else ia.received_at
        assert at is not None
        if ia.item in self.removed.get(ia.page, ()):
            return []  # a redelivery of a text already removed
        visible = self.pages.get(ia.page, {})
        current = visible.get(ia.item)
        if labels:
            if current is None or current.labels != labels:
                since = current.created_at if current is not None else at
                due = cfg.moderation_deadline.due_at(cfg.clock, since)
                entry = _Visible(ia.page, role, labels, since, due, ia.author)
                self.pages.setdefault(ia.page, {})[ia.item] = entry
                heapq.heappush(self._due, (due, ia.page, ia.item))
                self._touch(ia.page, "v" + ia.item)
                out.append(self._record("labelled", ia.item, entry, cfg, at))
        elif current is not None and ia.action == "edit":
            # Edited clean: no longer offensive; counts as removed by its author at the edit.
            self._forget(ia.page, ia.item)
            out.append(self._removed(ia.item, current, cfg, at, "author", {"how": "edited"}))
        if role == "page" and ia.action == "new" and is_deflection(ia.text):
            out.append(
                ModerationRecord("deflection", ia.item, ia.page, role, labels, at, at, cfg.moderation_deadline.text)
            )
        return out

    def _on_delete(self, ia: Interaction, cfg: Any) -> list[ModerationRecord]:
        current = self.pages.get(ia.page, {}).get(ia.item)
        if current is None:
            return []
        deleter = ia.deleted_by
        if deleter is not None and (deleter == ia.page or deleter in cfg.administrators):
            who: Literal["author", "page", "other"] = "author" if deleter == current.author else "page"
        elif deleter is not None and ":user:" in deleter:
            who = "author"  # on VK only the author or the page's administrators can delete a comment
        else:
            who = "other"
        self._forget(ia.page, ia.item)
        self.removed.setdefault(ia.page, {})[ia.item] = ia.received_at
        self._touch(ia.page, "x" + ia.item)
        return [self._removed(ia.item, current, cfg, ia.received_at, who, {})]

    def listing(self, ls: Listing) -> list[ModerationRecord]:
        """A catch-up's listing of one object's comments: an offensive text on it, written in its window
        and missing from it, was removed unseen, by someone unnamed, at the earliest moment it can have
        been (docs/responses.md, "A comment the API no longer returns")."""
        visible = self.pages.get(ls.page)
        if not visible:
            return []
        cfg = self._page_config(ls.page)
        listed = set(ls.ids)
        out: list[ModerationRecord] = []
        for item, current in list(visible.items()):
            object_id, _, seq = item.rpartition(":")
            if not seq.isdigit() or not unlisted(ls, listed, object_id, int(seq), current.created_at, 0):
                continue
            at = deleted_at(ls, current.created_at, ())
            self._forget(ls.page, item)
            self.removed.setdefault(ls.page, {})[item] = ls.received_at
            self._touch(ls.page, "x" + item)
            out.append(self._removed(item, current, cfg, at, "other", {"how": "unseen"}))
        return out

    def _forget(self, page: str, item: str) -> None:
        visible = self.pages.get(page)
        if visible is not None and visible.pop(item, None) is not None:
            self._touch(page, "v" + item)
            if not visible:
                del self.pages[page]

    # -- time --------------------------------------------------------------------------------

    def tick(self, now: int) -> list[ModerationRecord]:
        """Offensive texts still visible past their moderation deadline (once each)."""
        out: list[ModerationRecord] = []
        while self._due and self._due[0][0] < now:
            due, page, item = heapq.heappop(self._due)
            current = self.pages.get(page, {}).get(item)
            if current is None or current.reported or current.due_at != due:
                continue
            current.reported = True
            self._touch(page, "v" + item)
            out.append(self._record("overdue", item, current, self._page_config(page), due))
        horizon = now - REMEMBER_S
        for page in list(self.removed):
            kept = {item: at for item, at in self.removed[page].items() if at >= horizon}
            if len(kept) != len(self.removed[page]):
                for item in self.removed[page].keys() - kept.keys():
                    self._touch(page, "x" + item)
                if kept:
                    self.removed[page] = kept
                else:
                    del self.removed[page]
        return out

    def visible_by_page(self, now: int) -> dict[str, tuple[int, float]]:
        """Per page: offensive texts visible now, and the oldest one's age as a fraction of the deadline."""
        out: dict[str, tuple[int, float]] = {}
        for page, visible in self.pages.items():
            cfg = self._page_config(page)
            deadline = cfg.moderation_deadline
            oldest = min(v.created_at for v in visible.values())
            out[page] = (len(visible), deadline.elapsed(cfg.clock, oldest, now) / deadline.seconds)
        return out

    # -- records -----------------------------------------------------------------------------

    def _record(self, kind: RecordKind, item: str, v: _Visible, cfg: Any, at: int) -> ModerationRecord:
        return ModerationRecord(kind, item, v.page, v.role, v.labels, v.created_at, at, cfg.moderation_deadline.text)

    def _removed(
        self, item: str, v: _Visible, cfg: Any, at: int, who: Literal["author", "page", "other"], extra: dict
    ) -> ModerationRecord:
        deadline = cfg.moderation_deadline
        wall = max(0, at - v.created_at)
        business = cfg.clock.working_seconds(v.created_at, at)
        judged = business if deadline.working else wall
        return ModerationRecord(
            "removed",
            item,
            v.page,
            v.role,
            v.labels,
            v.created_at,
            at,
            deadline.text,
            visible_s=wall,
            business_visible_s=business,
            deleted_by=who,
            within_deadline=judged <= deadline.seconds,
            extra=extra,
        )

    # -- persistence: one piece per text, only what changed (docs/data-flow.md, "How state survives") --

    def take_dirty(self) -> set[str]:
        return set(self._changed)

    def page_size(self, page: str) -> int:
        return len(self.pages.get(page, ())) + len(self.removed.get(page, ()))

    def page_pieces(self, page: str, full: bool = False) -> tuple[list[tuple[str, bytes]], list[str]]:
        """The pieces of ``page`` changed since the last call (``full``: all of them): ("v<item>", a
        visible text's row) and ("x<item>", when a removed text was removed) to write, and the slots
        gone."""
        pieces: list[tuple[str, bytes]] = []
        dropped: list[str] = []
        visible = self.pages.get(page, {})
        removed = self.removed.get(page, {})
        if full:
            self._changed[page] = {"v" + k for k in visible} | {"x" + k for k in removed}
        for slot in sorted(self._changed.pop(page, ())):
            item = slot[1:]
            if slot[0] == "v":
                v = visible.get(item)
                if v is None:
                    dropped.append(slot)
                else:
                    pieces.append((slot, orjson.dumps(self._row(v))))
            elif item in removed:
                pieces.append((slot, orjson.dumps(removed[item])))
            else:
                dropped.append(slot)
        return pieces, dropped

    def load_pieces(self, page: str, pieces: list[tuple[str, bytes]]) -> None:
        visible: dict[str, list[Any]] = {}
        removed: dict[str, int] = {}
        for slot, value in pieces:
            if slot[0] == "v":
                visible[slot[1:]] = orjson.loads(value)
            elif slot[0] == "x":
                removed[slot[1:]] = orjson.loads(value)
            else:
                raise ValueError(f"moderation state of {page}: unknown piece {slot!r}")
        self._restore(page, visible, removed)

    @staticmethod
    def _row(v: _Visible) -> list[Any]:
        return [v.role, list(v.labels), v.created_at, v.due_at, v.author, v.reported]

    def dump_page(self, page: str) -> bytes:
        """One page's state as one value (how a small page is saved, and every page was before pieces)."""
        visible = self.pages.get(page, {})
        return orjson.dumps(
            {"visible": {k: self._row(v) for k, v in visible.items()}, "removed": self.removed.get(page, {})}
        )

    def load_page(self, page: str, data: bytes) -> None:
        """Restore a page from :meth:`dump_page` output."""
        raw = orjson.loads(data)
        self._restore(page, raw["visible"], raw["removed"])

    def _restore(self, page: str, rows: dict[str, list[Any]], removed: dict[str, int]) -> None:
        visible = {k: _Visible(page, r, tuple(lb), c, d, a, rep) for k, (r, lb, c, d, a, rep) in rows.items()}
        if visible:
            self.pages[page] = visible
        else:
            self.pages.pop(page, None)
        if removed:
            self.removed[page] = dict(removed)
        else:
            self.removed.pop(page, None)
        for k, v in visible.items():
            if not v.reported:
                heapq.heappush(self._due, (v.due_at, page, k))
