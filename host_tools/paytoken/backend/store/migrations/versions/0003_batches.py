"""Batches: the id ranges handed to offline factory stations (paytoken batch create).

A batch's tokens are ``pending`` rows in ``tokens``; the batch row records the range,
the prefix, which pre-shared key the batch file was sealed under (its public id, never
the key) and the batch's sync master, sealed under the master key.

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
        "batches",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("prefix", sa.String(2), sa.ForeignKey("schemes.prefix"), nullable=False),
        sa.Column("first_id", sa.BigInteger, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("psk_id", sa.String(32), nullable=False),
        sa.Column("sync_master_enc", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.CheckConstraint("count >= 1 AND first_id >= 0 AND first_id + count <= 100000000",
                           name="ck_batches_range"),
    )
    op.create_index("ix_batches_first_id", "batches", ["first_id"])


def downgrade() -> None:
    op.drop_index("ix_batches_first_id", "batches")
    op.drop_table("batches")
