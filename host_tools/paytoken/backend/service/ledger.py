"""The operators' ledger: accounts (show, credit and debit with a reason, history),
payments and refunds (listings, a payment, a refund with an idempotency key) and the
daily reconciliation export. As ``operators``: every function takes the ``Backend``
first; the CLI (``commands/operators.py``) and the admin API (``api/operators.py``)
both call these. Lists are pages (``operators.Page``).

Usage::

    page = list_payments(backend, merchant="corner shop", since=t0, limit=100)
    for line in export_day(backend, "2026-12-01", "csv"):
        out.write(line)
"""

from __future__ import annotations

import csv
import heapq
import io
import itertools
import json
import re
import secrets
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select, update

from paytoken.backend import CONFLICT, INVALID, NOT_FOUND, BackendError, rules
from paytoken.backend.service.operators import (
    Page,
    after_cursor,
    check_range,
    day_range,
    iso,
    merchant_row,
    page_limit,
    parse_cursor,
)
from paytoken.backend.store import audit
from paytoken.backend.store.tables import accounts as _a
from paytoken.backend.store.tables import adjustments as _j
from paytoken.backend.store.tables import merchants as _m
from paytoken.backend.store.tables import payments as _p
from paytoken.backend.store.tables import refunds as _r
from paytoken.backend.store.tables import tokens as _t

if TYPE_CHECKING:  # the Backend is passed in; this module never builds one
    from paytoken.backend.service import Backend

PAYMENT_STATUSES = ("succeeded", "refused", "refunded")  # refunded: succeeded, refunded > 0
EXPORT_FORMATS = ("csv", "jsonl")
EXPORT_COLUMNS = ("kind", "id", "payment_id", "merchant_id", "merchant", "merchant_order_id", "token_id",
                  "amount", "currency", "status", "reason", "created_at", "created_at_iso")



# ---- accounts -----------------------------------------------------------------------------------


def show_account(backend: Backend, token_id: int) -> dict:
    rules.check_token_id(token_id)
    with backend.engine.connect() as conn:
        row = conn.execute(select(_a.c.token_id, _a.c.currency, _a.c.balance, _t.c.status)
                           .join(_t, _t.c.id == _a.c.token_id).where(_a.c.token_id == token_id)).first()
    if row is None:
        raise BackendError(f"token {token_id} has no account (not activated?)", NOT_FOUND)
    return {"token_id": row.token_id, "currency": row.currency, "balance": row.balance,
            "status": row.status}


def adjust(backend: Backend, token_id: int, amount: int, reason: str, actor: str) -> dict:
    """Credit (amount > 0) or debit (amount < 0) the account, with a reason, audited.
    A debit never takes the balance below 0 (conflict instead)."""
    rules.check_token_id(token_id)
    if isinstance(amount, bool) or not isinstance(amount, int) or amount == 0:
        raise BackendError("amount must be a non-zero integer number of minor units", INVALID)
    rules.check_amount(abs(amount))
    if not isinstance(reason, str) or not rules.REASON.match(reason):
        raise BackendError("reason must be 1 to 200 printable characters", INVALID)
    now = backend.now()
    kind = "credit" if amount > 0 else "debit"
    with backend.engine.begin() as conn:
        row = conn.execute(update(_a).where(_a.c.token_id == token_id, _a.c.balance + amount >= 0)
                           .values(balance=_a.c.balance + amount)
                           .returning(_a.c.balance, _a.c.currency)).first()
        if row is None:
            bal = conn.execute(select(_a.c.balance).where(_a.c.token_id == token_id)).scalar()
            if bal is None:
                raise BackendError(f"token {token_id} has no account (not activated?)", NOT_FOUND)
            raise BackendError(f"debit of {-amount} exceeds the balance {bal}", CONFLICT)
        aid = "adj_" + secrets.token_hex(12)
        conn.execute(_j.insert().values(id=aid, token_id=token_id, amount=amount, currency=row.currency,
                                        reason=reason, actor=actor, balance=row.balance, created_at=now))
        audit.append(conn, now, actor, kind.upper(), token_id,
                     {"amount": abs(amount), "adjustment_id": aid, "reason": reason})
    return {"adjustment_id": aid, "token_id": token_id, "kind": kind, "amount": amount,
            "currency": row.currency, "balance": row.balance, "reason": reason, "created_at": now}


def history(backend: Backend, token_id: int, since: int | None = None, until: int | None = None,
            after: str | None = None, limit: int | None = None) -> Page:
    """The account's movements oldest first: credits and debits (with reason and actor),
    payments (negative) and refunds (positive). ``next`` is a cursor when more remain."""
    rules.check_token_id(token_id)
    n, cur = page_limit(limit), parse_cursor(after)
    check_range(since, until)

    def bounded(q, created, ident):
        for cond in (after_cursor(created, ident, cur), None if since is None else created >= since,
                     None if until is None else created < until):
            if cond is not None:
                q = q.where(cond)
        return q.order_by(created, ident).limit(n + 1)

    with backend.engine.connect() as conn:
        if conn.execute(select(_a.c.token_id).where(_a.c.token_id == token_id)).first() is None:
            raise BackendError(f"token {token_id} has no account (not activated?)", NOT_FOUND)
        adj = conn.execute(bounded(select(_j).where(_j.c.token_id == token_id), _j.c.created_at, _j.c.id)).all()
        pays = conn.execute(bounded(
            select(_p, _m.c.name.label("merchant")).join(_m, _m.c.id == _p.c.merchant_id)
            .where(_p.c.token_id == token_id, _p.c.status == "succeeded"), _p.c.created_at, _p.c.id)).all()
        refs = conn.execute(bounded(
            select(_r, _p.c.currency, _m.c.name.label("merchant")).join(_p, _p.c.id == _r.c.payment_id)
            .join(_m, _m.c.id == _p.c.merchant_id).where(_p.c.token_id == token_id),
            _r.c.created_at, _r.c.id)).all()
    entries = heapq.merge(
        ({"kind": "credit" if r.amount > 0 else "debit", "id": r.id, "amount": r.amount, "currency": r.currency,
          "created_at": r.created_at, "reason": r.reason, "actor": r.actor, "balance": r.balance} for r in adj),
        ({"kind": "payment", "id": r.id, "amount": -r.amount, "currency": r.currency, "created_at": r.created_at,
          "merchant": r.merchant, "merchant_order_id": r.merchant_order_id} for r in pays),
        ({"kind": "refund", "id": r.id, "amount": r.amount, "currency": r.currency, "created_at": r.created_at,
          "merchant": r.merchant, "payment_id": r.payment_id} for r in refs),
        key=lambda e: (e["created_at"], e["id"]))
    items = list(itertools.islice(entries, n + 1))
    nxt = f"{items[n - 1]['created_at']}:{items[n - 1]['id']}" if len(items) > n else None
    return Page(items[:n], nxt)


# ---- payments and refunds -------------------------------------------------------------------------


def _payment_out(r) -> dict:
    return {"payment_id": r.id, "merchant_id": r.merchant_id, "merchant": r.merchant,
            "merchant_order_id": r.merchant_order_id, "token_id": r.token_id, "amount": r.amount,
            "currency": r.currency, "status": r.status, "reason": r.reason, "refunded": r.refunded,
            "created_at": r.created_at}


def list_payments(backend: Backend, merchant: str | int | None = None, token_id: int | None = None,
                  since: int | None = None, until: int | None = None, status: str | None = None,
                  after: str | None = None, limit: int | None = None) -> Page:
    """Payments oldest first, in [since, until), filtered; ``status`` is succeeded,
    refused or refunded (succeeded and refunded at least in part)."""
    n, cur = page_limit(limit), parse_cursor(after)
    check_range(since, until)
    if status is not None and status not in PAYMENT_STATUSES:
        raise BackendError(f"status must be one of {', '.join(PAYMENT_STATUSES)}", INVALID)
    q = select(_p, _m.c.name.label("merchant")).join(_m, _m.c.id == _p.c.merchant_id)
    with backend.engine.connect() as conn:
        if merchant is not None:
            q = q.where(_p.c.merchant_id == merchant_row(conn, merchant).id)
        if token_id is not None:
            q = q.where(_p.c.token_id == rules.check_token_id(token_id))
        if since is not None:
            q = q.where(_p.c.created_at >= since)
        if until is not None:
            q = q.where(_p.c.created_at < until)
        if status == "refunded":
            q = q.where(_p.c.status == "succeeded", _p.c.refunded > 0)
        elif status is not None:
            q = q.where(_p.c.status == status)
        cond = after_cursor(_p.c.created_at, _p.c.id, cur)
        if cond is not None:
            q = q.where(cond)
        rows = conn.execute(q.order_by(_p.c.created_at, _p.c.id).limit(n + 1)).all()
    items = [_payment_out(r) for r in rows[:n]]
    nxt = f"{items[-1]['created_at']}:{items[-1]['payment_id']}" if len(rows) > n else None
    return Page(items, nxt)


def _refund_out(r) -> dict:
    return {"refund_id": r.id, "payment_id": r.payment_id, "merchant_id": r.merchant_id, "merchant": r.merchant,
            "token_id": r.token_id, "amount": r.amount, "currency": r.currency, "created_at": r.created_at}


def _refunds_query():
    return (select(_r, _p.c.merchant_id, _p.c.token_id, _p.c.currency, _m.c.name.label("merchant"))
            .join(_p, _p.c.id == _r.c.payment_id).join(_m, _m.c.id == _p.c.merchant_id))


def show_payment(backend: Backend, payment_id: str) -> dict:
    """One payment (any merchant's) with its refunds."""
    if not isinstance(payment_id, str) or not re.fullmatch(r"pay_[0-9a-f]{24}", payment_id):
        raise BackendError("a payment id is pay_ and 24 hex digits", INVALID)
    with backend.engine.connect() as conn:
        row = conn.execute(select(_p, _m.c.name.label("merchant")).join(_m, _m.c.id == _p.c.merchant_id)
                           .where(_p.c.id == payment_id)).first()
        if row is None:
            raise BackendError(f"no payment {payment_id}", NOT_FOUND)
        refs = conn.execute(_refunds_query().where(_r.c.payment_id == payment_id)
                            .order_by(_r.c.created_at, _r.c.id)).all()
    out = _payment_out(row)
    out["refunds"] = [_refund_out(r) for r in refs]
    return out


def list_refunds(backend: Backend, merchant: str | int | None = None, token_id: int | None = None,
                 payment_id: str | None = None, since: int | None = None, until: int | None = None,
                 after: str | None = None, limit: int | None = None) -> Page:
    n, cur = page_limit(limit), parse_cursor(after)
    check_range(since, until)
    q = _refunds_query()
    with backend.engine.connect() as conn:
        if merchant is not None:
            q = q.where(_p.c.merchant_id == merchant_row(conn, merchant).id)
        if token_id is not None:
            q = q.where(_p.c.token_id == rules.check_token_id(token_id))
        if payment_id is not None:
            q = q.where(_r.c.payment_id == payment_id)
        if since is not None:
            q = q.where(_r.c.created_at >= since)
        if until is not None:
            q = q.where(_r.c.created_at < until)
        cond = after_cursor(_r.c.created_at, _r.c.id, cur)
        if cond is not None:
            q = q.where(cond)
        rows = conn.execute(q.order_by(_r.c.created_at, _r.c.id).limit(n + 1)).all()
    items = [_refund_out(r) for r in rows[:n]]
    nxt = f"{items[-1]['created_at']}:{items[-1]['refund_id']}" if len(rows) > n else None
    return Page(items, nxt)


def refund(backend: Backend, payment_id: str, amount: int | None, idempotency_key: str | None,
           actor: str) -> dict:
    """An operator's refund of any merchant's payment, through ``Backend.refund`` (the
    merchant's own path, so the same rules hold), with the idempotency key passed on.
    The refund path audits it as the merchant's; a second row names the operator who
    asked (each time: a retry with the same key is one refund, asked for twice)."""
    with backend.engine.connect() as conn:
        row = conn.execute(select(_p.c.merchant_id, _p.c.token_id).where(_p.c.id == payment_id)).first()
    if row is None:
        raise BackendError(f"no payment {payment_id}", NOT_FOUND)
    out = backend.refund(row.merchant_id, payment_id, amount, idempotency_key=idempotency_key)
    with backend.engine.begin() as conn:
        audit.append(conn, backend.now(), actor, "OPERATOR_REFUND", row.token_id,
                     {"payment_id": payment_id, "refund_id": out["refund_id"], "amount": out["amount"]})
    return dict(out, actor=actor)


# ---- the daily export ------------------------------------------------------------------------------


def _export_rows(conn: Connection, start: int, end: int, merchant_id: int | None) -> Iterator[dict[str, Any]]:
    pq = (select(_p, _m.c.name.label("merchant")).join(_m, _m.c.id == _p.c.merchant_id)
          .where(_p.c.created_at >= start, _p.c.created_at < end).order_by(_p.c.created_at, _p.c.id))
    rq = (_refunds_query().add_columns(_p.c.merchant_order_id)
          .where(_r.c.created_at >= start, _r.c.created_at < end).order_by(_r.c.created_at, _r.c.id))
    if merchant_id is not None:
        pq, rq = pq.where(_p.c.merchant_id == merchant_id), rq.where(_p.c.merchant_id == merchant_id)
    pays = ({"kind": "payment", "id": r.id, "payment_id": r.id, "merchant_id": r.merchant_id,
             "merchant": r.merchant, "merchant_order_id": r.merchant_order_id, "token_id": r.token_id,
             "amount": r.amount, "currency": r.currency, "status": r.status, "reason": r.reason,
             "created_at": r.created_at, "created_at_iso": iso(r.created_at)}
            for r in conn.execution_options(yield_per=500).execute(pq))
    refs = ({"kind": "refund", "id": r.id, "payment_id": r.payment_id, "merchant_id": r.merchant_id,
             "merchant": r.merchant, "merchant_order_id": r.merchant_order_id, "token_id": r.token_id,
             "amount": r.amount, "currency": r.currency, "status": "succeeded", "reason": None,
             "created_at": r.created_at, "created_at_iso": iso(r.created_at)}
            for r in conn.execution_options(yield_per=500).execute(rq))
    return heapq.merge(pays, refs, key=lambda e: (e["created_at"], e["kind"], e["id"]))


def export_day(backend: Backend, day: str, fmt: str, merchant: str | int | None = None) -> Iterator[str]:
    """Lines of one UTC day's payments (every status) and refunds, oldest first, from one
    consistent snapshot: CSV with a header row, or JSON lines. A refund is its own row on
    the day it was made (positive amount), whatever day its payment was."""
    if fmt not in EXPORT_FORMATS:
        raise BackendError(f"format must be one of {', '.join(EXPORT_FORMATS)}", INVALID)
    start, end = day_range(day)
    engine = backend.engine
    # Validate before the first line goes out, so an error is never half an export.
    with engine.connect() as conn:
        mid = None if merchant is None else merchant_row(conn, merchant).id

    def lines() -> Iterator[str]:
        opts = {} if engine.dialect.name == "sqlite" else {"isolation_level": "REPEATABLE READ"}
        with engine.connect().execution_options(**opts) as conn, conn.begin():
            buf = io.StringIO()
            writer = csv.DictWriter(buf, EXPORT_COLUMNS, lineterminator="\n")
            if fmt == "csv":
                writer.writeheader()
                yield _drain(buf)
            for row in _export_rows(conn, start, end, mid):
                if fmt == "csv":
                    writer.writerow(row)
                    yield _drain(buf)
                else:
                    yield json.dumps(row, sort_keys=True, separators=(",", ":")) + "\n"

    return lines()


def _drain(buf: io.StringIO) -> str:
    text = buf.getvalue()
    buf.seek(0)
    buf.truncate()
    return text

