"""Drift as an offset and a rate: the tokens' clock model (verify.Drift).

A token migrated from 0001 has NULL here; its first accepted code starts the model
from its old offset (drift_s) with rate 0.

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

_COLUMNS = (("drift_at", sa.BigInteger), ("drift_off", sa.Float), ("drift_ppm", sa.Float),
            ("drift_p00", sa.Float), ("drift_p01", sa.Float), ("drift_p11", sa.Float))


def upgrade() -> None:
    for name, type_ in _COLUMNS:
        op.add_column("tokens", sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+): a batch copy of ``tokens`` would
    # trip the accounts/payments foreign keys.
    for name, _type in reversed(_COLUMNS):
        op.execute(f"ALTER TABLE tokens DROP COLUMN {name}")
