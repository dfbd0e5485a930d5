"""Payments and refunds: ``pay`` (one transaction with the verification), the stored
answer of an order id, a merchant's payment, and refunds, idempotent per key (a part of
``Backend``; see ``service/__init__.py``).

Usage::

    result = backend.pay(merchant_id, "811234...", 1250, "CNY", "order-1")
"""

from __future__ import annotations

import hashlib
import logging
import secrets

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from paytoken.backend import CONFLICT, INVALID, NOT_FOUND, UNAVAILABLE, BackendError, rules
from paytoken.backend import THROTTLED as KIND_THROTTLED
from paytoken.backend.service.verification import THROTTLED, Verdict
from paytoken.backend.store import audit
from paytoken.backend.store.sql import (
    ACCOUNT,
    DEBIT,
    INSERT_PAYMENT,
    N_TOK,
    NO_LIMIT,
    SEL_PAY,
    SEL_PAYMENT,
    PayRow,
    PayTokRow,
    TokRow,
)
from paytoken.backend.store.tables import accounts as _a
from paytoken.backend.store.tables import payments as _p
from paytoken.backend.store.tables import refunds as _r
from paytoken.backend.store.tx import Tx
from paytoken.backend.verify import (
    CODE_INVALID,
    INSUFFICIENT_FUNDS,
    LIMIT_EXCEEDED,
    TOKEN_LOCKED,
    day_of,
)

log = logging.getLogger("paytoken.backend")


class Payments:
    """Payments and refunds."""

    def pay(self, merchant_id: int, code: str, amount: int, currency: str, merchant_order_id: str) -> dict:
        """Authorize and debit atomically, or refuse with a reason. Idempotent per order id.

        Raises BackendError (invalid) for a malformed request, which writes nothing, (conflict) when
        the order id was already used for a different request, and (throttled, ``retry_after``)
        when this merchant key sent too many wrong codes (rules.py): nothing checked or
        stored. A ``TOKEN_LOCKED`` refusal of a token cooling down is not stored either
        and carries ``retry_after`` (seconds until the lock clears by itself).
        """
        if not isinstance(code, str) or not 1 <= len(code) <= 64:
            raise BackendError("code must be a string of the 18 code digits", INVALID)
        rules.check_amount(amount)
        rules.check_currency(currency)
        rules.check_order_id(merchant_order_id)
        code = code.replace(" ", "")
        req = hashlib.sha256(f"{code}|{amount}|{currency}".encode()).hexdigest()
        parsed = self._parse(code)
        for _ in range(5):
            try:
                out = None
                if self._fast is not None and not isinstance(parsed, Verdict):
                    out = self._fast.pay(merchant_id, parsed, amount, currency, merchant_order_id, req)
                if out is None:
                    out = self._atomic(lambda tx: self._pay_tx(tx, merchant_id, parsed, amount, currency,
                                                               merchant_order_id, req))
                if isinstance(out, Verdict):  # THROTTLED: nothing was written
                    raise BackendError(f"{out.detail}; retry after {out.retry_after} s", KIND_THROTTLED,
                                       retry_after=out.retry_after)
                return out
            except self._integrity_errors:
                # A concurrent request with the same order id committed first: answer with its result.
                stored = self._atomic(lambda tx: self._stored(tx, merchant_id, merchant_order_id, req))
                if stored is not None:
                    return stored
        raise BackendError("payment could not be recorded; retry with the same order id", UNAVAILABLE)

    def _stored(self, tx: Tx, merchant_id: int, order_id: str, req: str) -> dict | None:
        row = tx.one(SEL_PAYMENT, {"m": merchant_id, "o": order_id})
        if row is None:
            return None
        p = PayRow._make(row)
        if p.request_hash != req:
            raise BackendError("merchant_order_id was already used for a different request", CONFLICT)
        return self._result(p)

    @staticmethod
    def _result(row) -> dict:
        ok = row.status == "succeeded"
        return {"payment_id": row.id, "status": row.status, "reason": row.reason,
                "token_id": row.token_id if ok else None, "amount": row.amount, "currency": row.currency}

    def _pay_tx(self, tx: Tx, merchant_id: int, parsed, amount: int, currency: str,
                order_id: str, req: str) -> dict:
        now = self.now()
        day = day_of(now)
        row = None
        if not isinstance(parsed, Verdict):
            row = tx.one(SEL_PAY, {"id": parsed[1], "m": merchant_id, "o": order_id,
                                    "km": f"m:{merchant_id}", "kmt": f"mt:{merchant_id}:{parsed[1]}"})
        if row is None:  # no such token: only the order id can have a stored answer
            stored = self._stored(tx, merchant_id, order_id, req)
            if stored is not None:
                return stored
            v = parsed if isinstance(parsed, Verdict) else Verdict(CODE_INVALID, detail="no such token")
            log.info("payment refused %s merchant=%s order=%s: %s", v.reason, merchant_id, order_id, v.detail)
            return {"payment_id": None, "status": "refused", "reason": v.reason, "token_id": None,
                    "amount": amount, "currency": currency}
        r = PayTokRow._make(row)
        if r.stored is not None:
            return self._stored(tx, merchant_id, order_id, req)
        for budget, tat, what in ((rules.MERCHANT_GUESSES, r.m_tat, "too many wrong codes from this merchant key"),
                                  (rules.MERCHANT_TOKEN_GUESSES, r.mt_tat,
                                   "too many wrong codes for this token from this merchant key")):
            if not budget.allows(tat, now):
                return Verdict(THROTTLED, parsed[1], retry_after=budget.retry_after(tat, now), detail=what)
        v = self._check(tx, TokRow._make(row[:N_TOK]), parsed, now, f"merchant:{merchant_id}",
                        merchant_id=merchant_id)
        reason = v.reason
        if v.token_id is None or (reason in (THROTTLED, TOKEN_LOCKED) and v.retry_after):
            # The code names no token (stateless, repeatable), or the token is cooling down
            # (nothing checked): nothing to debit or store. THROTTLED becomes a 429.
            log.info("payment refused %s merchant=%s order=%s: %s", reason, merchant_id, order_id, v.detail)
            if reason == THROTTLED:
                return v
            out = {"payment_id": None, "status": "refused", "reason": reason, "token_id": None,
                   "amount": amount, "currency": currency}
            if v.retry_after:
                out["retry_after"] = v.retry_after
            return out
        if reason is None:
            spent = r.spent if r.spent_day == day else 0
            if r.limit_per_payment is not None and amount > r.limit_per_payment:
                reason = LIMIT_EXCEEDED
            elif r.limit_per_day is not None and spent + amount > r.limit_per_day:
                reason = LIMIT_EXCEEDED
            elif r.balance is None or r.currency != currency or r.balance < amount:
                reason = INSUFFICIENT_FUNDS
            elif tx.run(DEBIT, {"id": v.token_id, "cur": currency, "amount": amount, "day": day,
                                 "lim": NO_LIMIT if r.limit_per_day is None else r.limit_per_day}) != 1:
                # a concurrent payment of this token changed the account since the SELECT
                bal, cur, sday, sp = tx.one(ACCOUNT, {"id": v.token_id})
                over = r.limit_per_day is not None and (sp if sday == day else 0) + amount > r.limit_per_day
                reason = LIMIT_EXCEEDED if over else INSUFFICIENT_FUNDS
        pid = "pay_" + secrets.token_hex(12)
        status = "succeeded" if reason is None else "refused"
        drift = v.drift  # the code was accepted (its step consumed) even if the debit was refused
        out = {"id": pid, "m": merchant_id, "o": order_id, "req": req, "token_id": v.token_id,
               "amount": amount, "currency": currency, "status": status, "reason": reason, "step": v.step,
               "day": day, "now": now, "drift_off": drift and drift[0], "drift_ppm": drift and drift[1]}
        tx.run(INSERT_PAYMENT, out)
        log.info("payment %s %s %s merchant=%s token=%s", pid, status, reason or "", merchant_id, v.token_id)
        return self._result(_Row(out))

    def get_payment(self, merchant_id: int, payment_id: str) -> dict:
        """A merchant's own payment, with the refunded total and creation time."""
        with self.engine.begin() as conn:
            row = conn.execute(select(_p).where(_p.c.id == payment_id, _p.c.merchant_id == merchant_id)).first()
        if row is None:
            raise BackendError(f"no payment {payment_id}", NOT_FOUND)
        out = self._result(row)
        out.update(merchant_order_id=row.merchant_order_id, refunded=row.refunded, created_at=row.created_at)
        return out

    def refund(self, merchant_id: int, payment_id: str, amount: int | None = None,
               idempotency_key: str | None = None) -> dict:
        """Refund all (default) or part of a succeeded payment back to the token's account.

        Idempotent like a payment: the same ``idempotency_key`` with the same payment and
        amount gives the stored answer and refunds once; with another payment or amount it
        is a conflict. Without a key the request itself is the key: an identical refund (same
        payment, same amount, or again "all that remains") is the same refund, answered
        from the record; a second refund of the same amount needs its own key. Whatever
        runs concurrently, the refunds of a payment never exceed it (a conditional UPDATE).
        """
        if amount is not None:
            rules.check_amount(amount)
        if idempotency_key is not None:
            rules.check_idem_key(idempotency_key)
        req = hashlib.sha256(f"{payment_id}|{'rest' if amount is None else amount}".encode()).hexdigest()
        idem = f"key:{idempotency_key}" if idempotency_key is not None else f"body:{req}"
        for _ in range(5):
            try:
                return self._refund_tx(merchant_id, payment_id, amount, idem, req)
            except IntegrityError:
                pass  # a concurrent refund with this key committed first: its answer follows
            with self.engine.connect() as conn:
                stored = _stored_refund(conn, merchant_id, idem, req)
            if stored is not None:
                return stored
        raise BackendError("refund could not be recorded; retry with the same Idempotency-Key", UNAVAILABLE)

    def _refund_tx(self, merchant_id: int, payment_id: str, amount: int | None, idem: str, req: str) -> dict:
        with self.engine.begin() as conn:
            out = _stored_refund(conn, merchant_id, idem, req)
            if out is not None:
                return out
            # The payment's row lock orders the refunds of a payment (PostgreSQL; on SQLite
            # BEGIN IMMEDIATE orders everything). A twin with the same key waits here, then
            # finds this one's record.
            row = conn.execute(select(_p).where(_p.c.id == payment_id, _p.c.merchant_id == merchant_id)
                               .with_for_update()).first()
            if row is None:
                raise BackendError(f"no payment {payment_id}", NOT_FOUND)
            out = _stored_refund(conn, merchant_id, idem, req)
            if out is not None:
                return out
            if row.status != "succeeded":
                raise BackendError("only a succeeded payment can be refunded", CONFLICT)
            rid = "ref_" + secrets.token_hex(12)
            now = self.now()
            remaining = row.amount - row.refunded
            if amount is None:
                amount = remaining
            if amount < 1 or amount > remaining:
                raise BackendError("refund exceeds what remains of the payment", CONFLICT)
            refunded = conn.execute(update(_p).where(_p.c.id == payment_id, _p.c.refunded + amount <= _p.c.amount)
                                    .values(refunded=_p.c.refunded + amount).returning(_p.c.refunded)).scalar()
            if refunded is None:  # cannot happen under the row lock; fail closed all the same
                raise BackendError("refund exceeds what remains of the payment", CONFLICT)
            conn.execute(_r.insert().values(id=rid, payment_id=payment_id, amount=amount, created_at=now,
                                            merchant_id=merchant_id, idem=idem, request_hash=req,
                                            refunded_after=refunded))
            conn.execute(update(_a).where(_a.c.token_id == row.token_id).values(balance=_a.c.balance + amount))
            audit.append(conn, now, f"merchant:{merchant_id}", "REFUND", row.token_id,
                         {"payment_id": payment_id, "refund_id": rid, "amount": amount})
        return {"refund_id": rid, "payment_id": payment_id, "amount": amount, "refunded": refunded}


def _stored_refund(conn, merchant_id: int, idem: str, req: str) -> dict | None:
    # the answer recorded for this merchant's idempotency key; another body is a 409
    row = conn.execute(select(_r).where(_r.c.merchant_id == merchant_id, _r.c.idem == idem)).first()
    if row is None:
        return None
    if row.request_hash != req:
        raise BackendError("Idempotency-Key was already used for a different refund", CONFLICT)
    return {"refund_id": row.id, "payment_id": row.payment_id, "amount": row.amount,
            "refunded": row.refunded_after}


class _Row:
    """Attribute access over a dict, so a new payment renders like a stored one."""

    def __init__(self, d: dict) -> None:
        self.__dict__.update(d)
