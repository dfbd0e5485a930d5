"""The drift model after each accepted payment: its history, for the operators' console.

- payments: ``drift_off`` (seconds the token ran ahead, as learned after this payment) and
  ``drift_ppm`` (the learned rate). NULL for refused payments and those made before 0008.
  A payment's ``step`` and ``created_at`` already give the offset it observed.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("payments", sa.Column("drift_off", sa.Float, nullable=True))
    op.add_column("payments", sa.Column("drift_ppm", sa.Float, nullable=True))


def downgrade() -> None:
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+), as in 0002.
    op.execute("ALTER TABLE payments DROP COLUMN drift_ppm")
    op.execute("ALTER TABLE payments DROP COLUMN drift_off")
