"""What the console reads from and writes to the store (SQLAlchemy Core; SQLite and PostgreSQL alike).

Every value a person typed reaches SQL as a bound parameter, never as SQL text: a filter such as
``' OR 1=1 --`` is a municipality nobody has, and the list is empty.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import yaml
from sqlalchemy import Engine, and_, case, exists, false, func, insert, literal, or_, select, true, update

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

__all__ = ["ConsoleStore", "RegistrySource", "UserError"]

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


@dataclass(frozen=True, slots=True)
class QueueGroup:
    """Pages that share one clock and one deadline (``pages``), or every page but ``others_than`` when
    ``rest`` (the pages the registry does not name), and how urgent one of their items is."""

    pages: tuple[str, ...]
    urgency: Callable[[int, int], float]  # (created_at, now) -> share of the deadline used
    rest: bool = False
    others_than: tuple[str, ...] = ()

    def condition(self) -> Any:
        named = items.c.page.in_(self.pages) if self.pages else false()
        if not self.rest:
            return named
        unnamed = items.c.page.notin_(self.others_than) if self.others_than else true()
        return or_(named, unnamed)


class UserError(ValueError):
    """A user that cannot be added; the message says why."""


def _viewer_filter(viewer: Viewer) -> Any:
    if viewer.sees_everything:
        return literal(True)
    if viewer.role == "curator":
        return items.c.municipality.in_(sorted(viewer.municipalities)) if viewer.municipalities else literal(False)
    return items.c.page.in_(sorted(viewer.pages)) if viewer.pages else literal(False)


def _json_list(text: str | None) -> frozenset[str]:
    try:
        value = orjson.loads(text or "[]")
    except orjson.JSONDecodeError:
        return frozenset()
    return frozenset(str(v) for v in value) if isinstance(value, list) else frozenset()


class ConsoleStore:
    """The console's queries on one engine. Blocking: the web handlers call them in a thread."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

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

        Counting and filtering happen in SQL. The order needs working time, which SQL cannot count, but
        within one group of pages on the same clock and deadline an item written earlier has used at
        least as much of its deadline: so each group's first ``offset + limit`` items by creation are
        enough, and only those are weighed (``urgency``) and merged. "Overdue" is the due time the store
        recorded (docs/history.md, "What is kept") having passed."""
        overdue = and_(items.c.due_at.is_not(None), items.c.due_at <= now)

        def where(skip: str | None = None) -> list[Any]:
            # The open items oldest first are the index on (outcome, created_at). Asked as `outcome =
            # 'open'` ordered by created_at, PostgreSQL's planner may walk the index on created_at alone,
            # through every closed item older than the oldest open one (it cannot know open items are the
            # newest); a range on outcome, outcome leading the order, leaves it only the former. Same rows.
            conditions = [items.c.outcome.between("open", "open"), _viewer_filter(viewer)]
            conditions += [items.c[name] == value for name, value in chosen.items() if value and name != skip]
            if overdue_only and skip != "overdue":
                conditions.append(overdue)
            return conditions

        names = list(chosen)
        flag = case((overdue, 1), else_=0).label("overdue")
        # One pass over the open items: how many there are per combination of the filters' values. The
        # combinations are few (a page has one municipality, sector and platform), and every count the
        # filters show is a sum over them.
        combos_query = (
            select(*(items.c[name] for name in names), func.max(items.c.page_title), flag, func.count())
            .where(items.c.outcome == "open", _viewer_filter(viewer))
            .group_by(*(items.c[name] for name in names), flag)
        )

        def matches(values: Mapping[str, Any], late: bool, skip: str | None) -> bool:
            if overdue_only and skip != "overdue" and not late:
                return False
            return all(values[name] == value for name, value in chosen.items() if value and name != skip)

        counts: dict[str, dict[str, int]] = {name: {} for name in names}
        titles: dict[str, str] = {}
        total = overdue_count = 0
        with self.engine.connect() as connection:
            for row in connection.execute(combos_query):
                values = dict(zip(names, row[: len(names)]))
                title, late, n = row[len(names)], bool(row[len(names) + 1]), int(row[len(names) + 2])
                if title:
                    titles[values["page"]] = title
                for name in names:
                    if matches(values, late, name):
                        counts[name][values[name]] = counts[name].get(values[name], 0) + n
                if matches(values, late, None):
                    total += n
                if late and matches(values, late, "overdue"):
                    overdue_count += n
            facets = {
                name: sorted(
                    ((value, titles.get(value, value) if name == "page" else value, n) for value, n in found.items()),
                    key=lambda facet: (facet[1], facet[0]),
                )
                for name, found in counts.items()
            }
            candidates: list[dict[str, Any]] = []
            for group in groups:
                query = (
                    select(*(items.c[name] for name in QUEUE_COLUMNS))
                    .where(*where(), group.condition())
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
            "total": int(total),
            "facets": facets,
            "overdue_count": int(overdue_count),
        }

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
