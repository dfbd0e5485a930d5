"""Tokens: allocation, activation, status, limits and currency, unlock and lock, credit,
and a move to another scheme (a part of ``Backend``; see ``service/__init__.py``).

Usage::

    backend.add_token(42, secret, prefix="81")
    backend.set_token(42, "cli", limit_per_day=100_000)
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets

import paycode
from sqlalchemy import Connection, select, update
from sqlalchemy.exc import IntegrityError

from paytoken.backend import CONFLICT, INVALID, NOT_FOUND, UNAVAILABLE, BackendError, rules
from paytoken.backend.service import ledger, online, operators
from paytoken.backend.store import audit
from paytoken.backend.store.models import ACTIVE, LOCKED, LOST, PENDING, REVOKED
from paytoken.backend.store.tables import accounts as _a
from paytoken.backend.store.tables import schemes as _s
from paytoken.backend.store.tables import tokens as _t
from paytoken.backend.verify import Drift

log = logging.getLogger("paytoken.backend")


class Tokens:
    """A token's record and account: everything but its codes."""

    def add_token(self, token_id: int, secret: bytes, prefix: str = "81", sync_key: bytes | None = None,
                  currency: str | None = None, limit_per_payment: int | None = None,
                  limit_per_day: int | None = None, actor: str = "cli", drift_ppm: float | None = None) -> None:
        """Register an active token at once (imports and tests). The account starts at 0.
        Currency and limits left None are the scheme's defaults (``scheme_defaults``).

        ``drift_ppm``: the token's measured crystal error, if it does not correct it itself
        (the drift model starts from it instead of learning the rate from 0)."""
        rules.check_token_id(token_id)
        with self.engine.begin() as conn:
            self._insert_token(conn, token_id, PENDING, actor)
            self._activate(conn, token_id, secret, sync_key, prefix, currency,
                           limit_per_payment, limit_per_day, actor, drift_ppm)

    def _insert_token(self, conn: Connection, token_id: int, status: str, actor: str) -> None:
        try:
            with conn.begin_nested():
                conn.execute(_t.insert().values(
                    id=token_id, status=status, drift=0, drift_s=0, last_step=-1, failures=0,
                    clock_suspect=0, created_at=self.now()))
        except IntegrityError:
            raise BackendError(f"token {token_id} already exists", CONFLICT) from None
        audit.append(conn, self.now(), actor, "TOKEN_ALLOCATE", token_id, {"status": status})

    def allocate_token(self, actor: str = "station", sync_key: bytes | None = None) -> int:
        """Factory step 1: reserve a random unused token id as a ``pending`` record.

        A pending token has no secret and never verifies or counts as active.
        ``sync_key`` (sealed) lets the station unlock a token that was locked but
        never activated (``pending_unlock_mac``).
        """
        if sync_key is not None and (not isinstance(sync_key, bytes) or len(sync_key) < 16):
            raise BackendError("a sync key must be at least 16 bytes", INVALID)
        for _ in range(20):
            token_id = secrets.randbelow(rules.MAX_TOKEN_ID) + 1
            try:
                with self.engine.begin() as conn:
                    self._insert_token(conn, token_id, PENDING, actor)
                    if sync_key is not None:
                        conn.execute(update(_t).where(_t.c.id == token_id).values(
                            sync_key_enc=self._ring().seal(sync_key, f"token:{token_id}:sync")))
                return token_id
            except BackendError as exc:
                if exc.kind != CONFLICT:
                    raise
        raise BackendError("could not find a free token id", UNAVAILABLE)

    def discard_pending(self, token_id: int, actor: str = "station") -> bool:
        """Remove a ``pending`` record (a provisioning that failed); False if none was."""
        rules.check_token_id(token_id)
        with self.engine.begin() as conn:
            res = conn.execute(_t.delete().where(_t.c.id == token_id, _t.c.status == PENDING))
            if res.rowcount != 1:
                return False
            audit.append(conn, self.now(), actor, "TOKEN_DISCARD", token_id, {"status": PENDING})
        return True

    def activate_token(self, token_id: int, secret: bytes, sync_key: bytes, prefix: str = "81",
                       currency: str | None = None, limit_per_payment: int | None = None,
                       limit_per_day: int | None = None, actor: str = "station",
                       drift_ppm: float | None = None) -> None:
        """Factory last step: store the secret and sync key and mark the token active,
        in one transaction. Only a ``pending`` token can be activated. Currency and limits
        left None are the scheme's defaults; ``drift_ppm`` as in ``add_token``."""
        rules.check_token_id(token_id)
        with self.engine.begin() as conn:
            self._activate(conn, token_id, secret, sync_key, prefix, currency,
                           limit_per_payment, limit_per_day, actor, drift_ppm)

    def _activate(self, conn: Connection, token_id: int, secret: bytes, sync_key: bytes | None,
                  prefix: str, currency: str | None, limit_per_payment: int | None,
                  limit_per_day: int | None, actor: str, drift_ppm: float | None = None) -> None:
        if drift_ppm is not None and (isinstance(drift_ppm, bool) or not isinstance(drift_ppm, (int, float))
                                      or not abs(drift_ppm) <= 500):
            raise BackendError("drift_ppm must be a number within ±500 ppm", INVALID)
        if not isinstance(secret, bytes) or len(secret) < 16:
            raise BackendError("a token secret must be at least 16 bytes (RFC 4226 R6)", INVALID)
        if sync_key is None:
            sync_key = os.urandom(20)
        if not isinstance(sync_key, bytes) or len(sync_key) < 16:
            raise BackendError("a sync key must be at least 16 bytes", INVALID)
        if currency is not None:
            rules.check_currency(currency)
        rules.check_limit(limit_per_payment, "limit_per_payment")
        rules.check_limit(limit_per_day, "limit_per_day")
        if self._scheme_key(conn, prefix) is None:
            raise BackendError(f"no scheme key for prefix {prefix}: run `paytoken scheme add`", INVALID)
        operators.require_open_scheme(conn, prefix)
        online.require_offline(conn, prefix)
        dflt = self._defaults(conn.execute(select(_s.c.limit_per_payment, _s.c.limit_per_day, _s.c.currency)
                                           .where(_s.c.prefix == prefix)).one())
        currency = currency or dflt["currency"]
        limit_per_payment = dflt["limit_per_payment"] if limit_per_payment is None else limit_per_payment
        limit_per_day = dflt["limit_per_day"] if limit_per_day is None else limit_per_day
        ring = self._ring()
        d = Drift.fresh(self.now(), 0.0, drift_ppm, self.policy.rate_sigma_ppm)
        res = conn.execute(
            update(_t).where(_t.c.id == token_id, _t.c.status == PENDING).values(
                status=ACTIVE, prefix=prefix, drift_at=d.at, drift_off=d.offset, drift_ppm=d.ppm,
                drift_p00=d.p00, drift_p01=d.p01, drift_p11=d.p11,
                secret_enc=ring.seal(secret, f"token:{token_id}:secret"),
                sync_key_enc=ring.seal(sync_key, f"token:{token_id}:sync"),
                limit_per_payment=limit_per_payment, limit_per_day=limit_per_day))
        if res.rowcount != 1:
            raise BackendError(f"token {token_id} is not a pending token", CONFLICT)
        conn.execute(_a.insert().values(token_id=token_id, currency=currency, balance=0))
        audit.append(conn, self.now(), actor, "TOKEN_ACTIVATE", token_id,
                     {"prefix": prefix, "currency": currency, "limit_per_payment": limit_per_payment,
                      "limit_per_day": limit_per_day})

    def activation_matches(self, token_id: int, secret: bytes, sync_key: bytes) -> bool:
        """True when token ``token_id`` was activated with exactly this secret and sync key
        (an activation's retry); compared in constant time."""
        rules.check_token_id(token_id)
        with self.engine.begin() as conn:
            row = conn.execute(select(_t.c.status, _t.c.secret_enc, _t.c.sync_key_enc)
                               .where(_t.c.id == token_id)).first()
        if row is None or row.status == PENDING or row.secret_enc is None or row.sync_key_enc is None:
            return False
        ring = self._ring()
        same_secret = hmac.compare_digest(ring.open(row.secret_enc, f"token:{token_id}:secret"), secret)
        same_sync = hmac.compare_digest(ring.open(row.sync_key_enc, f"token:{token_id}:sync"), sync_key)
        return same_secret and same_sync

    def token_info(self, token_id: int) -> dict:
        """Status, drift, last use, limits and balance (never secrets)."""
        rules.check_token_id(token_id)
        with self.engine.begin() as conn:
            row = conn.execute(
                select(_t, _a.c.balance, _a.c.currency)
                .outerjoin(_a, _a.c.token_id == _t.c.id).where(_t.c.id == token_id)).first()
        if row is None:
            raise BackendError(f"no token {token_id}", NOT_FOUND)
        return self._info(row)

    def _info(self, row) -> dict:
        """``status`` says ``locked`` while the guess budget is full (``locked_until``, when the
        lock clears by itself; None for a token locked by hand)."""
        status, until = row.status, None
        b = rules.TOKEN_GUESSES
        if status == ACTIVE and not b.allows(row.guess_tat, self.now()):
            status, until = LOCKED, row.guess_tat - (b.burst - 1) * b.interval_s
        return {
            "token_id": row.id, "status": status, "locked_until": until, "prefix": row.prefix,
            "moving_from": row.prev_prefix,
            "drift_steps": row.drift, "drift_seconds": row.drift_s, "drift_ppm": row.drift_ppm,
            "last_step": None if row.last_step < 0 else row.last_step,
            "last_used_at": row.last_used_at, "failures": row.failures,
            "clock_suspect": row.clock_suspect, "limit_per_payment": row.limit_per_payment,
            "limit_per_day": row.limit_per_day, "balance": row.balance, "currency": row.currency,
        }

    def list_tokens(self, limit: int = 1000) -> list[dict]:
        with self.engine.begin() as conn:
            rows = conn.execute(
                select(_t, _a.c.balance, _a.c.currency)
                .outerjoin(_a, _a.c.token_id == _t.c.id).order_by(_t.c.id).limit(limit)).all()
        return [self._info(r) for r in rows]

    def set_status(self, token_id: int, status: str, actor: str) -> dict:
        """Revoke (``revoked``) or report ``lost``: final; the token never pays again, and
        its status never changes again (asking for the same one again is a no-op)."""
        rules.check_token_id(token_id)
        if status not in (REVOKED, LOST):
            raise BackendError("status must be revoked or lost", INVALID)
        with self.engine.begin() as conn:
            res = conn.execute(update(_t).where(_t.c.id == token_id, _t.c.status.in_((ACTIVE, LOCKED)))
                               .values(status=status))
            if res.rowcount != 1:
                now = conn.execute(select(_t.c.status).where(_t.c.id == token_id)).scalar()
                if now is None or now == PENDING:
                    raise BackendError(f"no token {token_id}", NOT_FOUND)
                if now != status:
                    raise BackendError(f"token {token_id} is {now}; that is final", CONFLICT)
            else:
                audit.append(conn, self.now(), actor, "TOKEN_" + status.upper(), token_id, {})
        return self.token_info(token_id)

    def set_token(self, token_id: int, actor: str, **changes) -> dict:
        """Change a token's ``limit_per_payment``, ``limit_per_day`` (minor units, None = no
        limit) and ``currency`` (only while its balance is 0: nothing is converted). Keys
        not given stay as they are. Audited."""
        rules.check_token_id(token_id)
        unknown = set(changes) - {"limit_per_payment", "limit_per_day", "currency"}
        if unknown:
            raise BackendError(f"cannot set {', '.join(sorted(unknown))}", INVALID)
        if not changes:
            raise BackendError("nothing to change: give a limit or a currency", INVALID)
        for k in ("limit_per_payment", "limit_per_day"):
            if k in changes:
                rules.check_limit(changes[k], k)
        cur = changes.get("currency")
        if "currency" in changes:
            rules.check_currency(cur)
        with self.engine.begin() as conn:
            row = conn.execute(select(_t.c.status, _a.c.balance, _a.c.currency)
                               .outerjoin(_a, _a.c.token_id == _t.c.id).where(_t.c.id == token_id)
                               .with_for_update(of=_t)).first()
            if row is None or row.status == PENDING:
                raise BackendError(f"no token {token_id}", NOT_FOUND)
            if row.status in (REVOKED, LOST):
                raise BackendError(f"token {token_id} is {row.status}", CONFLICT)
            limits = {k: v for k, v in changes.items() if k != "currency"}
            if limits:
                conn.execute(update(_t).where(_t.c.id == token_id).values(**limits))
            if cur is not None and cur != row.currency:
                res = conn.execute(update(_a).where(_a.c.token_id == token_id, _a.c.balance == 0)
                                   .values(currency=cur))
                if res.rowcount != 1:
                    raise BackendError(f"token {token_id} holds {row.balance} {row.currency}: "
                                       "its currency changes only at balance 0", CONFLICT)
            audit.append(conn, self.now(), actor, "TOKEN_SET", token_id, dict(changes))
        return self.token_info(token_id)

    def unlock(self, token_id: int, actor: str) -> dict:
        """Unlock a token locked by wrong codes before its cool-down ends; its guess budget
        and failure count restart."""
        rules.check_token_id(token_id)
        with self.engine.begin() as conn:
            status = conn.execute(select(_t.c.status).where(_t.c.id == token_id)).scalar()
            if status is None:
                raise BackendError(f"no token {token_id}", NOT_FOUND)
            if status in (REVOKED, LOST, PENDING):
                raise BackendError(f"token {token_id} is {status}; only a locked token unlocks", CONFLICT)
            conn.execute(update(_t).where(_t.c.id == token_id, _t.c.status.in_((LOCKED, ACTIVE)))
                         .values(status=ACTIVE, failures=0, guess_tat=None, guess_hash=None))
            audit.append(conn, self.now(), actor, "TOKEN_UNLOCK", token_id, {"was": status})
        return self.token_info(token_id)

    def lock(self, token_id: int, actor: str) -> dict:
        """Lock a token by hand: it pays nothing until an admin unlocks it (``unlock``).
        Locking a locked token again is a no-op; a revoked or lost one is final (conflict)."""
        rules.check_token_id(token_id)
        with self.engine.begin() as conn:
            status = conn.execute(select(_t.c.status).where(_t.c.id == token_id)).scalar()
            if status is None or status == PENDING:
                raise BackendError(f"no token {token_id}", NOT_FOUND)
            if status in (REVOKED, LOST):
                raise BackendError(f"token {token_id} is {status}; that is final", CONFLICT)
            res = conn.execute(update(_t).where(_t.c.id == token_id, _t.c.status == ACTIVE).values(status=LOCKED))
            if res.rowcount == 1:
                audit.append(conn, self.now(), actor, "TOKEN_LOCK", token_id, {})
        return self.token_info(token_id)

    def credit(self, token_id: int, amount: int, actor: str = "cli", reason: str = "credit") -> int:
        """Add ``amount`` minor units to the token's account; returns the new balance.
        Recorded with its reason in the account's history (``ledger.adjust``)."""
        rules.check_token_id(token_id)
        rules.check_amount(amount)
        return ledger.adjust(self, token_id, amount, reason, actor)["balance"]

    def move_token(self, token_id: int, prefix: str, actor: str) -> dict:
        """Step 1 of a move: the token's scheme becomes ``prefix`` and the one it leaves
        stays accepted (``prev_prefix``) until ``finish_move``; so whichever config the
        token holds while the desk rewrites it, its codes pay. Returns ``{token_id,
        prefix, format, prev_prefix, scheme_key}`` (the key for the token's config).
        Repeating a started move is a no-op; a token already moving elsewhere is a conflict."""
        rules.check_token_id(token_id)
        try:
            paycode.check_prefix(prefix)
        except ValueError as exc:
            raise BackendError(str(exc), INVALID) from None
        with self.engine.begin() as conn:
            row = conn.execute(select(_t.c.status, _t.c.prefix, _t.c.prev_prefix)
                               .where(_t.c.id == token_id)).first()
            if row is None or row.status == PENDING:
                raise BackendError(f"no token {token_id}", NOT_FOUND)
            if row.status in (REVOKED, LOST):
                raise BackendError(f"token {token_id} is {row.status}", CONFLICT)
            sch = conn.execute(select(_s.c.format, _s.c.closed_at).where(_s.c.prefix == prefix)).first()
            key = self._scheme_key(conn, prefix)
            if sch is None or key is None:
                raise BackendError(f"no scheme key for prefix {prefix}: run `paytoken scheme add`", NOT_FOUND)
            if sch.closed_at is not None:
                raise BackendError(f"scheme {prefix} is closed: its codes are refused", CONFLICT)
            operators.require_open_scheme(conn, prefix)
            prev = row.prev_prefix
            if row.prefix != prefix:
                if prev is not None:
                    raise BackendError(f"token {token_id} is still moving from {prev} to {row.prefix}: "
                                       f"finish that move first (update --prefix {row.prefix})", CONFLICT)
                prev = row.prefix
                conn.execute(update(_t).where(_t.c.id == token_id).values(prefix=prefix, prev_prefix=prev))
                audit.append(conn, self.now(), actor, "TOKEN_MOVE", token_id,
                             {"from": prev, "to": prefix, "format": sch.format})
        return {"token_id": token_id, "prefix": prefix, "format": sch.format, "prev_prefix": prev,
                "scheme_key": key}

    def finish_move(self, token_id: int, prefix: str, actor: str) -> dict:
        """Step 2 of a move, once the token was seen computing ``prefix``'s codes: the scheme
        it left is no longer accepted for it. ``{token_id, prefix, finished}``; finished is
        False when there was nothing to finish."""
        rules.check_token_id(token_id)
        with self.engine.begin() as conn:
            row = conn.execute(select(_t.c.status, _t.c.prefix, _t.c.prev_prefix)
                               .where(_t.c.id == token_id)).first()
            if row is None or row.status == PENDING:
                raise BackendError(f"no token {token_id}", NOT_FOUND)
            if row.prefix != prefix:
                raise BackendError(f"token {token_id} is on scheme {row.prefix}, not {prefix}", CONFLICT)
            if row.prev_prefix is None:
                return {"token_id": token_id, "prefix": prefix, "finished": False}
            conn.execute(update(_t).where(_t.c.id == token_id).values(prev_prefix=None))
            audit.append(conn, self.now(), actor, "TOKEN_MOVED", token_id,
                         {"from": row.prev_prefix, "to": prefix})
        return {"token_id": token_id, "prefix": prefix, "finished": True}
