"""A version on each token row, bumped by every UPDATE of it, for the one-statement payment.

- tokens: ``version`` (BIGINT, 0). A trigger adds 1 on every UPDATE of the row, whoever
  writes it (the service, the operators' tools, a migration, psql by hand), so a server
  that cached a row (backend/service/fastpay.py) can write ``... WHERE version = :seen`` and
  know that nothing it judged has changed since. PostgreSQL: a BEFORE UPDATE trigger;
  SQLite: an AFTER UPDATE trigger that writes the row once more (SQLite's recursive
  triggers are off, and its WHEN clause skips an UPDATE that set the version itself).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tokens", sa.Column("version", sa.BigInteger, nullable=False, server_default="0"))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE FUNCTION paytoken_token_version() RETURNS trigger LANGUAGE plpgsql AS "
                   "$$ BEGIN NEW.version := OLD.version + 1; RETURN NEW; END $$")
        op.execute("CREATE TRIGGER tokens_version BEFORE UPDATE ON tokens FOR EACH ROW "
                   "EXECUTE FUNCTION paytoken_token_version()")
    else:
        op.execute("CREATE TRIGGER tokens_version AFTER UPDATE ON tokens FOR EACH ROW "
                   "WHEN NEW.version = OLD.version BEGIN "
                   "UPDATE tokens SET version = OLD.version + 1 WHERE id = NEW.id; END")


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS tokens_version" +
               (" ON tokens" if op.get_bind().dialect.name == "postgresql" else ""))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS paytoken_token_version()")
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+), as in 0002.
    op.execute("ALTER TABLE tokens DROP COLUMN version")
