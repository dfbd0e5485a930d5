"""Guess budgets, idempotent refunds, default limits, the daily spend on the account.

- tokens: ``guess_tat``/``guess_hash`` (rules.TOKEN_GUESSES). A token the old rules left
  ``locked`` becomes active with one full cool-down from the upgrade: the lock clears by
  itself, as new locks do. Downgrade: a token still cooling down goes back to ``locked``.
- throttles: the other budgets (per merchant key, per merchant key and token, per client).
- refunds: ``merchant_id``, ``idem`` (unique per merchant), ``request_hash``, ``refunded_after``.
- schemes: default ``limit_per_payment``, ``limit_per_day``, ``currency`` for activation.
- accounts: ``spent_day``/``spent``, today's spending, filled from today's payments.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_ADDED = (
    ("tokens", "guess_tat", sa.BigInteger), ("tokens", "guess_hash", sa.String(16)),
    ("refunds", "merchant_id", sa.Integer), ("refunds", "idem", sa.String(300)),
    ("refunds", "request_hash", sa.String(64)), ("refunds", "refunded_after", sa.BigInteger),
    ("schemes", "limit_per_payment", sa.BigInteger), ("schemes", "limit_per_day", sa.BigInteger),
    ("schemes", "currency", sa.String(3)), ("accounts", "spent_day", sa.Integer),
)
_COOLDOWN = 5 * 3600  # rules.TOKEN_GUESSES at 0003: burst 5, one an hour (a fixed copy)


def upgrade() -> None:
    for table, name, type_ in _ADDED:
        op.add_column(table, sa.Column(name, type_, nullable=True))
    op.add_column("accounts", sa.Column("spent", sa.BigInteger, nullable=False, server_default="0"))
    op.create_index("uq_refunds_idem", "refunds", ["merchant_id", "idem"], unique=True)
    op.create_table("throttles", sa.Column("key", sa.String(120), primary_key=True),
                    sa.Column("tat", sa.BigInteger, nullable=False))
    now = int(time.time())
    day = now // 86400
    op.execute(sa.text("UPDATE tokens SET status = 'active', guess_tat = :tat WHERE status = 'locked'")
               .bindparams(tat=now + _COOLDOWN))
    op.execute(sa.text(
        "UPDATE accounts SET spent_day = :day, spent = (SELECT COALESCE(SUM(p.amount), 0) FROM payments p "
        "WHERE p.token_id = accounts.token_id AND p.day = :day AND p.status = 'succeeded')").bindparams(day=day))


def downgrade() -> None:
    now = int(time.time())
    op.execute(sa.text("UPDATE tokens SET status = 'locked' WHERE status = 'active' AND guess_tat > :by")
               .bindparams(by=now + _COOLDOWN - 3600))
    op.drop_table("throttles")
    op.drop_index("uq_refunds_idem", "refunds")
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+), as in 0002.
    op.execute("ALTER TABLE accounts DROP COLUMN spent")
    for table, name, _type in reversed(_ADDED):
        op.execute(f"ALTER TABLE {table} DROP COLUMN {name}")
