"""The initial schema: schemes, tokens, accounts, merchants, admins, payments, refunds, audit.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schemes",
        sa.Column("prefix", sa.String(2), primary_key=True),
        sa.Column("key_enc", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "tokens",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("prefix", sa.String(2), sa.ForeignKey("schemes.prefix"), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("secret_enc", sa.Text, nullable=True),
        sa.Column("sync_key_enc", sa.Text, nullable=True),
        sa.Column("drift", sa.Integer, nullable=False),
        sa.Column("drift_s", sa.Integer, nullable=False),
        sa.Column("last_step", sa.BigInteger, nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("pending_drift", sa.Integer, nullable=True),
        sa.Column("pending_step", sa.BigInteger, nullable=True),
        sa.Column("clock_suspect", sa.Integer, nullable=False),
        sa.Column("limit_per_payment", sa.BigInteger, nullable=True),
        sa.Column("limit_per_day", sa.BigInteger, nullable=True),
        sa.Column("last_used_at", sa.BigInteger, nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.CheckConstraint("id >= 0 AND id <= 99999999", name="ck_tokens_id"),
    )
    op.create_table(
        "accounts",
        sa.Column("token_id", sa.BigInteger, sa.ForeignKey("tokens.id"), primary_key=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("balance", sa.BigInteger, nullable=False),
        sa.CheckConstraint("balance >= 0", name="ck_accounts_balance"),
    )
    op.create_table(
        "merchants",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("api_key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "admins",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "payments",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("merchant_id", sa.Integer, sa.ForeignKey("merchants.id"), nullable=False),
        sa.Column("merchant_order_id", sa.String(64), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("token_id", sa.BigInteger, sa.ForeignKey("tokens.id"), nullable=True),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("reason", sa.String(32), nullable=True),
        sa.Column("step", sa.BigInteger, nullable=True),
        sa.Column("refunded", sa.BigInteger, nullable=False),
        sa.Column("day", sa.Integer, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("merchant_id", "merchant_order_id", name="uq_payments_order"),
    )
    op.create_index("ix_payments_token_day", "payments", ["token_id", "day"])
    op.create_table(
        "refunds",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("payment_id", sa.String(40), sa.ForeignKey("payments.id"), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_refunds_payment_id", "refunds", ["payment_id"])
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("actor", sa.String(120), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("token_id", sa.BigInteger, nullable=True),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.bulk_insert(
        sa.table("audit_head", sa.column("id"), sa.column("seq"), sa.column("hash")),
        [{"id": 1, "seq": 0, "hash": "0" * 64}],
    )


def downgrade() -> None:
    for name in ("audit_head", "audit_log", "refunds", "payments", "admins", "merchants",
                 "accounts", "tokens", "schemes"):
        op.drop_table(name)
