"""Operators' tools: revoked merchants, retired schemes, account adjustments with a
reason, and the indexes the listings and the daily export read.

Expand-only (docs/DEPLOY.md): nullable columns, a new table and new indexes, so servers
still running 0003's code keep working while it applies.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("merchants", sa.Column("revoked_at", sa.BigInteger, nullable=True))
    op.add_column("schemes", sa.Column("retired_at", sa.BigInteger, nullable=True))
    op.create_table(
        "adjustments",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("token_id", sa.BigInteger, sa.ForeignKey("tokens.id"), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("actor", sa.String(120), nullable=False),
        sa.Column("balance", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_adjustments_token_created", "adjustments", ["token_id", "created_at"])
    # IF NOT EXISTS: on a large live database, build these first with CREATE INDEX
    # CONCURRENTLY under the same names (docs/DEPLOY.md) and this step skips them.
    op.create_index("ix_payments_created", "payments", ["created_at"], if_not_exists=True)
    op.create_index("ix_payments_merchant_created", "payments", ["merchant_id", "created_at"], if_not_exists=True)
    op.create_index("ix_refunds_created", "refunds", ["created_at"], if_not_exists=True)


def downgrade() -> None:
    for name, table in (("ix_refunds_created", "refunds"), ("ix_payments_merchant_created", "payments"),
                        ("ix_payments_created", "payments"),
                        ("ix_adjustments_token_created", "adjustments")):
        op.drop_index(name, table_name=table)
    op.drop_table("adjustments")
    # Plain DROP COLUMN (SQLite 3.35+), as in 0002: a batch copy would trip foreign keys.
    op.execute("ALTER TABLE schemes DROP COLUMN retired_at")
    op.execute("ALTER TABLE merchants DROP COLUMN revoked_at")
