"""The store's tables: one schema for SQLite and PostgreSQL (SQLAlchemy Core; docs/history.md, "What is kept").

Times are unix seconds (UTC) in BIGINT columns: the same arithmetic in both databases and in Python.
Migrations (`streams/store/migrations/`) create exactly these; a test compares the two.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

# The schema version this code reads and writes: the newest Alembic revision. The store refuses to
# start on a database at another version (docs/history.md, "Migrations").
SCHEMA_VERSION: Final = "0003"

metadata = MetaData()

# One row per item: its last judgement (by the item's own record version), where it was, and its text
# while retained. Items the worker has not judged yet (open, not due) come from otklik.interactions
# with version 0.
items = Table(
    "items",
    metadata,
    Column("item", String(200), primary_key=True),
    Column("page", String(100), nullable=False),
    Column("platform", String(10), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("author", String(100), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("received_at", BigInteger),
    Column("due_at", BigInteger),
    Column("outcome", String(20), nullable=False),
    Column("closed_at", BigInteger),
    Column("latency_s", BigInteger),
    Column("business_latency_s", BigInteger),
    Column("breached", Boolean, nullable=False),
    Column("needs_answer", Boolean, nullable=False),
    Column("judged", Boolean, nullable=False),
    Column("responder", String(100)),
    Column("reason", String(100)),  # triage's reason, or "override"
    Column("deadline", String(100)),  # as the registry wrote it, at the time of judgement
    Column("review", Boolean, nullable=False),  # removed by the page without an answer
    Column("region", String(200), nullable=False),
    Column("municipality", String(200), nullable=False),
    Column("sector", String(100), nullable=False),
    Column("page_title", String(500)),
    Column("link", String(500)),
    Column("text", Text),  # erased after OTKLIK_TEXT_RETENTION
    Column("extra", Text),  # the record's `extra`, as JSON
    Column("version", Integer, nullable=False),  # the record's version; 0 before the first record
    Column("updated_at", BigInteger, nullable=False),  # when the store last changed the row
    Index("items_created", "created_at"),
    Index("items_page_created", "page", "created_at"),
    Index("items_open", "outcome", "due_at"),
)

# What happened to an item, in order: received, edited, replied, deleted, restored, breached, judged,
# corrected. `dedupe` makes a record applied twice one event.
item_events = Table(
    "item_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("item", String(200), nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("kind", String(20), nullable=False),
    Column("actor", String(200)),
    Column("detail", Text),  # JSON
    Column("dedupe", String(300), nullable=False),
    UniqueConstraint("dedupe", name="item_events_dedupe"),
    Index("item_events_item", "item", "at"),
)

# The moderation agent's findings (otklik.moderation), one per item and kind.
moderation_findings = Table(
    "moderation_findings",
    metadata,
    Column("item", String(200), primary_key=True),
    Column("kind", String(20), primary_key=True),
    Column("page", String(100), nullable=False),
    Column("role", String(20)),
    Column("labels", Text),  # JSON list
    Column("created_at", BigInteger),
    Column("at", BigInteger, nullable=False),
    Column("moderation_deadline", String(100)),
    Column("visible_s", BigInteger),
    Column("business_visible_s", BigInteger),
    Column("deleted_by", String(20)),
    Column("within_deadline", Boolean),
    Index("moderation_page_at", "page", "at"),
)

# Every correction of triage (otklik.overrides): who, when, why; the item's judgement before it (as the
# store held it when the correction arrived) and after it (its next record carrying the correction).
corrections = Table(
    "corrections",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("item", String(200), nullable=False),
    Column("requested_at", BigInteger, nullable=False),
    Column("by", String(200), nullable=False),
    Column("note", Text, nullable=False),
    Column("needs_answer", Boolean, nullable=False),
    Column("before_outcome", String(20)),
    Column("before_breached", Boolean),
    Column("after_outcome", String(20)),
    Column("after_breached", Boolean),
    UniqueConstraint("item", "requested_at", "by", name="corrections_once"),
    Index("corrections_item", "item"),
)

# The registry's versions, by content digest, with when the store first saw each in force.
registry_versions = Table(
    "registry_versions",
    metadata,
    Column("digest", String(100), primary_key=True),
    Column("source", String(500), nullable=False),
    Column("effective_from", BigInteger, nullable=False),
    Column("pages", Integer, nullable=False),
    Column("document", Text, nullable=False),  # the registry file's text
)


# ---- the operations console (streams/console/; revision 0002) ----------------------------------------

# The console's queue reads the open items oldest first.
Index("items_open_created", items.c.outcome, items.c.created_at)

# The console's users: a login, an argon2 hash of the password, a role, and what the role is limited to
# (a curator's municipalities, a page administrator's pages; JSON lists).
users = Table(
    "users",
    metadata,
    Column("login", String(100), primary_key=True),
    Column("password_hash", String(200), nullable=False),
    Column("role", String(20), nullable=False),  # operator, curator, page_admin, analyst
    Column("municipalities", Text, nullable=False),  # JSON list
    Column("pages", Text, nullable=False),  # JSON list
    Column("created_at", BigInteger, nullable=False),
)

# A page administrator's dispute of an item's judgement, and the operator's decision.
disputes = Table(
    "disputes",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("item", String(200), nullable=False),
    Column("by", String(100), nullable=False),
    Column("reason", String(40), nullable=False),  # answered_in_dm, not_addressed, duplicate, other
    Column("text", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("state", String(20), nullable=False),  # open, accepted, rejected
    Column("decided_by", String(100)),
    Column("decided_at", BigInteger),
    Column("note", Text),
    Index("disputes_item", "item"),
    Index("disputes_state", "state"),
)

# Every step taken in the console about an item: who, when, what, why, the state before and after.
console_actions = Table(
    "console_actions",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("item", String(200), nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("by", String(100), nullable=False),
    Column("action", String(20), nullable=False),  # corrected, disputed, accepted, rejected
    Column("reason", Text, nullable=False),
    Column("before", Text),
    Column("after", Text),
    Index("console_actions_item", "item", "at"),
)


# Each page's VK managers, as spans of time (otklik.managers; docs/history.md, "What is kept"): who
# wrote a comment as the page when no registry entry says so. `until` is NULL while the role lasts.
managers = Table(
    "managers",
    metadata,
    Column("page", String(100), primary_key=True),
    Column("user", String(100), primary_key=True),
    Column("since", BigInteger, primary_key=True),
    Column("until", BigInteger),
)
