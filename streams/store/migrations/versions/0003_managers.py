"""Each page's VK managers as spans of time (otklik.managers).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "managers",
        sa.Column("page", sa.String(100), primary_key=True),
        sa.Column("user", sa.String(100), primary_key=True),
        sa.Column("since", sa.BigInteger, primary_key=True),
        sa.Column("until", sa.BigInteger),
    )


def downgrade() -> None:
    op.drop_table("managers")
