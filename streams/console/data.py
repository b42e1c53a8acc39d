"""What the console reads from and writes to the store (SQLAlchemy Core; SQLite and PostgreSQL alike).

Every value a person typed reaches SQL as a bound parameter, never as SQL text: a filter such as
``' OR 1=1 --`` is a municipality nobody has, and the list is empty.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import yaml
from sqlalchemy import Engine, and_, case, exists, false, func, insert, literal, select, true, update

from otklik.agents.console.rules import Role, Viewer
from otklik.agents.registry import Registry, RegistryWatcher
from otklik.schemas.registry import RegistryError
from otklik.streams.store.schema import (
    console_actions,
    corrections,
    disputes,
    item_events,
    items,
    moderation_findings,
    registry_versions,
    users,
)

__all__ = ["COUNTS_STALE_S", "COUNTS_TTL_S", "ConsoleStore", "QueueCounts", "QueueGroup", "RegistrySource", "UserError"]

_log = logging.getLogger("otklik.console")

# The columns of a queue row (the text only for the rows shown: see ConsoleStore.texts).
QUEUE_COLUMNS = (
    "item",
    "page",
    "page_title",
    "municipality",
    "sector",
    "platform",
    "kind",
    "created_at",
    "due_at",
    "link",
)

# How long the console keeps a scope's queue counts as they are (seconds of its clock), and how old
# they may be when given while counted again (ConsoleStore.queue_counts): the queue's rows refresh every
# 30 s and are read afresh each time; the counts are one pass over every open item in the scope.
COUNTS_TTL_S = 10.0
COUNTS_STALE_S = 120.0
_COUNTS_KEPT = 256  # scopes whose counts are kept at once


@dataclass(frozen=True, slots=True)
class QueueGroup:
    """Pages that share one clock and one deadline (``pages``), or, when ``rest``, every page but
    ``others_than`` (the pages of the other groups): the default group's pages and those the registry
    does not name, told apart by the shorter list. And how urgent one of their items is."""

    pages: tuple[str, ...]
    urgency: Callable[[int, int], float]  # (created_at, now) -> share of the deadline used
    rest: bool = False
    others_than: tuple[str, ...] = ()

    def condition(self) -> Any:
        if not self.rest:
            return items.c.page.in_(self.pages) if self.pages else false()
        return items.c.page.notin_(self.others_than) if self.others_than else true()


@dataclass(frozen=True, slots=True)
class QueueCounts:
    """How many open items there were per combination of the ``names`` columns' values and whether
    overdue (``combos``: values, overdue, count), as of ``as_of``; the page titles seen (``titles``)."""

    names: tuple[str, ...]
    combos: tuple[tuple[tuple[Any, ...], bool, int], ...]
    titles: Mapping[str, str]
    as_of: int
    # The facets already summed, per choice of filters, while these counts are kept (read-only lists).
    summed: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    def facets(
        self, chosen: Mapping[str, str], overdue_only: bool
    ) -> tuple[dict[str, list[tuple[Any, Any, int]]], int, int]:
        """The counts the filters show under the filters ``chosen``: per column, each value's count with
        every other filter applied but that column's own, as (value, shown, count) sorted by what is
        shown; the total with every filter applied; and how many of those overdue_only would leave
        (every filter but "overdue only")."""
        key = (tuple(sorted((k, v) for k, v in chosen.items() if v)), overdue_only)
        found = self.summed.get(key)
        if found is None:
            found = self._sum(chosen, overdue_only)
            if len(self.summed) < 64:
                self.summed[key] = found
        return found  # type: ignore[no-any-return]

    def _sum(
        self, chosen: Mapping[str, str], overdue_only: bool
    ) -> tuple[dict[str, list[tuple[Any, Any, int]]], int, int]:
        names = self.names
        wanted = [(i, value) for i, name in enumerate(names) if (value := chosen.get(name))]
        counts: list[dict[Any, int]] = [{} for _ in names]
        total = overdue_count = 0
        for values, late, n in self.combos:
            # Which filters this combination fails: it counts for a column only when it fails no other.
            missed = [i for i, value in wanted if values[i] != value]
            if overdue_only and not late:
                missed.append(-1)
            if not missed:
                total += n
                overdue_count += n if late else 0
                for i, value in enumerate(values):
                    counts[i][value] = counts[i].get(value, 0) + n
            elif len(missed) == 1 and missed[0] >= 0:
                i = missed[0]
                counts[i][values[i]] = counts[i].get(values[i], 0) + n
        facets = {
            name: sorted(
                ((value, self.titles.get(value, value) if name == "page" else value, n) for value, n in found.items()),
                key=lambda facet: (facet[1], facet[0]),
            )
            for name, found in zip(names, counts, strict=True)
        }
        return facets, total, overdue_count


class UserError(ValueError):
    """A user that cannot be added; the message says why."""


def _viewer_filter(viewer: Viewer) -> Any:
    if viewer.sees_everything:
        return literal(True)
    if viewer.role == "curator":
        return items.c.municipality.in_(sorted(viewer.municipalities)) if viewer.municipalities else literal(False)
    return items.c.page.in_(sorted(viewer.pages)) if viewer.pages else literal(False)


def _overdue(now: int) -> Any:
    """The store's recorded due time has passed at ``now`` (docs/history.md, "What is kept")."""
    return and_(items.c.due_at.is_not(None), items.c.due_at <= now)


def _scope(viewer: Viewer) -> tuple[Any, ...]:
    """What :func:`_viewer_filter` depends on: viewers with the same scope see the same items."""
    if viewer.sees_everything:
        return ("everything",)
    if viewer.role == "curator":
        return ("municipalities", tuple(sorted(viewer.municipalities)))
    return ("pages", tuple(sorted(viewer.pages)))


def _json_list(text: str | None) -> frozenset[str]:
    try:
        value = orjson.loads(text or "[]")
    except orjson.JSONDecodeError:
        return frozenset()
    return frozenset(str(v) for v in value) if isinstance(value, list) else frozenset()


class ConsoleStore:
    """The console's queries on one engine. Blocking: the web handlers call them in a thread."""

    def __init__(self, engine: Engine, counts_ttl_s: float = 0.0) -> None:
        self.engine = engine
        self.counts_ttl_s = counts_ttl_s  # 0: the queue's counts are read afresh each time
        self._counts: dict[tuple[Any, ...], QueueCounts] = {}
        self._counts_lock = threading.Lock()
        self._recounting: dict[tuple[Any, ...], threading.Thread] = {}

    # ---- users ----------------------------------------------------------------------------------------

    def add_user(
        self,
        login: str,
        password_hash: str,
        role: Role,
        municipalities: Sequence[str] = (),
        pages: Sequence[str] = (),
        now: float | None = None,
    ) -> bool:
        """Add the user, or replace an existing one's password, role and limits; True when new."""
        login = login.strip()
        if not login or len(login) > 100 or any(c.isspace() for c in login):
            raise UserError(f"login {login!r}: 1–100 characters, no spaces")
        if role == "curator" and not municipalities:
            raise UserError("a curator needs at least one --municipality")
        if role == "page_admin" and not pages:
            raise UserError("a page administrator needs at least one --page")
        values = {
            "password_hash": password_hash,
            "role": role,
            "municipalities": orjson.dumps(sorted(set(municipalities))).decode(),
            "pages": orjson.dumps(sorted(set(pages))).decode(),
        }
        with self.engine.begin() as connection:
            found = connection.execute(select(users.c.login).where(users.c.login == login)).first()
            if found is None:
                connection.execute(insert(users).values(login=login, created_at=int(now or time.time()), **values))
                return True
            connection.execute(update(users).where(users.c.login == login).values(**values))
            return False

    def user(self, login: str) -> tuple[Viewer, str] | None:
        """The user ``login`` as a viewer, with their password hash; None when there is none."""
        with self.engine.connect() as connection:
            row = connection.execute(select(users).where(users.c.login == login)).first()
        if row is None:
            return None
        viewer = Viewer(row.login, row.role, _json_list(row.municipalities), _json_list(row.pages))
        return viewer, row.password_hash

    # ---- the queue --------------------------------------------------------------------------------------

    def queue(
        self,
        viewer: Viewer,
        chosen: Mapping[str, str],
        overdue_only: bool,
        now: int,
        groups: Sequence[QueueGroup],
        offset: int,
        limit: int,
    ) -> dict[str, Any]:
        """One page of the open items ``viewer`` may see, most urgent first, with the counts per filter.

        Filtering happens in SQL. The order needs working time, which SQL cannot count, but within one
        group of pages on the same clock and deadline an item written earlier has used at least as much
        of its deadline: so each group's first ``offset + limit`` items by creation are enough, and only
        those are weighed (``urgency``) and merged. "Overdue" is the due time the store recorded
        (docs/history.md, "What is kept") having passed. The rows are always read afresh; the counts
        (and so the total) may be older (:meth:`queue_counts`; ``counted_at`` says when)."""
        # The open items oldest first are the index on (outcome, created_at). Asked as `outcome = 'open'`
        # ordered by created_at, PostgreSQL's planner may walk the index on created_at alone, through
        # every closed item older than the oldest open one (it cannot know open items are the newest); a
        # range on outcome, outcome leading the order, leaves it only the former. Same rows.
        conditions = [items.c.outcome.between("open", "open"), _viewer_filter(viewer)]
        conditions += [items.c[name] == value for name, value in chosen.items() if value]
        if overdue_only:
            conditions.append(_overdue(now))
        counts = self.queue_counts(viewer, tuple(chosen), now)
        facets, total, overdue_count = counts.facets(chosen, overdue_only)
        candidates: list[dict[str, Any]] = []
        with self.engine.connect() as connection:
            for group in groups:
                query = (
                    select(*(items.c[name] for name in QUEUE_COLUMNS))
                    .where(*conditions, group.condition())
                    .order_by(items.c.outcome, items.c.created_at, items.c.item)
                    .limit(offset + limit)
                )
                for row in connection.execute(query):
                    candidate = dict(row._mapping)
                    candidate["share"] = group.urgency(candidate["created_at"], now)
                    candidate["overdue"] = candidate["due_at"] is not None and candidate["due_at"] <= now
                    candidates.append(candidate)
        candidates.sort(key=lambda r: (-r["share"], r["created_at"], r["item"]))
        return {
            "rows": candidates[offset : offset + limit],
            "total": total,
            "facets": facets,
            "overdue_count": overdue_count,
            "counted_at": counts.as_of,
        }

    def queue_counts(self, viewer: Viewer, names: tuple[str, ...], now: int) -> QueueCounts:
        """How many open items ``viewer`` may see per combination of the ``names`` columns' values and
        "overdue" at ``now``: one pass over the open items in SQL (GROUP BY). The combinations are few
        (a page has one municipality, sector and platform), and every count the filters show is a sum
        over them (:meth:`QueueCounts.facets`), whatever the filters chosen.

        That pass reads every open item in the viewer's scope, so with ``counts_ttl_s`` its result is
        kept per scope (operators and analysts share one; a curator's municipalities, a page
        administrator's pages are theirs): for ``counts_ttl_s`` seconds of the console's clock as it
        is, then, up to ``COUNTS_STALE_S`` old, still given while a thread counts again (the next
        request gets the new counts); older, or for a scope not counted yet, counted before the answer.
        The rows are never kept."""
        ttl = self.counts_ttl_s
        if ttl <= 0:
            return self._count(viewer, names, now)
        key = (_scope(viewer), names)
        with self._counts_lock:
            kept = self._counts.get(key)
            age = now - kept.as_of if kept is not None else -1
            if 0 <= age < ttl:
                return kept  # type: ignore[return-value]
            if 0 <= age < max(ttl, COUNTS_STALE_S):
                if key not in self._recounting:
                    thread = threading.Thread(
                        target=self._recount, args=(key, viewer, names, now), name="console-counts", daemon=True
                    )
                    self._recounting[key] = thread
                    thread.start()
                return kept  # type: ignore[return-value]
        counts = self._count(viewer, names, now)
        self._keep(key, counts)
        return counts

    def settle(self) -> None:
        """Wait for the counts being read again in the background (tests and the bench)."""
        with self._counts_lock:
            threads = list(self._recounting.values())
        for thread in threads:
            thread.join()

    def _recount(self, key: tuple[Any, ...], viewer: Viewer, names: tuple[str, ...], now: int) -> None:
        try:
            self._keep(key, self._count(viewer, names, now))
        except Exception:  # the kept counts stay; the next request past their time tries again
            _log.exception("the queue's counts were not read again")
        finally:
            with self._counts_lock:
                self._recounting.pop(key, None)

    def _keep(self, key: tuple[Any, ...], counts: QueueCounts) -> None:
        with self._counts_lock:
            kept = self._counts.pop(key, None)
            if kept is not None and kept.as_of > counts.as_of:
                counts = kept  # newer counts got there first
            if len(self._counts) >= _COUNTS_KEPT:  # bounded: the longest kept goes first
                self._counts.pop(next(iter(self._counts)))
            self._counts[key] = counts

    def _count(self, viewer: Viewer, names: tuple[str, ...], now: int) -> QueueCounts:
        flag = case((_overdue(now), 1), else_=0).label("overdue")
        query = (
            select(*(items.c[name] for name in names), func.max(items.c.page_title), flag, func.count())
            .where(items.c.outcome == "open", _viewer_filter(viewer))
            .group_by(*(items.c[name] for name in names), flag)
        )
        page = names.index("page") if "page" in names else None
        combos: list[tuple[tuple[Any, ...], bool, int]] = []
        titles: dict[str, str] = {}
        with self.engine.connect() as connection:
            for row in connection.execute(query):
                values = tuple(row[: len(names)])
                title = row[len(names)]
                if title and page is not None:
                    titles[values[page]] = title
                combos.append((values, bool(row[len(names) + 1]), int(row[len(names) + 2])))
        return QueueCounts(names, tuple(combos), titles, now)

    def texts(self, item_ids: Sequence[str]) -> dict[str, str | None]:
        if not item_ids:
            return {}
        with self.engine.connect() as connection:
            rows = connection.execute(select(items.c.item, items.c.text).where(items.c.item.in_(list(item_ids))))
            return {row.item: row.text for row in rows}

    # ---- one item -----------------------------------------------------------------------------------------

    def item(self, item_id: str, viewer: Viewer) -> dict[str, Any] | None:
        """The item, or None when there is none or ``viewer`` may not see it (the same answer: 404)."""
        with self.engine.connect() as connection:
            row = connection.execute(select(items).where(items.c.item == item_id, _viewer_filter(viewer))).first()
        return None if row is None else dict(row._mapping)

    def story(self, item_id: str) -> dict[str, list[dict[str, Any]]]:
        """The item's timeline, moderation findings, corrections, disputes and console steps."""
        with self.engine.connect() as connection:

            def rows(query: Any) -> list[dict[str, Any]]:
                return [dict(row._mapping) for row in connection.execute(query)]

            return {
                "events": rows(
                    select(item_events)
                    .where(item_events.c.item == item_id)
                    .order_by(item_events.c.at, item_events.c.id)
                ),
                "findings": rows(
                    select(moderation_findings)
                    .where(moderation_findings.c.item == item_id)
                    .order_by(moderation_findings.c.at)
                ),
                "corrections": rows(
                    select(corrections).where(corrections.c.item == item_id).order_by(corrections.c.requested_at)
                ),
                "disputes": rows(select(disputes).where(disputes.c.item == item_id).order_by(disputes.c.id)),
                "actions": rows(
                    select(console_actions)
                    .where(console_actions.c.item == item_id)
                    .order_by(console_actions.c.at, console_actions.c.id)
                ),
            }

    def record_action(
        self, connection: Any, item_id: str, at: float, by: str, action: str, reason: str, before: Any, after: Any
    ) -> None:
        connection.execute(
            insert(console_actions).values(
                item=item_id,
                at=int(at),
                by=by,
                action=action,
                reason=reason,
                before=orjson.dumps(before).decode(),
                after=orjson.dumps(after).decode(),
            )
        )

    def add_correction(self, item: dict[str, Any], by: str, needs_answer: bool, note: str, at: float) -> None:
        with self.engine.begin() as connection:
            self.record_action(
                connection,
                item["item"],
                at,
                by,
                "corrected",
                note,
                {"needs_answer": bool(item["needs_answer"]), "outcome": item["outcome"]},
                {"needs_answer": needs_answer},
            )

    def add_dispute(self, item: dict[str, Any], by: str, reason: str, text: str, at: float) -> int:
        with self.engine.begin() as connection:
            result = connection.execute(
                insert(disputes).values(
                    item=item["item"], by=by, reason=reason, text=text, created_at=int(at), state="open"
                )
            )
            dispute_id = int(result.inserted_primary_key[0])
            self.record_action(
                connection,
                item["item"],
                at,
                by,
                "disputed",
                f"{reason}: {text}",
                {"outcome": item["outcome"], "needs_answer": bool(item["needs_answer"])},
                {"dispute": dispute_id, "state": "open"},
            )
        return dispute_id

    def dispute(self, dispute_id: int) -> dict[str, Any] | None:
        with self.engine.connect() as connection:
            row = connection.execute(select(disputes).where(disputes.c.id == dispute_id)).first()
        return None if row is None else dict(row._mapping)

    def decide_dispute(self, dispute: dict[str, Any], state: str, by: str, note: str, at: float) -> bool:
        """Record the decision; False when someone decided it meanwhile (the row is no longer open)."""
        with self.engine.begin() as connection:
            changed = connection.execute(
                update(disputes)
                .where(disputes.c.id == dispute["id"], disputes.c.state == "open")
                .values(state=state, decided_by=by, decided_at=int(at), note=note)
            ).rowcount
            if changed != 1:
                return False
            self.record_action(
                connection,
                dispute["item"],
                at,
                by,
                "accepted" if state == "accepted" else "rejected",
                note,
                {"dispute": dispute["id"], "state": "open"},
                {"dispute": dispute["id"], "state": state},
            )
        return True

    def open_disputes(self, viewer: Viewer) -> list[dict[str, Any]]:
        query = (
            select(disputes, items.c.page, items.c.municipality)
            .join(items, items.c.item == disputes.c.item)
            .where(disputes.c.state == "open", _viewer_filter(viewer))
            .order_by(disputes.c.created_at)
        )
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]

    # ---- pages and moderation ----------------------------------------------------------------------------

    def page_items_open(self, page: str) -> list[dict[str, Any]]:
        query = select(items.c.item, items.c.created_at, items.c.due_at).where(
            items.c.page == page, items.c.outcome == "open"
        )
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]

    def page_latencies(self, page: str, start: int, end: int, working: bool) -> list[int]:
        """The response times of ``page``'s items answered among those written in [start, end), in
        working or calendar seconds (the deadline's kind)."""
        latency = items.c.business_latency_s if working else items.c.latency_s
        query = select(latency).where(
            items.c.page == page,
            items.c.created_at >= start,
            items.c.created_at < end,
            items.c.outcome == "answered",
            latency.is_not(None),
        )
        with self.engine.connect() as connection:
            return [int(value) for value in connection.scalars(query)]

    def page_known(self, page: str) -> dict[str, Any] | None:
        query = (
            select(items.c.page, items.c.page_title, items.c.municipality, items.c.sector, items.c.region)
            .where(items.c.page == page)
            .limit(1)
        )
        with self.engine.connect() as connection:
            row = connection.execute(query).first()
        return None if row is None else dict(row._mapping)

    def offensive_visible(self, viewer: Viewer, limit: int = 200) -> list[dict[str, Any]]:
        """Citizens' items the moderation agent labelled and nobody has removed yet, oldest first."""
        removed = exists().where(moderation_findings.c.item == items.c.item, moderation_findings.c.kind == "removed")
        labelled = moderation_findings.alias("labelled")
        query = (
            select(
                items.c.item,
                items.c.page,
                items.c.page_title,
                items.c.municipality,
                items.c.link,
                items.c.text,
                labelled.c.labels,
                labelled.c.created_at,
            )
            .join(items, items.c.item == labelled.c.item)
            .where(
                labelled.c.kind == "labelled",
                labelled.c.role == "citizen",
                ~removed,
                items.c.outcome.notin_(["withdrawn", "moderated"]),
                _viewer_filter(viewer),
            )
            .order_by(labelled.c.created_at, items.c.item)
            .limit(limit)
        )
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]

    def removed_for_review(self, viewer: Viewer, limit: int = 200) -> list[dict[str, Any]]:
        """Items the page removed without an answer (`review`), newest first."""
        query = (
            select(
                items.c.item,
                items.c.page,
                items.c.page_title,
                items.c.municipality,
                items.c.link,
                items.c.text,
                items.c.created_at,
                items.c.closed_at,
            )
            .where(items.c.review == literal(True), _viewer_filter(viewer))
            .order_by(items.c.closed_at.desc(), items.c.item)
            .limit(limit)
        )
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]

    def newest_registry(self) -> tuple[str, str, str] | None:
        """(digest, source, document) of the newest registry version the store recorded."""
        query = (
            select(registry_versions.c.digest, registry_versions.c.source, registry_versions.c.document)
            .order_by(registry_versions.c.effective_from.desc())
            .limit(1)
        )
        with self.engine.connect() as connection:
            row = connection.execute(query).first()
        return None if row is None else (row.digest, row.source, row.document)


class RegistrySource:
    """The page registry the console shows: the file when one is configured (reloaded when it changes),
    else the newest version the store recorded (looked at again once a minute), else the defaults."""

    def __init__(self, store: ConsoleStore, path: Any = None, recheck_s: float = 60.0) -> None:
        self._store = store
        self._watcher = RegistryWatcher(path) if path is not None else None
        self._recheck_s = recheck_s
        self._checked = 0.0
        self._digest: str | None = None
        self._registry = Registry.from_mapping({}, source="<defaults>")

    def current(self) -> Registry:
        if self._watcher is not None:
            self._watcher.check()
            return self._watcher.registry
        now = time.monotonic()
        if now - self._checked >= self._recheck_s or not self._checked:
            self._checked = now
            newest = self._store.newest_registry()
            if newest is not None and newest[0] != self._digest:
                digest, source, document = newest
                try:
                    self._registry = Registry.from_mapping(yaml.safe_load(document), source=source, digest=digest)
                    self._digest = digest
                except (RegistryError, yaml.YAMLError) as exc:
                    _log.error("the store's newest registry version does not load: %s", exc)
        return self._registry
