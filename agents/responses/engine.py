"""The response engine: events in, records out, page by page (pure core: no faust, no I/O).

Inputs are :class:`Interaction` records, outputs :class:`ResponseRecord` s; the live worker and
``otklik replay`` share it. The rules it applies (what answers what, an item's outcome) are
:mod:`~otklik.agents.responses.rules`; what it holds about a page and how that is saved,
:mod:`~otklik.agents.responses.state`; the read views, :mod:`~otklik.agents.responses.views`.

How order independence is achieved (docs/responses.md, "Late events and the late window")
----------------------------------------------------------------------------------------------
Events may arrive late by up to ``late_window_s`` of arrival time (``received_at``). So that results do
not depend on the order of arrival within that window:

* Every item's outcome is a *pure function of the events known about it*
  (:func:`~otklik.agents.responses.rules.evaluate`). Processing them in any order gives the same outcome.
* Page replies are kept for the window after they were received, so an item that arrives after a reply
  which answers it (by ``created_at``) is still answered; a reply never answers an item created after it.
  Deletions and restorations of an item not seen yet, or closed, are held for the window likewise.
* A closure is *tentative* until the window has passed since the last event that concerned the item;
  only then is its record emitted (``settle``). An earlier reply or a deletion that arrives late but
  within the window therefore revises the outcome instead of contradicting an emitted record. Metrics
  see a tentatively closed item as closed at once.

Beyond the window (docs/responses.md, "Order beyond the late window"), two things keep a late comment
counting at its own time: an item closed by a deletion stays held, dormant (``Item.written``), until its
retention horizon, so a late page reply written before the deletion still answers it; and a page reply
that answered nothing (an orphan, ``Reply.matched`` 0) is kept until the horizon of its own time, so an
item that arrives after the ticks that passed its window is still answered.

Timers (settling, deadlines, expiry) live in engine-wide heaps with lazy invalidation and are rebuilt
from page state when a page is loaded.
"""

from __future__ import annotations

import heapq
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import orjson

from otklik.agents.responses import views
from otklik.agents.responses.listing import deleted_at, unlisted
from otklik.agents.responses.rules import (
    CLOSED_CODES,
    DELETE,
    KIND_OF_OBJECT,
    RESTORE,
    PageConfigLike,
    addressed_to,
    answers,
    can_answer,
    evaluate,
    from_page,
    is_citizen,
    page_responder,
    past_deadline,
    reopens,
)
from otklik.agents.responses.state import (
    Item,
    PageState,
    Reply,
    closed_version,
    due_at,
    dump_page,
    event_key,
    load_page,
    load_pieces,
)
from otklik.agents.responses.views import OpenItemView, PageSummary
from otklik.schemas.managers import ManagerChange, ManagerList, ManagerRecord
from otklik.schemas.records import Interaction, Listing, Outcome, ResponseRecord

if TYPE_CHECKING:
    from otklik.agents.text.triage import Triage

__all__ = ["OpenItemView", "PageConfigLike", "PageSummary", "ResponseEngine"]


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
    "version",
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
    * :meth:`dump_page` / :meth:`load_page` (de)serialise one page's state as one value;
      :meth:`page_pieces` / :meth:`load_pieces` as pieces, only what changed (the live worker's way).

    Two options serve ``otklik replay``, which never persists the engine and reads records only to
    print them: ``keep_event_ids`` dedupes redeliveries by the event id itself instead of its digest
    (:func:`~otklik.agents.responses.state.event_key`; a replay holds every id anyway), and ``record``
    replaces :class:`ResponseRecord` by anything built from the same fields, in the same order,
    positionally. Neither changes which records are emitted nor their content.
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
        self.out_of_range_times = 0  # event times beyond the receiving clock's limit: they moved no clock
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

    def _touched(self, state: PageState, it: Item | None = None, *, replies: str | None = None) -> None:
        """``state`` changed: its page must be saved again (:meth:`take_dirty`), and the cached
        encodings of ``it``'s row and of the replies kept on the object ``replies`` are stale. Every
        change to saved state goes through here."""
        self._dirty.add(state.page)
        state.changed(it, replies)

    # ---- input ------------------------------------------------------------------------------------

    def process(self, ia: Interaction, limit: int | None = None) -> list[ResponseRecord]:
        """Apply one interaction; returns the records of items whose outcome became final.

        Time first advances to the event's ``received_at`` (outcomes whose late window has passed are
        settled, items past the retention horizon expire), then the event takes effect. Records of
        closures therefore come ``late_window_s`` after the closing event, from a later ``process`` or
        :meth:`tick` call: the live worker must tick regularly.

        ``limit`` is the latest time the receiving clock allows (the live worker: its wall clock plus a
        small skew). A ``received_at`` beyond it moves no clock: the event still takes effect, but
        nothing settles or expires by its time (docs/responses.md, "Stream time"); it is counted in
        :attr:`out_of_range_times`. None (a replay): every time counts.
        """
        out: list[ResponseRecord] = []
        now = ia.received_at
        if now > self.watermark:
            if limit is None or now <= limit:
                self.watermark = now
            else:
                self.out_of_range_times += 1
                now = self.watermark
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
        state = self.pages.get(ia.page)
        if state is None or state.config is None:
            state = self._state(ia.page)
            if state is None:
                self.unknown_page_events += 1
                return out
        eid = ia.event_id
        if eid is not None:
            key = eid if self.keep_event_ids else event_key(eid)
            if key in state.events:
                return out  # a redelivery
            received = ia.received_at
            if received == ia.created_at:
                received = ia.created_at  # the int object the open item keeps too
            state.events.add(key, received)
        self._touched(state)
        action = ia.action
        if action == "new":
            self._on_new(state, ia)
        elif action == "delete":
            self._on_life(state, ia, DELETE)
        elif action == "restore":
            self._on_life(state, ia, RESTORE)
        # Edits change no times.
        return out

    def listing(self, ls: Listing, limit: int | None = None) -> list[ResponseRecord]:
        """A catch-up's listing of one object's comments: the object's open items created in its
        window and missing from it close as deleted by someone unnamed, at the earliest moment the
        deletion can have gone unseen (docs/responses.md, "A comment the API no longer returns"). Items
        tentatively closed, excluded, on other objects or other pages are left alone. Time advances as
        for :meth:`process` (``limit`` likewise); returns the records that became final."""
        out: list[ResponseRecord] = []
        now = ls.received_at
        if now > self.watermark:
            if limit is None or now <= limit:
                self.watermark = now
            else:
                self.out_of_range_times += 1
        self._advance(self.watermark, out)
        state = self._state(ls.page)
        if state is None:
            self.unknown_page_events += 1
            return out
        eid = ls.event_id
        if eid is not None:
            key = eid if self.keep_event_ids else event_key(eid)
            if key in state.events:
                return out  # the same listing produced twice
            state.events.add(key, ls.received_at)
            self._touched(state)
        siblings = state.by_object.get(ls.object_id)
        if siblings is None:
            return out
        listed = set(ls.ids)
        for it in list(siblings.items):
            if it.tentative is not None or it.excluded is not None:
                continue  # closing (answered, deleted) or needing no answer: a listing changes nothing
            times = [life[0] for life in it.life or ()]
            if not unlisted(ls, listed, it.object_id, it.seq, it.created_at, max(times, default=0)):
                continue
            if it.life is None:
                it.life = []
            it.life.append((deleted_at(ls, it.created_at, times), DELETE, ""))
            self._touched(state, it)
            self._reevaluate(state, it)
        return out

    def _on_new(self, state: PageState, ia: Interaction) -> None:
        author = ia.author
        if author is None or ia.created_at is None:
            return
        managers = state.managers or None  # most pages have none: the rule then costs nothing more
        if from_page(author, state.page, state.administrators, managers, ia.created_at):
            responder = page_responder(ia, state.page, state.administrators, state.bot_replies_count, managers)
            if responder is not None and ia.item not in state.reply_ids:
                self._on_reply(state, ia, responder)
            return
        if not is_citizen(author):
            return  # comments by other communities are interactions, not items
        item = ia.item
        if item in state.items or item in state.closed:
            return  # the same item announced twice
        if ia.created_at + self.retention_s <= ia.received_at:
            return  # older than the retention horizon: nothing to track
        # Most pages have no corrections and many no triage: skip the call then.
        self._open(state, ia, 0, self._exclusion(state, ia) if state.triage or state.overrides else None)

    def _exclusion(self, state: PageState, ia: Interaction) -> str | None:
        """Why the item needs no answer (triage, or a person's correction), or None: it does."""
        correction = state.overrides.get(ia.item)
        if correction is not None:
            return None if correction[0] else "override"
        triage = self._triage
        if not state.triage or triage is None:
            return None
        addressed = addressed_to(
            ia.reply_to_author, state.page, state.administrators, state.managers or None, ia.created_at
        )
        needs_answer, reason = triage(ia.text, addressed, ia.attachments > 0)
        return None if needs_answer else reason

    def _open(
        self, state: PageState, ia: Interaction, reopened_at: int, excluded: str | None = None, version: int = 0
    ) -> Item:
        created = ia.created_at
        assert created is not None and ia.author is not None
        received = ia.received_at
        if received == created:
            received = created  # one int object for both: most items are received the second they are written
        object_id = ia.object_id
        siblings = state.by_object.get(object_id)
        if siblings is not None:
            object_id = siblings.object_id  # one string for every item on the object
        item = ia.item
        thread_root = ia.thread_root
        if thread_root == item:
            thread_root = item  # one string for both (a top-level comment is its own thread's root)
        it = Item(item, object_id, ia.object_kind, ia.author, created, ia.seq, thread_root, received, -1, reopened_at)
        it.excluded = excluded
        it.version = version
        state.add_item(it, siblings)
        window = self.late_window_s
        replies = state.replies.get(object_id) if state.replies else None
        if replies:
            # Page replies received within the window (either side) that answer it, by their own time,
            # and orphans at any distance (docs/responses.md, "Order beyond the late window").
            for n, reply in enumerate(replies):
                # Cheap tests first: most kept replies are older than a new item.
                if reply.created_at < created:
                    continue
                within = abs(reply.received_at - received) <= window
                if not within and reply.matched:
                    continue
                if answers(reply, it, state.page):
                    if it.answers is None:
                        it.answers = []
                    it.answers.append((reply.created_at, reply.seq, reply.responder, reply.received_at))
                    if within and not reply.matched:
                        # Matched within its window: no orphan, forgotten after it whatever the order was.
                        replies[n] = reply._replace(matched=1)
                        self._touched(state, replies=object_id)
        life: list[tuple[int, int, str]] = []
        if state.held:
            held = state.held.pop(it.item, None)
            if held:
                life = [h for h in held if abs(h[0] - received) <= window]
        if reopened_at:
            # Its life goes on from the restoration that reopened it: deletions dated before it, arriving
            # later, are undone by it in the walk, as they would have been in time order.
            life.append((reopened_at, RESTORE, ""))
        if life:
            it.life = life
        if self.watch_deadlines:
            # The deadline is computed when first needed; created_at is a lower bound of it.
            heapq.heappush(self._due_heap, (created, state.page, item))
        else:
            heapq.heappush(self._expiry_heap, (created + self.retention_s, state.page, item))
        if it.answers is not None or it.life is not None or excluded is not None:
            self._reevaluate(state, it)
        return it

    def _on_reply(self, state: PageState, ia: Interaction, responder: str) -> None:
        created = ia.created_at
        assert created is not None
        reply = Reply(
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
        # An orphan unless it answers an item held, replies to a comment known, or can answer nothing;
        # an orphan is kept until the horizon for the item it answers
        # (docs/responses.md, "Order beyond the late window").
        target = reply.reply_to_item
        matched = (
            target is not None and (target in state.items or target in state.closed or target in state.reply_ids)
        ) or not can_answer(ia.object_kind, reply.item, reply.thread_root, reply.reply_to_author, state.page)
        candidates = state.by_object.get(reply.object_id)
        if candidates is not None:
            for it in candidates.items:
                if it.created_at <= created and answers(reply, it, state.page):
                    matched = True
                    if it.answers is None:
                        it.answers = []
                    it.answers.append((created, reply.seq, responder, reply.received_at))
                    self._touched(state, it)
                    self._reevaluate(state, it)
        if matched:
            reply = reply._replace(matched=1)
        state.reply_ids.add(reply.item)
        state.replies.setdefault(reply.object_id, []).append(reply)
        self._touched(state, replies=reply.object_id)

    def _on_life(self, state: PageState, ia: Interaction, code: int) -> None:
        item = ia.item
        by = ia.deleted_by or ""
        it = state.items.get(item)
        if it is not None:
            if it.life is None:
                it.life = []
            it.life.append((ia.received_at, code, by))
            self._touched(state, it)
            self._reevaluate(state, it)
            return
        closed = state.closed.get(item)
        if closed is not None:
            if reopens(closed[0], code) and ia.created_at is not None and ia.author is not None:
                state.closed.discard(item)
                self._open(state, ia, reopened_at=ia.received_at, version=closed_version(closed))
                return
            # Changes nothing while it stays closed; held for the window all the same, in case a
            # restoration dated before it, arriving later, reopens the item (then it applies after it).
        elif item in state.reply_ids:
            return  # the page's own reply: deleting it does not reopen anything
        state.held.setdefault(item, []).append((ia.received_at, code, by))

    def _reevaluate(self, state: PageState, it: Item, rejudged: bool = False) -> None:
        if it.excluded is not None and it.reported:
            # Dormant: its record is out; replies are kept on it for a correction.
            it.tentative = evaluate(it)
            return
        was = it.tentative
        if it.written:
            # Closed by a deletion, its record out (dormant): only a change of verdict wakes it, a late
            # answer written before the deletion, or a restoration
            # (docs/responses.md, "Order beyond the late window"). Restored from a saved page, it takes
            # its written verdict back.
            verdict = evaluate(it)
            if was is None or verdict == was:
                it.tentative = verdict
                return
            it.written = False
            if verdict is None:
                it.reported = False  # open again: reported anew once overdue, as a reopened item is
            rejudged = True  # settles anew, whenever its last event came
        it.tentative = evaluate(it)
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

    def override(
        self, page: str, item: str, needs_answer: bool, by: str, at: int, note: str, limit: int | None = None
    ) -> bool:
        """A person's correction of triage: re-judge ``item`` from its original times.

        Applies to an item the engine still holds (open, closing, or excluded and dormant); returns
        False when the item is not held (unknown yet: the correction waits for it; or closed and
        forgotten). The new judgement goes out as a record with ``extra.override`` (who, when, why,
        the previous decision), once the late window has passed, like any closure. ``limit``: as for
        :meth:`process` (a time ``at`` beyond it moves no clock).
        """
        state = self._state(page)
        if state is None:
            return False
        it = state.items.get(item)
        if it is not None and it.written:
            it = None  # closed by its deletion and dormant: a correction finds it closed, as before
        if it is None:
            previous = "unknown"
        elif it.excluded is not None:
            previous = f"no_answer_needed:{it.excluded}"
        else:
            previous = "needs_answer"
        state.overrides[item] = [needs_answer, by, at, note, previous]
        self._touched(state)
        if at > self.watermark:
            if limit is None or at <= limit:
                self.watermark = at
            else:
                self.out_of_range_times += 1
        if it is None:
            return False
        excluded = None if needs_answer else "override"
        if excluded == it.excluded:
            return True  # nothing changes; the correction is still recorded
        it.excluded = excluded
        it.reported = False  # a new judgement, a new record (open past its deadline, or closed)
        self._touched(state, it)
        # Re-judged from its original times: its answers, deletions and restorations are all kept.
        self._reevaluate(state, it, rejudged=True)
        return True

    def apply_managers(self, record: ManagerRecord, limit: int | None = None) -> list[str]:
        """A record of ``otklik.managers`` (one role's change, or the complete list as of its time):
        returns the users whose role changed. The worker and ``otklik replay`` both come here."""
        if type(record) is ManagerChange:
            changed = self.manager(record.page, record.user, record.manager, record.at, limit)
            return [record.user] if changed else []
        assert type(record) is ManagerList
        return self.managers_now(record.page, record.users, record.at, limit)

    def manager(self, page: str, user: str, is_manager: bool, at: int, limit: int | None = None) -> bool:
        """``user`` became (``is_manager``) or stopped being one of the page's VK managers at ``at``
        (docs/responses.md, "Page replies"): their replies written from ``at`` on are the page's, or a
        citizen's again. Judgements already made stay. Returns False when nothing changed (the page
        is unknown, or the role was already so). ``limit``: as for :meth:`process`.
        """
        state = self._state(page)
        if state is None:
            return False
        spans = state.managers.get(user)
        current = spans[-1] if spans and spans[-1][1] is None else None
        if is_manager:
            if current is not None:
                return False
            state.managers.setdefault(user, []).append([at, None])
        else:
            if current is None:
                return False
            if current[0] < at:
                current[1] = at
            else:
                spans.pop()  # type: ignore[union-attr]  # ended when it began: it never held
                if not spans:
                    del state.managers[user]
        self._touched(state)
        if at > self.watermark:
            if limit is None or at <= limit:
                self.watermark = at
            else:
                self.out_of_range_times += 1
        return True

    def managers_now(self, page: str, users: Iterable[str], at: int, limit: int | None = None) -> list[str]:
        """The page's complete list of VK managers as of ``at`` (``groups.getMembers``): roles begin
        for those new to it and end for those missing from it. Returns the users whose role changed."""
        state = self._state(page)
        if state is None:
            return []
        wanted = set(users)
        held = {user for user, spans in state.managers.items() if spans and spans[-1][1] is None}
        changed = []
        for user in sorted(wanted - held):
            if self.manager(page, user, True, at, limit):
                changed.append(user)
        for user in sorted(held - wanted):
            if self.manager(page, user, False, at, limit):
                changed.append(user)
        return changed

    # ---- time -------------------------------------------------------------------------------------

    def tick(self, now: int, *, report_breaches: bool = True) -> list[ResponseRecord]:
        """Advance to ``now``: settle, expire, and report open items past their deadline (once each).

        The live worker passes its stream time, never the raw wall clock while it is behind: an item
        is reported overdue only once the input has been read up to its deadline (docs/responses.md,
        "Stream time").

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
            if state is None or it is None or it.reported or it.written:
                continue  # reported, or closed and dormant (its expiry timer is set)
            cfg = self._config(state)
            due = due_at(it, cfg)
            expires_at = it.created_at + retention
            if due >= expires_at:
                heapq.heappush(self._expiry_heap, (expires_at, page, item))  # it expires first
                continue
            if due >= now:
                heapq.heappush(heap, (due, page, item))
                continue
            if due < it.received_at and now <= it.received_at + self.late_window_s and not it.reopened_at:
                # It arrived already overdue (found by a catch-up after a gap): the replies read with it
                # come within the late window (docs/responses.md, "Late history: catch-up after a gap").
                # A restored item is not new: its deadline passed while it was known.
                heapq.heappush(heap, (it.received_at + self.late_window_s, page, item))
                continue
            if it.tentative is not None:
                if it.tentative.closed_at <= due:
                    continue  # closed in time; if it reopens, _reevaluate re-arms the timer
                # Closed (tentatively) after its deadline: at the deadline it was still open.
            deadline = cfg.deadline
            if deadline.elapsed(cfg.clock, it.created_at, now) <= deadline.seconds:
                # Due exactly at the end of a working period: breached from the next working second.
                heapq.heappush(heap, (now + 60, page, item))
                continue
            it.reported = True
            self._touched(state, it)
            heapq.heappush(self._expiry_heap, (expires_at, page, item))
            correction = state.overrides.get(item)
            extra = {"override": _override_extra(correction)} if correction is not None else None
            out.append(self._record(page, it, "open", None, cfg, breached=True, extra=extra))
        if now >= self._next_prune:
            self._prune(now)
            self._next_prune = now + 60
        return out

    def _record(
        self,
        page: str,
        it: Item,
        outcome: Outcome,
        closed_at: int | None,
        cfg: PageConfigLike,
        responder: str | None = None,
        breached: bool | None = None,
        extra: dict[str, Any] | None = None,
        reason: str | None = None,
    ) -> ResponseRecord:
        """The record of ``it``, built by the engine's ``record`` (:class:`ResponseRecord` unless a replay's).

        Each record of an item takes the item's next version (docs/data-flow.md, "Consuming otklik.responses").
        """
        it.version += 1
        latency = business = None
        if closed_at is not None:
            latency = closed_at - it.created_at
            if latency < 0:
                latency = 0
            # An item closed at its creation (no_answer_needed: two thirds of the simulator's) takes
            # the clock's own answer for an empty interval, 0, without the call through the page's config.
            business = 0 if closed_at == it.created_at else cfg.clock.working_seconds(it.created_at, closed_at)
            if breached is None:
                breached = past_deadline(cfg.deadline, latency, business)
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
            cfg.deadline.text,
            bool(breached),
            responder,
            reason,
            extra or {},
            it.version,
        )

    def _advance(self, now: int, out: list[ResponseRecord]) -> list[ResponseRecord]:
        heap = self._settle_heap
        while heap and heap[0][0] < now:  # events received up to settle_at are within the window
            settle_at, page, item = heapq.heappop(heap)
            state = self.pages.get(page)
            it = state.items.get(item) if state is not None else None
            if state is None or it is None or it.tentative is None or it.settle_at != settle_at or it.written:
                continue
            self._settle(state, it, out)
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
            if state is None or it is None or it.created_at + retention > expires_at:
                continue
            horizon = it.created_at + retention
            if it.excluded is not None and it.reported:
                self._close(state, it, "no_answer_needed", it.created_at)
                continue
            if it.written:  # dormant after its deletion: remembered as closed from now on
                assert it.tentative is not None
                self._close(state, it, it.tentative.outcome, it.tentative.closed_at)
                continue
            if it.tentative is not None:
                # Its tentative outcome decides; should it reopen, it expires once that settles.
                heapq.heappush(heap, (max(it.settle_at, expires_at) + 1, page, item))
                continue
            out.append(self._record(page, it, "expired", horizon, self._config(state), breached=True))
            self._close(state, it, "expired", horizon)
        return out

    def _settle(self, state: PageState, it: Item, out: list[ResponseRecord]) -> None:
        assert it.tentative is not None
        outcome, closed_at, responder, deleted_by = it.tentative
        cfg = self._config(state)
        extra: dict[str, Any] = {}
        correction = state.overrides.get(it.item)
        if correction is not None:
            extra["override"] = _override_extra(correction)
        if outcome == "no_answer_needed":
            # Not judged; it stays held, dormant (see Item.excluded). A page reply to it is recorded.
            if it.answers:
                first = min(it.answers)
                extra["replied_at"], extra["replied_by"] = first[0], first[2]
            out.append(
                self._record(state.page, it, outcome, closed_at, cfg, breached=False, extra=extra, reason=it.excluded)
            )
            it.reported = True
            self._touched(state, it)
            heapq.heappush(self._expiry_heap, (it.created_at + self.retention_s, state.page, it.item))
            return
        if outcome != "answered":
            extra["deleted_by"] = deleted_by
            if outcome == "moderated":
                extra["review"] = True  # deleting a fair complaint is not an answer
        out.append(self._record(state.page, it, outcome, closed_at, cfg, responder=responder, extra=extra))
        if outcome == "answered":
            self._close(state, it, outcome, closed_at)
            return
        # Deleted: held, dormant, until its horizon, for a late answer or a restoration (see Item.written).
        it.written = True
        self._touched(state, it)
        heapq.heappush(self._expiry_heap, (it.created_at + self.retention_s, state.page, it.item))

    def _close(self, state: PageState, it: Item, outcome: str, closed_at: int) -> None:
        self._touched(state)
        state.remove_item(it)
        forget_at = max(closed_at, it.received_at) + self.retention_s
        # The version goes with it, for a restoration that reopens it; 1, the common case, is implied.
        version = it.version
        state.closed.add(
            it.item,
            (CLOSED_CODES[outcome], forget_at) if version == 1 else (CLOSED_CODES[outcome], forget_at, version),
        )

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
            if state is None or it is None or it.tentative is None or it.settle_at != settle_at:
                continue  # closed since, or re-timed
            if not (it.excluded is not None and it.reported) and not it.written:  # a dormant item's record is out
                self._settle(state, it, out)
        return out

    def _prune(self, now: int) -> None:
        """Drop what the windows no longer need: held events, kept replies, event ids, closed ids.

        A page that loses anything is touched: its saved state changed.
        """
        window = self.late_window_s
        for state in self.pages.values():
            if state.held:
                for item in list(state.held):
                    kept = [h for h in state.held[item] if h[0] + window >= now]
                    if len(kept) == len(state.held[item]):
                        continue
                    self._touched(state)
                    if kept:
                        state.held[item] = kept
                    else:
                        del state.held[item]
            if state.replies:
                # An orphan is kept until no item it can answer can still come: one created before it
                # and received within the retention horizon
                # (docs/responses.md, "Order beyond the late window").
                horizon = now - self.retention_s
                for object_id in list(state.replies):
                    replies = state.replies[object_id]
                    kept_replies = [
                        r
                        for r in replies
                        if r.received_at + window >= now
                        or (not r.matched and min(r.created_at, r.received_at) > horizon)
                    ]
                    if len(kept_replies) == len(replies):
                        continue
                    self._touched(state, replies=object_id)
                    kept_ids = {r.item for r in kept_replies}
                    for r in replies:
                        if r.item not in kept_ids:
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
                    self._touched(state)
            if state.closed:
                stale = []
                for i, entry in state.closed.items():
                    if entry[1] >= now:  # (code, forget_at[, version])
                        break
                    stale.append(i)
                if stale:
                    state.closed.drop_front(stale)
                    self._touched(state)

    # ---- reading (views.py) -------------------------------------------------------------------------

    def open_items(self, page: str) -> list[OpenItemView]:
        """The page's open items, oldest first (tentatively closed ones are not open)."""
        state = self.pages.get(page)
        return [] if state is None else views.open_items(state, self._config(state))

    def summary(self, page: str, now: int) -> PageSummary | None:
        state = self._state(page)
        return None if state is None else views.summary(state, state.config, now)

    def snapshot(self, now: int) -> list[PageSummary]:
        """Summaries of the pages that hold open items (page-level series only where there is a backlog)."""
        out = []
        for page, state in self.pages.items():
            if views.has_open_items(state):
                summary = self.summary(page, now)
                if summary is not None:
                    out.append(summary)
        return out

    def open_ages(self, now: int) -> Iterator[tuple[str, str, str, str, int, int, int, str, bool]]:
        """Each open item at ``now`` (see :func:`~otklik.agents.responses.views.open_ages`; replay output)."""
        return views.open_ages(((s, self._config(s)) for s in self.pages.values() if s.items), now)

    # ---- persistence (state.py) ---------------------------------------------------------------------

    def take_dirty(self) -> set[str]:
        """Pages whose saved state (:meth:`dump_page`) changed since the last call, by events or by
        :meth:`tick` (settling, expiry, deadline notices, pruning): write exactly those to the table."""
        dirty, self._dirty = self._dirty, set()
        return dirty

    def dump_page(self, page: str) -> bytes:
        """One page's state as compact JSON (see :func:`~otklik.agents.responses.state.dump_page`)."""
        if self.keep_event_ids:
            raise ValueError("an engine that keeps event ids verbatim (a replay's) cannot be persisted")
        state = self.pages.get(page)
        return b"null" if state is None else dump_page(state)

    def load_page(self, page: str, data: bytes) -> None:
        """Restore one page's state from :meth:`dump_page` output, re-arming its timers."""
        if self.keep_event_ids:
            raise ValueError("an engine that keeps event ids verbatim (a replay's) cannot be persisted")
        raw = orjson.loads(data)
        self.pages.pop(page, None)
        if raw is None:
            return
        self._adopt(load_page(page, raw))

    def page_pieces(self, page: str, full: bool = False) -> tuple[list[tuple[str, bytes]], list[str]] | None:
        """What changed in one page's saved state since the last call (``full``: all of it), as pieces
        saved under their own keys (see :meth:`~otklik.agents.responses.state.PageState.take_pieces`):
        (slot, bytes) to write and the slots gone; None when the engine holds no such page."""
        if self.keep_event_ids:
            raise ValueError("an engine that keeps event ids verbatim (a replay's) cannot be persisted")
        state = self.pages.get(page)
        if state is None:
            return None
        if full:
            state.forget_pieces()
        return state.take_pieces()

    def page_size(self, page: str) -> int | None:
        """How many entries one page's saved state holds (open items, closed ones, event digests, kept
        replies, held deletions, corrections); None when the engine holds no such page."""
        state = self.pages.get(page)
        if state is None:
            return None
        return (
            len(state.items)
            + len(state.closed)
            + len(state.events)
            + len(state.reply_ids)
            + len(state.held)
            + len(state.overrides)
            + len(state.managers)
        )

    def load_pieces(self, page: str, pieces: list[tuple[str, bytes]]) -> None:
        """Restore one page from the last value of each of its pieces (:meth:`page_pieces`), re-arming
        its timers."""
        if self.keep_event_ids:
            raise ValueError("an engine that keeps event ids verbatim (a replay's) cannot be persisted")
        self.pages.pop(page, None)
        self._adopt(load_pieces(page, pieces))

    def _adopt(self, state: PageState) -> None:
        """Hold a restored page and re-arm its timers."""
        self.pages[state.page] = state
        for it in state.items.values():
            if it.reported or it.written or not self.watch_deadlines:
                heapq.heappush(self._expiry_heap, (it.created_at + self.retention_s, state.page, it.item))
            else:
                heapq.heappush(self._due_heap, (it.created_at, state.page, it.item))
            self._reevaluate(state, it)
