"""Verification: a code's parse, the token's drift, and the verification write path
(``verify``, ``_check``, ``_miss``, ``_guess``, with their budgets) on the hot path's
driver-level transaction (a part of ``Backend``; see ``service/__init__.py``).

Usage::

    verdict = backend.verify("811234...")     # Verdict; .ok when accepted
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from paytoken.backend import codes, rules, verify
from paytoken.backend.store import audit
from paytoken.backend.store.models import LOCKED, LOST, REVOKED
from paytoken.backend.store.sql import (
    ACCEPT,
    CHARGE,
    GUESS,
    SEL_STATUS,
    SEL_TOKEN,
    SET_PENDING,
    SUSPECT,
    TAT,
    TokRow,
)
from paytoken.backend.store.tx import Tx
from paytoken.backend.verify import (
    CODE_EXPIRED,
    CODE_FUTURE,
    CODE_INVALID,
    CODE_REPLAYED,
    PERIOD,
    TOKEN_LOCKED,
    TOKEN_REVOKED,
    Decision,
    Drift,
    judge,
)

log = logging.getLogger("paytoken.backend")

THROTTLED = "THROTTLED"  # a Verdict reason that becomes HTTP 429, never a stored refusal


def _accept_params(token_id: int, step: int, new: Drift, now: int, open_by: int) -> dict:
    """The parameters of ``ACCEPT``: consume ``step``, keep the new drift model ``new``."""
    drift_s = round(new.offset)
    return {"id": token_id, "step": step, "drift": round(drift_s / PERIOD), "drift_s": drift_s, "at": new.at,
            "off": new.offset, "ppm": new.ppm, "p00": new.p00, "p01": new.p01, "p11": new.p11, "now": now,
            "open_by": open_by}


@dataclass
class Verdict:
    """The outcome of checking one code: ``reason`` None means accepted."""

    reason: str | None
    token_id: int | None = None  # set once the code named a real token
    step: int | None = None
    offset: int | None = None
    detail: str = ""  # why (for logs; never secret)
    retry_after: int = 0  # TOKEN_LOCKED (a cool-down) or THROTTLED: seconds until it clears
    drift: tuple[float, float] | None = None  # accepted: the learned (offset s, rate ppm) after it

    @property
    def ok(self) -> bool:
        return self.reason is None


class Verification:
    """The verification rules applied through ``store.tx.Tx``."""

    def _parse(self, code: str):
        # -> (prefix, token_id, residue, otp, format) or a Verdict. The prefix picks the
        # scheme, and the scheme its key and format (paycode.FORMATS).
        prefix = code.replace(" ", "")[:2]
        keys = {}
        fmt = 1
        if len(prefix) == 2 and prefix.isascii() and prefix.isdigit():
            scheme = self._code_scheme(prefix)
            if scheme is not None:
                keys[prefix], fmt = scheme
        try:  # length, digits, Damm and prefix first; then FF1 (codes.py: paycode's, faster)
            return codes.parse_code(code, keys) + (fmt,)
        except ValueError as exc:
            return Verdict(CODE_INVALID, detail=str(exc))

    def _drift(self, r: TokRow) -> Drift:
        return verify.drift_of(r, self.policy.rate_sigma_ppm)

    def verify(self, code: str, actor: str = "library") -> Verdict:
        """Check a code and, when good, consume its step (one transaction). No payment."""
        if not isinstance(code, str) or len(code) > 64:
            return Verdict(CODE_INVALID, detail="not a payment code")
        parsed = self._parse(code)
        if isinstance(parsed, Verdict):
            return parsed
        now = self.now()
        if self._fast is not None:
            fast = self._fast.verify(parsed, now)
            if fast is not None:
                return fast

        def work(tx: Tx) -> Verdict:
            row = tx.one(SEL_TOKEN, {"id": parsed[1]})
            return self._check(tx, row and TokRow._make(row), parsed, now, actor, alone=True)

        return self._atomic(work)

    def _check(self, tx: Tx, r: TokRow | None, parsed, now: int, actor: str, alone: bool = False,
               merchant_id: int | None = None) -> Verdict:
        """The verification rules on the token's row (``verify.judge`` decides); the writes
        go through ``tx``. ``alone``: the accepting UPDATE is the transaction's only write
        (verify, not pay). With ``merchant_id`` a guess is also charged to that merchant key."""
        prefix, token_id = parsed[0], parsed[1]
        if self.online.is_online(tx, prefix):  # an issuer-made code: looked up, not computed
            return self.online.check(tx, r, parsed[:4], now, actor, merchant_id)
        d = judge(r, parsed, lambda: self._secret(token_id, r.secret_enc), self.policy, now)
        return self._apply(tx, r, d, token_id, now, actor, alone, merchant_id)

    def _apply(self, tx: Tx, r: TokRow, d: Decision, token_id: int, now: int, actor: str, alone: bool,
               merchant_id: int | None) -> Verdict:
        """Apply ``judge``'s decision with conditional writes, as one unit in ``tx``."""
        kind, step, off = d.kind, d.step, d.offset
        if kind == verify.NO_TOKEN:
            return Verdict(CODE_INVALID, detail="no such token")
        if kind == verify.REVOKED:
            return Verdict(TOKEN_REVOKED, token_id)
        if kind == verify.LOCKED:
            return self._locked(token_id, r.status, r.guess_tat, now)
        open_by = rules.TOKEN_GUESSES.open_by(now)
        if kind == verify.FUTURE:
            if tx.run(SUSPECT, {"id": token_id, "open_by": open_by}) != 1:
                return self._recheck(tx, token_id, now)
            audit.append_raw(tx, now, actor, "CLOCK_SUSPECT", token_id,
                             {"offset": off, "known_drift_s": d.predicted})
            return Verdict(CODE_FUTURE, token_id, step, off, detail="for a time far ahead of the token's known clock")
        if kind == verify.REPLAYED:
            audit.append_raw(tx, now, actor, "CODE_REPLAYED", token_id, {"step": step})
            return Verdict(CODE_REPLAYED, token_id, step, off)
        if kind == verify.STALE:
            return Verdict(CODE_EXPIRED, token_id, step, off, detail="a stale code")
        if kind == verify.BEHIND:
            return Verdict(CODE_INVALID, token_id, detail="wrong code behind the window (not counted)")
        if kind == verify.REPEAT_GUESS:
            return Verdict(CODE_INVALID, token_id, detail="the same wrong code again (not counted)")
        if kind == verify.GUESS:
            return self._guess(tx, r, token_id, d.guess, now, actor, merchant_id)
        if d.suspect:  # ACCEPT (a resync) or PENDING_DRIFT, this many steps ahead
            tx.run(SUSPECT, {"id": token_id, "open_by": open_by})
            audit.append_raw(tx, now, actor, "CLOCK_SUSPECT", token_id,
                             {"offset": off, "known_drift_s": d.predicted})
        if kind == verify.PENDING_DRIFT:
            if tx.run(SET_PENDING, {"id": token_id, "drift": d.observed, "step": step, "open_by": open_by}) != 1:
                return self._recheck(tx, token_id, now)
            return Verdict(CODE_EXPIRED, token_id, step, off, detail="outside the time window")
        if d.resync:
            audit.append_raw(tx, now, actor, "DRIFT_RESYNC", token_id, {"from_s": d.predicted, "to_s": d.observed})
        new = d.drift
        if tx.run(ACCEPT, _accept_params(token_id, step, new, now, open_by), alone=alone and not tx.open) != 1:
            # another transaction consumed this step (or changed the status, or filled the budget) first
            return self._recheck(tx, token_id, now, step, off)
        return Verdict(None, token_id, step, off, drift=(new.offset, new.ppm))

    def _locked(self, token_id: int, status: str, tat: int | None, now: int) -> Verdict:
        if status == LOCKED:  # locked by hand (or before migration 0003): until an admin unlocks
            return Verdict(TOKEN_LOCKED, token_id, detail="locked until unlocked")
        return Verdict(TOKEN_LOCKED, token_id, detail="cooling down after wrong codes",
                       retry_after=rules.TOKEN_GUESSES.retry_after(tat, now))

    def _recheck(self, tx: Tx, token_id: int, now: int, step: int | None = None,
                 off: int | None = None) -> Verdict:
        """Why a conditional write on the token found nothing to change."""
        status, tat = tx.one(SEL_STATUS, {"id": token_id})
        if status in (REVOKED, LOST):
            return Verdict(TOKEN_REVOKED, token_id, step, off)
        if status == LOCKED or not rules.TOKEN_GUESSES.allows(tat, now):
            return self._locked(token_id, status, tat, now)
        return Verdict(CODE_REPLAYED, token_id, step, off)

    def _guess(self, tx: Tx, r: TokRow, token_id: int, guess: bytes, now: int, actor: str,
               merchant_id: int | None) -> Verdict:
        """Charge a wrong code for a real token (``guess`` names it: the same one twice in a
        row is not counted) to the budgets of rules.py; offline and online codes alike."""
        gh = verify.guess_hash(guess)
        if gh == r.guess_hash:
            return Verdict(CODE_INVALID, token_id, detail="the same wrong code again (not counted)")
        if merchant_id is not None:
            key = f"mt:{merchant_id}:{token_id}"
            if not self._charge(tx, key, rules.MERCHANT_TOKEN_GUESSES, now):
                tat = tx.one(TAT, {"k": key})[0]
                return Verdict(THROTTLED, token_id, retry_after=rules.MERCHANT_TOKEN_GUESSES.retry_after(tat, now),
                               detail="too many wrong codes for this token from this merchant key")
        b = rules.TOKEN_GUESSES
        row = tx.write_one(GUESS, {"id": token_id, "gh": gh, "now": now, "iv": b.interval_s,
                                    "open_by": b.open_by(now)})
        if row is None:  # concurrent guesses filled the budget first
            return self._recheck(tx, token_id, now)
        failures, tat = row
        detail = {"failures": failures}
        if not b.allows(tat, now):
            audit.append_raw(tx, now, actor, "TOKEN_LOCKED", token_id,
                             dict(detail, until=tat - (b.burst - 1) * b.interval_s))
        audit.append_raw(tx, now, actor, "CODE_FAILED", token_id, detail)
        if merchant_id is not None:
            self._charge(tx, f"m:{merchant_id}", rules.MERCHANT_GUESSES, now)
        return Verdict(CODE_INVALID, token_id, detail="wrong code for its token")

    @staticmethod
    def _charge(tx: Tx, key: str, budget: rules.Budget, now: int) -> bool:
        """One charge to ``key``'s budget; False (and nothing changed) when it is full."""
        return tx.write_one(CHARGE, {"k": key, "first": now + budget.interval_s, "now": now,
                                      "iv": budget.interval_s, "open_by": budget.open_by(now)}) is not None
