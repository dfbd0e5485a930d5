"""Code formats: each scheme names its format; a token can move to another scheme.

- schemes: ``format`` (the table ``paycode.FORMATS``; every scheme so far is format 1) and
  ``closed_at``: from then on the scheme's codes are refused ("unknown prefix").
- tokens: ``prev_prefix``, the scheme a token is moving away from at the service desk:
  its codes stay accepted until the token is seen on the new one (docs/FORMAT.md).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("schemes", sa.Column("format", sa.Integer, nullable=False, server_default="1"))
    op.add_column("schemes", sa.Column("closed_at", sa.BigInteger, nullable=True))
    op.add_column("tokens", sa.Column("prev_prefix", sa.String(2), nullable=True))


def downgrade() -> None:
    # Only format 1 existed before: a database with other formats cannot go back.
    n = op.get_bind().execute(sa.text("SELECT COUNT(*) FROM schemes WHERE format <> 1")).scalar()
    if n:
        raise RuntimeError(f"{n} schemes use a format other than 1: 0005 knows only format 1")
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+), as in 0002.
    op.execute("ALTER TABLE tokens DROP COLUMN prev_prefix")
    op.execute("ALTER TABLE schemes DROP COLUMN closed_at")
    op.execute("ALTER TABLE schemes DROP COLUMN format")
