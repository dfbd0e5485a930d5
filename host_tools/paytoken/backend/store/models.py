"""The backend's tables (SQLAlchemy 2). Alembic migrations in ``migrations/`` create them.

Amounts are integers in minor units; times are UTC seconds; steps are TOTP steps of
``paycode.PERIOD`` seconds.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Token statuses. PENDING is the factory's pre-activation state: it never verifies.
PENDING, ACTIVE, LOCKED, REVOKED, LOST = "pending", "active", "locked", "revoked", "lost"
STATUSES = (PENDING, ACTIVE, LOCKED, REVOKED, LOST)


class Base(DeclarativeBase):
    pass


class Scheme(Base):
    """One scheme key per code prefix (scheme digit + version), sealed under the master key."""

    __tablename__ = "schemes"
    prefix: Mapped[str] = mapped_column(String(2), primary_key=True)
    key_enc: Mapped[str] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(BigInteger)
    retired_at: Mapped[int | None] = mapped_column(BigInteger)  # no new tokens once set (0003)
    # Defaults that activation gives each new token of the scheme (rules.DEFAULT_*).
    limit_per_payment: Mapped[int | None] = mapped_column(BigInteger)
    limit_per_day: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    # An online scheme (0006): the issuer makes its codes (backend/service/online.py); its key never
    # leaves the issuer and no token is activated under it.
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    # The code format (paycode.FORMATS) of the scheme's tokens (0007).
    format: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    closed_at: Mapped[int | None] = mapped_column(BigInteger)  # its codes refused once set (0007)


class Token(Base):
    __tablename__ = "tokens"
    __table_args__ = (CheckConstraint("id >= 0 AND id <= 99999999", name="ck_tokens_id"),)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    prefix: Mapped[str | None] = mapped_column(String(2), ForeignKey("schemes.prefix"))
    # The scheme the token is moving away from at the desk: accepted too until the
    # token is seen on ``prefix`` (0007; docs/FORMAT.md).
    prev_prefix: Mapped[str | None] = mapped_column(String(2))
    status: Mapped[str] = mapped_column(String(16))
    secret_enc: Mapped[str | None] = mapped_column(Text)
    sync_key_enc: Mapped[str | None] = mapped_column(Text)
    drift: Mapped[int] = mapped_column(Integer, default=0)  # steps the token runs ahead
    drift_s: Mapped[int] = mapped_column(Integer, default=0)  # the same, in seconds (finer)
    last_step: Mapped[int] = mapped_column(BigInteger, default=-1)  # last accepted step
    failures: Mapped[int] = mapped_column(Integer, default=0)  # consecutive
    pending_drift: Mapped[int | None] = mapped_column(Integer)  # unconfirmed jump, seconds
    pending_step: Mapped[int | None] = mapped_column(BigInteger)
    clock_suspect: Mapped[int] = mapped_column(Integer, default=0)  # forward jumps flagged
    # The drift model (verify.Drift): offset at drift_at, rate, covariance. NULL until set.
    drift_at: Mapped[int | None] = mapped_column(BigInteger)
    drift_off: Mapped[float | None] = mapped_column(Float)  # seconds ahead at drift_at
    drift_ppm: Mapped[float | None] = mapped_column(Float)  # rate, parts per million
    drift_p00: Mapped[float | None] = mapped_column(Float)
    drift_p01: Mapped[float | None] = mapped_column(Float)
    drift_p11: Mapped[float | None] = mapped_column(Float)
    limit_per_payment: Mapped[int | None] = mapped_column(BigInteger)
    limit_per_day: Mapped[int | None] = mapped_column(BigInteger)
    last_used_at: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)
    # The guess budget (rules.TOKEN_GUESSES, a GCRA): locked while guess_tat > now + slack.
    guess_tat: Mapped[int | None] = mapped_column(BigInteger)
    guess_hash: Mapped[str | None] = mapped_column(String(16))  # the last wrong guess (not counted twice)
    # Bumped by every UPDATE of the row, by a trigger (0009): a server's cached copy of the
    # row is current while its version is (backend/service/fastpay.py).
    version: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class Account(Base):
    __tablename__ = "accounts"
    __table_args__ = (CheckConstraint("balance >= 0", name="ck_accounts_balance"),)
    token_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("tokens.id"), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3))
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    # Succeeded payments of UTC day ``spent_day`` (the per-day limit, kept by the debit itself).
    spent_day: Mapped[int | None] = mapped_column(Integer)
    spent: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class Merchant(Base):
    __tablename__ = "merchants"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    api_key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger)  # its key no longer works (0003)


class Admin(Base):
    __tablename__ = "admins"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[int] = mapped_column(BigInteger)


class Payment(Base):
    __tablename__ = "payments"
    __table_args__ = (
        UniqueConstraint("merchant_id", "merchant_order_id", name="uq_payments_order"),
        Index("ix_payments_token_day", "token_id", "day"),
        Index("ix_payments_created", "created_at"),  # operators' listings and the export (0003)
        Index("ix_payments_merchant_created", "merchant_id", "created_at"),
    )
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    merchant_id: Mapped[int] = mapped_column(Integer, ForeignKey("merchants.id"))
    merchant_order_id: Mapped[str] = mapped_column(String(64))
    request_hash: Mapped[str] = mapped_column(String(64))
    token_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("tokens.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(10))  # succeeded | refused
    reason: Mapped[str | None] = mapped_column(String(32))
    step: Mapped[int | None] = mapped_column(BigInteger)
    refunded: Mapped[int] = mapped_column(BigInteger, default=0)
    day: Mapped[int] = mapped_column(Integer)  # UTC day number, for the daily limit
    created_at: Mapped[int] = mapped_column(BigInteger)
    # The drift model after this payment (0008): the console's drift history. NULL if refused.
    drift_off: Mapped[float | None] = mapped_column(Float)
    drift_ppm: Mapped[float | None] = mapped_column(Float)


class Refund(Base):
    """``idem`` is ``key:<Idempotency-Key>`` or, without the header, ``body:<request hash>``:
    unique per merchant, so a retried refund is applied once."""

    __tablename__ = "refunds"
    __table_args__ = (Index("ix_refunds_created", "created_at"),
                      Index("uq_refunds_idem", "merchant_id", "idem", unique=True))
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    payment_id: Mapped[str] = mapped_column(String(40), ForeignKey("payments.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)
    merchant_id: Mapped[int | None] = mapped_column(Integer)
    idem: Mapped[str | None] = mapped_column(String(300))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    refunded_after: Mapped[int | None] = mapped_column(BigInteger)  # the answer's ``refunded``


class Throttle(Base):
    """One GCRA bucket (rules.Budget) per key: ``m:<merchant>``, ``mt:<merchant>:<token>``,
    ``ip:<client address>``. ``tat`` is its theoretical arrival time (UTC s)."""

    __tablename__ = "throttles"
    key: Mapped[str] = mapped_column(String(120), primary_key=True)
    tat: Mapped[int] = mapped_column(BigInteger)


class Adjustment(Base):
    """An operator's credit (amount > 0) or debit (< 0) of an account, with its reason (0003)."""

    __tablename__ = "adjustments"
    __table_args__ = (Index("ix_adjustments_token_created", "token_id", "created_at"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    token_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("tokens.id"))
    amount: Mapped[int] = mapped_column(BigInteger)  # signed minor units
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(String(200))
    actor: Mapped[str] = mapped_column(String(120))
    balance: Mapped[int] = mapped_column(BigInteger)  # the balance after it
    created_at: Mapped[int] = mapped_column(BigInteger)


class AuditLog(Base):
    """Append-only, hash-chained: ``hash = sha256(prev_hash | canonical row)``."""

    __tablename__ = "audit_log"
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    ts: Mapped[int] = mapped_column(BigInteger)
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(40))
    token_id: Mapped[int | None] = mapped_column(BigInteger)
    detail: Mapped[str] = mapped_column(Text)  # canonical JSON, never secrets or whole codes
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """One row: the chain's last seq and hash. Updating it serializes appends."""

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class Batch(Base):
    """An id range handed to an offline factory station (``paytoken batch create``)."""

    __tablename__ = "batches"
    __table_args__ = (CheckConstraint("count >= 1 AND first_id >= 0 AND first_id + count <= 100000000",
                                      name="ck_batches_range"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    prefix: Mapped[str] = mapped_column(String(2), ForeignKey("schemes.prefix"))
    first_id: Mapped[int] = mapped_column(BigInteger, index=True)
    count: Mapped[int] = mapped_column(Integer)
    psk_id: Mapped[str] = mapped_column(String(32))  # public id of the pre-shared key
    sync_master_enc: Mapped[str] = mapped_column(Text)  # sealed under the master key
    created_at: Mapped[int] = mapped_column(BigInteger)


class WalletKey(Base):
    """A token holder's wallet key (0006): only its SHA-256; a new key replaces the old."""

    __tablename__ = "wallet_keys"
    token_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("tokens.id"), primary_key=True,
                                          autoincrement=False)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[int] = mapped_column(BigInteger)


class OnlineCode(Base):
    """One issued online code (0006): ``hash`` is its HMAC-SHA256 under a key derived from
    the online scheme's key, never the code. Accepted once, before ``expires_at``."""

    __tablename__ = "online_codes"
    __table_args__ = (Index("ix_online_codes_token", "token_id", "expires_at"),)
    hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("tokens.id"))
    prefix: Mapped[str] = mapped_column(String(2), ForeignKey("schemes.prefix"))
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)  # refused from this second on
    used_at: Mapped[int | None] = mapped_column(BigInteger)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger)  # its wallet key was replaced
