"""Writing batches of topic records into the store, one transaction a batch (docs/history.md, "Exactly-once rows").

Every write is idempotent: items are upserted by id and change only for a higher record version (the
item's own order, not arrival order); events, findings and corrections carry unique keys and are
inserted once. A batch applied twice, or its records in another order, leaves the same rows.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Connection, Engine, and_, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from otklik.agents.history.rows import (
    Judgement,
    RecordError,
    correction_event,
    correction_judgements,
    correction_row,
    decode_interaction,
    decode_managers,
    decode_moderation,
    decode_override,
    decode_response,
    interaction_events,
    item_row,
    judgement_of,
    manager_changes,
    moderation_row,
    pending_row,
    record_events,
)
from otklik.agents.responses.rules import Managers
from otklik.schemas.records import LISTING_MARK
from otklik.streams.store.schema import (
    corrections,
    item_events,
    items,
    managers,
    moderation_findings,
    registry_versions,
)

__all__ = ["Applied", "Incoming", "StoreWriter"]

# The topics the store reads, by role (streams/settings.py, TOPIC_NAMES).
ROLES = ("responses", "moderation", "overrides", "interactions", "managers")

# What a newer record of an item replaces; text and received_at come from the item's interaction.
_JUDGEMENT_COLUMNS = (
    "page",
    "platform",
    "kind",
    "author",
    "created_at",
    "due_at",
    "outcome",
    "closed_at",
    "latency_s",
    "business_latency_s",
    "breached",
    "needs_answer",
    "judged",
    "responder",
    "reason",
    "deadline",
    "review",
    "region",
    "municipality",
    "sector",
    "page_title",
    "link",
    "extra",
    "version",
    "updated_at",
)


class Incoming(NamedTuple):
    """One record read from a topic."""

    role: str  # responses, moderation, overrides, interactions
    value: bytes
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    key: bytes | None = None


@dataclass
class Applied:
    """What one batch did."""

    items: int = 0
    events: int = 0
    findings: int = 0
    corrections: int = 0
    rejected: list[tuple[Incoming, str]] = field(default_factory=list)  # (record, reason): dead letters


def _executemany(connection: Connection, statement: Any, rows: list[dict[str, Any]]) -> None:
    """Run ``statement`` once per row through the driver's own executemany.

    Why: the rows are plain values the writer built (no type conversions needed), and SQLAlchemy's
    per-row parameter processing cost more than the database's work. The statements' meaning is in
    docs/history.md, "Exactly-once rows"; this is only how they are sent. Every row has the same keys."""
    if not rows:
        return
    compiled = statement.compile(dialect=connection.dialect, column_keys=list(rows[0]))
    if connection.dialect.name == "postgresql" and len(rows) >= _COPY_FROM_ROWS:
        _copy_then_insert(connection, statement.table.name, str(compiled), rows)
        return
    if compiled.positional:
        names = compiled.positiontup
        connection.exec_driver_sql(str(compiled), [tuple(row[name] for name in names) for row in rows])
    else:
        connection.exec_driver_sql(str(compiled), rows)


# From this many rows a PostgreSQL batch goes through COPY into a temporary table and one INSERT … SELECT
# with the statement's own ON CONFLICT clause: one round trip for the rows instead of one per row.
_COPY_FROM_ROWS = 50
_COLUMNS = re.compile(r"INSERT INTO \S+ \(([^)]*)\)")
_VALUES = re.compile(r"VALUES \((?:%\(\w+\)s|[^()])*\)")  # psycopg's binds are %(name)s


def _copy_then_insert(connection: Connection, table: str, sql: str, rows: list[dict[str, Any]]) -> None:
    staging = f"{table}_incoming"
    listed = _COLUMNS.match(sql)
    if listed is None:
        raise RuntimeError(f"cannot stage the statement for COPY: {sql[:120]}")
    columns = [name.strip().strip('"') for name in listed.group(1).split(",")]  # the INSERT's own order
    names = ", ".join(f'"{name}"' for name in columns)
    connection.exec_driver_sql(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging} (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
    )
    cursor = connection.connection.driver_connection.cursor()  # psycopg's own: COPY is not DB-API
    with cursor.copy(f"COPY {staging} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([row[name] for name in columns])
    insert, count = _VALUES.subn(f"SELECT {names} FROM {staging}", sql, count=1)
    if count != 1:
        raise RuntimeError(f"cannot stage the statement for COPY: {sql[:120]}")
    connection.exec_driver_sql(insert)
    connection.exec_driver_sql(f"TRUNCATE {staging}")


def _insert(connection: Connection, table: Any) -> Any:
    dialect = connection.dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


class StoreWriter:
    """Applies records to the store. ``pages`` gives a page's registry entry (``Registry.page``)."""

    def __init__(
        self,
        engine: Engine,
        pages: Callable[[str], Any],
        text_retention_s: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.pages = pages
        self.text_retention_s = text_retention_s
        self.clock = clock

    # ---- a batch -------------------------------------------------------------------------------------

    def apply(self, batch: Sequence[Incoming]) -> Applied:
        """Apply ``batch`` in one transaction. A record that does not decode is returned in
        ``rejected`` with its reason (for the dead-letter topic); the rest are written."""
        now = int(self.clock())
        kept_from = now - self.text_retention_s
        applied = Applied()
        records: dict[str, dict[str, Any]] = {}  # item -> its newest row in this batch
        pending: dict[str, dict[str, Any]] = {}
        events: dict[str, dict[str, Any]] = {}
        edits: list[dict[str, Any]] = []
        findings: dict[tuple[str, str], dict[str, Any]] = {}
        interactions: list[Any] = []
        roles: list[Any] = []
        overrides: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for incoming in batch:
            try:
                if incoming.role == "responses":
                    record = decode_response(incoming.value)
                    row = item_row(record, self.pages(record.page), now)
                    held = records.get(record.item)
                    if held is None or held["version"] < row["version"]:
                        records[record.item] = row
                    for ev in record_events(record, row["due_at"]):
                        events[ev["dedupe"]] = ev
                elif incoming.role == "interactions":
                    if LISTING_MARK in incoming.value:
                        continue  # a catch-up's listing: its closures come as records of otklik.responses
                    interactions.append(decode_interaction(incoming.value))
                elif incoming.role == "managers":
                    roles.append(decode_managers(incoming.value))
                elif incoming.role == "moderation":
                    finding = moderation_row(decode_moderation(incoming.value))
                    findings[(finding["item"], finding["kind"])] = finding
                elif incoming.role == "overrides":
                    override = decode_override(incoming.value)
                    overrides.append((correction_row(override), correction_event(override)))
                else:
                    raise RecordError(f"the store reads no topic of role {incoming.role!r}")
            except RecordError as exc:
                applied.rejected.append((incoming, str(exc)))
            except (OverflowError, ValueError, TypeError, KeyError) as exc:
                applied.rejected.append((incoming, f"{incoming.role}: {type(exc).__name__}: {exc}"))
        with self.engine.begin() as connection:
            # Who was a page's manager when decides whether a comment is an item (docs/responses.md,
            # "Page replies"): the roles first, then the interactions, each judged by its own time.
            spans = self._managers(connection, roles, {ia.page for ia in interactions})
            for ia in interactions:
                page, managed = self.pages(ia.page), spans.get(ia.page)
                row = pending_row(ia, page, now, kept_from, managed)
                if row is not None:
                    pending.setdefault(ia.item, row)
                elif ia.action == "edit" and ia.created_at is not None and ia.created_at >= kept_from:
                    edits.append({"i": ia.item, "t": ia.text or None})
                for ev in interaction_events(ia, page, managed):
                    events.setdefault(ev["dedupe"], ev)  # the first delivery, as across batches
            if pending:
                applied.items += self._write_pending(connection, list(pending.values()))
            if records:
                applied.items += self._write_records(connection, list(records.values()))
            for row in edits:
                connection.execute(update(items).where(items.c.item == row["i"]).values(text=row["t"]))
            if overrides:
                applied.corrections += self._write_corrections(connection, overrides, events)
            if findings:
                statement = _insert(connection, moderation_findings).on_conflict_do_nothing()
                _executemany(connection, statement, list(findings.values()))
                applied.findings += len(findings)
            if events:
                statement = _insert(connection, item_events).on_conflict_do_nothing(index_elements=["dedupe"])
                _executemany(connection, statement, list(events.values()))
                applied.events += len(events)
            if records or overrides:
                self._judge_corrections(connection, set(records) | {row["item"] for row, _ in overrides})
        return applied

    def _judge_corrections(self, connection: Connection, touched: set[str]) -> None:
        """Fill each correction's judgement before and after it from the item's recorded judgements, so
        the row does not depend on the order in which records and corrections were read."""
        touched_list = sorted(touched)
        for start in range(0, len(touched_list), 500):
            chunk = touched_list[start : start + 500]
            found = connection.execute(
                select(corrections.c.id, corrections.c.item, corrections.c.requested_at, corrections.c.by).where(
                    corrections.c.item.in_(chunk)
                )
            ).all()
            if not found:
                continue
            history: dict[str, list[Judgement]] = {}
            for item, detail in connection.execute(
                select(item_events.c.item, item_events.c.detail).where(
                    item_events.c.item.in_({row.item for row in found}),
                    item_events.c.kind.in_(("judged", "breached")),
                )
            ):
                judgement = judgement_of(orjson.loads(detail)) if detail else None
                if judgement is not None:
                    history.setdefault(item, []).append(judgement)
            for row in found:
                before, after = correction_judgements(history.get(row.item, []), row.requested_at, row.by)
                connection.execute(
                    update(corrections)
                    .where(corrections.c.id == row.id)
                    .values(
                        before_outcome=before.outcome if before else None,
                        before_breached=before.breached if before else None,
                        after_outcome=after.outcome if after else None,
                        after_breached=after.breached if after else None,
                    )
                )

    def _managers(self, connection: Connection, roles: list[Any], pages: set[str]) -> dict[str, Managers]:
        """Apply the batch's role changes to the ``managers`` table; return the spans of ``pages``."""
        wanted = sorted(pages | {record.page for record in roles})
        spans: dict[str, Managers] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            query = select(managers.c.page, managers.c.user, managers.c.since, managers.c.until).where(
                managers.c.page.in_(chunk)
            )
            for page, user, since, until in connection.execute(query.order_by(managers.c.since)):
                spans.setdefault(page, {}).setdefault(user, []).append([since, until])
        for record in roles:
            page_spans = spans.setdefault(record.page, {})
            held = {user for user, held_spans in page_spans.items() if held_spans and held_spans[-1][1] is None}
            begin, end = manager_changes(held, record)
            for user in begin:
                connection.execute(
                    _insert(connection, managers).on_conflict_do_nothing(),
                    {"page": record.page, "user": user, "since": record.at, "until": None},
                )
                page_spans.setdefault(user, []).append([record.at, None])
            for user in end:
                connection.execute(
                    update(managers)
                    .where(managers.c.page == record.page, managers.c.user == user, managers.c.until.is_(None))
                    .values(until=record.at)
                )
                page_spans[user][-1][1] = record.at
        return spans

    def _write_pending(self, connection: Connection, rows: list[dict[str, Any]]) -> int:
        # A judged item keeps its judgement; only what the interaction alone knows is filled in.
        statement = _insert(connection, items)
        statement = statement.on_conflict_do_update(
            index_elements=["item"],
            set_={
                "text": func.coalesce(items.c.text, statement.excluded.text),
                "received_at": func.coalesce(items.c.received_at, statement.excluded.received_at),
            },
        )
        _executemany(connection, statement, rows)
        return len(rows)

    def _write_records(self, connection: Connection, rows: list[dict[str, Any]]) -> int:
        for row in rows:
            row.setdefault("text", None)
            row.setdefault("received_at", None)
        statement = _insert(connection, items)
        statement = statement.on_conflict_do_update(
            index_elements=["item"],
            set_={name: statement.excluded[name] for name in _JUDGEMENT_COLUMNS},
            where=items.c.version < statement.excluded.version,
        )
        _executemany(connection, statement, rows)
        return len(rows)

    def _write_corrections(
        self,
        connection: Connection,
        overrides: list[tuple[dict[str, Any], dict[str, Any]]],
        events: dict[str, dict[str, Any]],
    ) -> int:
        written = 0
        for row, ev in overrides:
            values = dict(row, before_outcome=None, before_breached=None)
            result = connection.execute(
                _insert(connection, corrections).on_conflict_do_nothing(index_elements=["item", "requested_at", "by"]),
                values,
            )
            written += result.rowcount or 0
            events[ev["dedupe"]] = ev
        return written

    # ---- upkeep ----------------------------------------------------------------------------------------

    def erase_texts(self, now: int | None = None) -> int:
        """Erase the texts of items written before the retention period; returns how many."""
        cutoff = int(self.clock() if now is None else now) - self.text_retention_s
        with self.engine.begin() as connection:
            result = connection.execute(
                update(items).where(and_(items.c.text.is_not(None), items.c.created_at < cutoff)).values(text=None)
            )
        return int(result.rowcount or 0)

    def forget_author(self, author: str) -> dict[str, int]:
        """Erase one person's texts and replace their id everywhere; returns rows changed per table."""
        replacement = f"forgotten:{secrets.token_hex(8)}"
        with self.engine.begin() as connection:
            in_items = connection.execute(
                update(items).where(items.c.author == author).values(author=replacement, text=None)
            ).rowcount
            replied = connection.execute(
                update(items).where(items.c.responder == author).values(responder=replacement)
            ).rowcount
            in_events = connection.execute(
                update(item_events).where(item_events.c.actor == author).values(actor=replacement)
            ).rowcount
        return {"items": int(in_items or 0), "responders": int(replied or 0), "events": int(in_events or 0)}

    def record_registry(self, digest: str, source: str, pages: int, document: str) -> bool:
        """Keep a registry version the first time the store sees it in force; True when new."""
        with self.engine.begin() as connection:
            result = connection.execute(
                _insert(connection, registry_versions).on_conflict_do_nothing(index_elements=["digest"]),
                {
                    "digest": digest,
                    "source": source,
                    "effective_from": int(self.clock()),
                    "pages": pages,
                    "document": document,
                },
            )
        return bool(result.rowcount)


def record_registry(writer: Any, watcher: Any) -> None:
    """Keep the registry in force as a version of the store's registry history."""
    if watcher.path is None:
        return
    registry = watcher.registry
    document = Path(watcher.path).read_text(encoding="utf-8")
    writer.record_registry(registry.digest, str(watcher.path), len(registry), document)
