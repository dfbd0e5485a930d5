"""Online codes: schemes marked online, wallet keys, the issued codes (by keyed hash only).

Expand-only (docs/DEPLOY.md): a column with a default and two new tables, so servers still
running 0005's code keep working while it applies.

- schemes: ``online`` (false for every existing scheme): an online scheme's key never
  leaves the issuer; no token is activated under it; its codes are issued by the issuer.
- wallet_keys: one per token, the SHA-256 of the wallet's bearer key (never the key).
- online_codes: one row per issued code: ``hash`` is HMAC-SHA256 of the code under a key
  derived from the online scheme's key (never the code), its token, expiry, use, revocation.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("schemes", sa.Column("online", sa.Boolean, nullable=False, server_default=sa.false()))
    op.create_table(
        "wallet_keys",
        sa.Column("token_id", sa.BigInteger, sa.ForeignKey("tokens.id"), primary_key=True, autoincrement=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "online_codes",
        sa.Column("hash", sa.String(64), primary_key=True),
        sa.Column("token_id", sa.BigInteger, sa.ForeignKey("tokens.id"), nullable=False),
        sa.Column("prefix", sa.String(2), sa.ForeignKey("schemes.prefix"), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.Column("used_at", sa.BigInteger, nullable=True),
        sa.Column("revoked_at", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_online_codes_token", "online_codes", ["token_id", "expires_at"])


def downgrade() -> None:
    op.drop_index("ix_online_codes_token", table_name="online_codes")
    op.drop_table("online_codes")
    op.drop_table("wallet_keys")
    # Plain DROP COLUMN (SQLite 3.35+), as in 0002.
    op.execute("ALTER TABLE schemes DROP COLUMN online")
