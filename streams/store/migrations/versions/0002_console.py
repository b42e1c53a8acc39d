"""The operations console: its users, disputes, and the record of every step taken in it.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    # The console's queue reads the open items oldest first.
    op.create_index("items_open_created", "items", ["outcome", "created_at"])
    op.create_table(
        "users",
        sa.Column("login", sa.String(100), primary_key=True),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("municipalities", sa.Text, nullable=False),
        sa.Column("pages", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "disputes",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("item", sa.String(200), nullable=False),
        sa.Column("by", sa.String(100), nullable=False),
        sa.Column("reason", sa.String(40), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("decided_by", sa.String(100)),
        sa.Column("decided_at", sa.BigInteger),
        sa.Column("note", sa.Text),
    )
    op.create_index("disputes_item", "disputes", ["item"])
    op.create_index("disputes_state", "disputes", ["state"])
    op.create_table(
        "console_actions",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("item", sa.String(200), nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("by", sa.String(100), nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("before", sa.Text),
        sa.Column("after", sa.Text),
    )
    op.create_index("console_actions_item", "console_actions", ["item", "at"])


def downgrade() -> None:
    op.drop_table("console_actions")
    op.drop_table("disputes")
    op.drop_table("users")
    op.drop_index("items_open_created", table_name="items")
