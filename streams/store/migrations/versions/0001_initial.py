"""The first schema: items, their timelines, moderation findings, corrections, registry versions.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "items",
        sa.Column("item", sa.String(200), primary_key=True),
        sa.Column("page", sa.String(100), nullable=False),
        sa.Column("platform", sa.String(10), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("author", sa.String(100), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("received_at", sa.BigInteger),
        sa.Column("due_at", sa.BigInteger),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("closed_at", sa.BigInteger),
        sa.Column("latency_s", sa.BigInteger),
        sa.Column("business_latency_s", sa.BigInteger),
        sa.Column("breached", sa.Boolean, nullable=False),
        sa.Column("needs_answer", sa.Boolean, nullable=False),
        sa.Column("judged", sa.Boolean, nullable=False),
        sa.Column("responder", sa.String(100)),
        sa.Column("reason", sa.String(100)),
        sa.Column("deadline", sa.String(100)),
        sa.Column("review", sa.Boolean, nullable=False),
        sa.Column("region", sa.String(200), nullable=False),
        sa.Column("municipality", sa.String(200), nullable=False),
        sa.Column("sector", sa.String(100), nullable=False),
        sa.Column("page_title", sa.String(500)),
        sa.Column("link", sa.String(500)),
        sa.Column("text", sa.Text),
        sa.Column("extra", sa.Text),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_index("items_created", "items", ["created_at"])
    op.create_index("items_page_created", "items", ["page", "created_at"])
    op.create_index("items_open", "items", ["outcome", "due_at"])
    op.create_table(
        "item_events",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("item", sa.String(200), nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("actor", sa.String(200)),
        sa.Column("detail", sa.Text),
        sa.Column("dedupe", sa.String(300), nullable=False),
        sa.UniqueConstraint("dedupe", name="item_events_dedupe"),
    )
    op.create_index("item_events_item", "item_events", ["item", "at"])
    op.create_table(
        "moderation_findings",
        sa.Column("item", sa.String(200), primary_key=True),
        sa.Column("kind", sa.String(20), primary_key=True),
        sa.Column("page", sa.String(100), nullable=False),
        sa.Column("role", sa.String(20)),
        sa.Column("labels", sa.Text),
        sa.Column("created_at", sa.BigInteger),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("moderation_deadline", sa.String(100)),
        sa.Column("visible_s", sa.BigInteger),
        sa.Column("business_visible_s", sa.BigInteger),
        sa.Column("deleted_by", sa.String(20)),
        sa.Column("within_deadline", sa.Boolean),
    )
    op.create_index("moderation_page_at", "moderation_findings", ["page", "at"])
    op.create_table(
        "corrections",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("item", sa.String(200), nullable=False),
        sa.Column("requested_at", sa.BigInteger, nullable=False),
        sa.Column("by", sa.String(200), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("needs_answer", sa.Boolean, nullable=False),
        sa.Column("before_outcome", sa.String(20)),
        sa.Column("before_breached", sa.Boolean),
        sa.Column("after_outcome", sa.String(20)),
        sa.Column("after_breached", sa.Boolean),
        sa.UniqueConstraint("item", "requested_at", "by", name="corrections_once"),
    )
    op.create_index("corrections_item", "corrections", ["item"])
    op.create_table(
        "registry_versions",
        sa.Column("digest", sa.String(100), primary_key=True),
        sa.Column("source", sa.String(500), nullable=False),
        sa.Column("effective_from", sa.BigInteger, nullable=False),
        sa.Column("pages", sa.Integer, nullable=False),
        sa.Column("document", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for table in ("registry_versions", "corrections", "moderation_findings", "item_events", "items"):
        op.drop_table(table)
